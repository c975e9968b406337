-- The bare transaction committed the way the HTTP layer commits a trade: asynchronously, its
-- locks released at once, then made durable by a synchronous commit before the answer. Not the
-- baseline: it shows how much of a trade's gain over bench/bare.sql comes from committing so.
\set u random(1, 200)
\startpipeline
begin;
select set_config('synchronous_commit', 'off', true);
select q from bare.market where id = 1 for update;
update bare.market set q = q + 1, version = version + 1 where id = 1;
update bare.account set balance = balance - 0.5 where id = :u;
insert into bare.position as p values (:u, 1, 1) on conflict (user_id, market_id) do update set shares = p.shares + 1;
insert into bare.ledger (journal, credit, debit, amount) values (1, 'cash', 'pool', 0.5);
commit;
select pg_logical_emit_message(true, 'betjee.durable', '');
\endpipeline
