-- The bare transaction: lock the market row, update it, debit a balance, upsert a position,
-- insert one ledger row.
-- (pipelined: the commit follows without a network round trip, as the HTTP layer sends it)
\set u random(1, 200)
\startpipeline
begin;
select q from bare.market where id = 1 for update;
update bare.market set q = q + 1, version = version + 1 where id = 1;
update bare.account set balance = balance - 0.5 where id = :u;
insert into bare.position as p values (:u, 1, 1) on conflict (user_id, market_id) do update set shares = p.shares + 1;
insert into bare.ledger (journal, credit, debit, amount) values (1, 'cash', 'pool', 0.5);
commit;
\endpipeline
