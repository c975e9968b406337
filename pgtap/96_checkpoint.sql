-- sql/95_invariants.sql from a checkpoint: admin.checkpoint_invariants writes one only when the
-- full replay holds, its balances are the replay of the postings up to its watermark, and the
-- incremental check (admin.check_invariants) names what was broken after it through the rows
-- that postings touched since; a cache edited by hand in a row nothing posted to since is the
-- full replay's to find (the documented trade-off).
begin;
\ir helpers/setup.psql
select plan(36);

create function tests.reported() returns text[]
language sql as $$ select coalesce(array_agg(distinct invariant order by invariant), '{}') from admin.check_invariants() $$;
create function tests.reported_full() returns text[]
language sql as $$ select coalesce(array_agg(distinct invariant order by invariant), '{}') from admin.check_invariants_full() $$;
-- move coins from one account to another in the ledger alone (no cache follows)
create function tests.post(p_from text, p_to text, p_amount numeric, p_trade bigint default null) returns void
language sql as $$ select bj.post(nextval('bj.journal_seq'), 'test', 'coin', p_from, p_to, p_amount, p_trade => p_trade) $$;
-- the checkpoint's balances that differ from the ledger replayed up to its watermark (none)
create function tests.checkpoint_drift() returns bigint
language sql as $$
  with replay as (
    select x.asset, x.account, sum(x.amount) as balance
      from (select l.asset, l.debit as account, l.amount from bj.ledger l
             where l.id <= (select c.ledger_id from bj.checkpoint c)
            union all
            select l.asset, l.credit, -l.amount from bj.ledger l
             where l.id <= (select c.ledger_id from bj.checkpoint c)) x
     group by 1, 2)
  select count(*) from (
    (select asset, account, balance from replay except select asset, account, balance from bj.checkpoint_balances)
    union all
    (select asset, account, balance from bj.checkpoint_balances except select asset, account, balance from replay)) d
$$;
-- the scope of the incremental check now
create function tests.scope() returns table (users bigint[], markets bigint[], accounts text[], trades bigint[])
language sql as $$
  select array(select u.id from unnest(s.users) u), array(select m.id from unnest(s.markets) m),
         array(select b.account from unnest(s.balances) b), array(select t.id from unnest(s.trades) t)
    from bj.checkpoint c cross join bj.invariant_scope(c.ledger_id, c.trade_id, c.order_id) s
$$;

-- a state with longs, a short with collateral, two markets and a book with resting orders
select tests.market('k1') as k1, tests.market('k2', '{A,B,C}', 50) as k2 \gset
select tests.user('long') as long, tests.user('short') as short, tests.user('idle') as idle,
       tests.user('late') as late \gset
select bj.trade(:long, 'k1', 'YES', 'buy', 40, null, null, null, null) \gset
select bj.trade(:short, 'k1', 'YES', 'sell', 25, null, null, null, null) \gset
select bj.trade(:idle, 'k2', 'B', 'buy', 10, null, null, null, null) \gset
select (admin.create_market('k3', 'k3', pricing => 'book') ->> 'code') as k3_code \gset
select id as k3 from bj.markets where code = 'k3' \gset
select (bj.place_order(:long, 'k3', 'YES', 'buy', 'limit', 10, 0.40, null, null, 'gtc', null, false, 'persist',
                       null, 'cancel_resting', null, null, null) ->> 'order_id')::bigint as bid \gset
select (bj.place_order(:idle, 'k3', 'YES', 'buy', 'limit', 5, 0.10, null, null, 'gtc', null, false, 'persist',
                       null, 'cancel_resting', null, null, null) ->> 'order_id')::bigint as idle_bid \gset
-- a gap in the trades' ids below the watermark, for a trade that commits late (below)
select nextval('bj.trades_id_seq') as late_trade_id \gset
select bj.trade(:long, 'k2', 'A', 'buy', 5, null, null, null, null) \gset

---- making a checkpoint
call admin.checkpoint_invariants();
select is((select ledger_id from bj.checkpoint), (select max(id) from bj.ledger),
          'a checkpoint''s ledger watermark is the last posting');
select is((select format('%s %s', trade_id, order_id) from bj.checkpoint),
          format('%s %s', (select max(id) from bj.trades), (select max(id) from bj.orders)),
          'its trade and order watermarks the last trade and order');
select is(tests.checkpoint_drift(), 0::bigint, 'its balances are the ledger replayed up to its watermark');
select is((select count(*) from bj.checkpoint_balances), (select count(*) from bj.ledger_balances),
          'one balance per account and asset');
select is_empty($$ select 1 from pg_locks where locktype = 'relation' and relation = 'bj.ledger'::regclass
                     and pid = pg_backend_pid() and mode = 'ShareLock' $$,
                'the lock its watermark was read under is gone with it');
select is_empty('select * from admin.check_invariants()', 'from it, every invariant holds');
select is((select postings_since from admin.invariants_checkpoint()), 0::bigint, 'nothing posted since');

-- trading after it: the incremental check reads what moved, and it holds
select bj.trade(:long, 'k1', 'NO', 'buy', 7, null, null, null, null) \gset
select bj.trade(:short, 'k1', 'YES', 'sell', 5, null, null, null, null) \gset
select bj.place_order(:short, 'k3', 'NO', 'buy', 'limit', 3, 0.60, null, null, 'gtc', null, false, 'persist',
                      null, 'cancel_resting', null, null, null) \gset
select is_empty('select * from admin.check_invariants()', 'after more trades and a minted pair, every invariant holds');
select is((select format('%s %s', (select array_agg(u order by u) from unnest(s.users) u),
                                    (select array_agg(m order by m) from unnest(s.markets) m)) from tests.scope() s),
          format('%s %s', array[:long, :short]::bigint[], array[:k1, :k3]::bigint[]),
          'the check reads the traders and markets that moved since, not the others');
select ok((select bj.cash_account(:idle) <> all (accounts) and bj.pool_account(:k2) <> all (accounts) from tests.scope()),
          'nor the accounts of the others');
select ok((select (select max(id) from bj.trades) = any (trades) and cardinality(trades) < (select count(*) from bj.trades)
             from tests.scope()), 'the trades since the checkpoint, not the ones before');

---- broken after the checkpoint, each alone: the incremental check names it, as the full replay does
savepoint s;
update bj.users set balance = balance + 0.000001 where id = :long;
select is(tests.reported(), '{balance equals ledger}', 'a balance, of a trader who traded since');
select is(tests.reported_full(), '{balance equals ledger}', '(the full replay agrees)');
rollback to savepoint s;

select tests.post(bj.cash_account(:idle), 'house', 1);
select is(tests.reported(), '{balance equals ledger}', 'a posting no cache followed, to a trader idle since the checkpoint');
rollback to savepoint s;

update bj.positions set shares = shares + 1 where user_id = :long and market_id = :k1 and outcome = 2;
select is(tests.reported(), '{position equals ledger}', 'a position, of a pair that traded since');
rollback to savepoint s;

-- (the other outcome of a pair that traded since: the check reads every position of the pair)
update bj.positions set shares = shares + 1 where user_id = :long and market_id = :k1 and outcome = 1;
select is(tests.reported(), '{position equals ledger}', 'the position in another outcome of that pair');
rollback to savepoint s;

delete from bj.positions where user_id = :long and market_id = :k1 and outcome = 2;
select is(tests.reported(), '{ledger position has a row}', 'a position the ledger holds and no row does');
rollback to savepoint s;

select tests.post(bj.cash_account(:short), bj.collateral_account(:short, :k1), 1);
update bj.users set balance = balance - 1 where id = :short;
select is(tests.reported(), '{collateral equals ledger}', 'collateral the ledger does not replay to');
rollback to savepoint s;

select tests.post(bj.collateral_account(:short, :k1), bj.cash_account(:short), 1);
update bj.collateral set amount = amount - 1 where user_id = :short and market_id = :k1;
update bj.users set balance = balance + 1 where id = :short;
select is(tests.reported(), '{collateral matches shorts}', 'a short its collateral does not cover');
rollback to savepoint s;

update bj.markets set pool = pool + 1 where id = :k1;
select is(tests.reported(), '{pool equals ledger}', 'a pool, of a market traded since');
rollback to savepoint s;

update bj.markets set q[2] = q[2] - 1 where id = :k1;
select is(tests.reported(), '{market quantity equals ledger}', 'a quantity, of a market traded since');
rollback to savepoint s;

update bj.markets set pairs = pairs - 1 where id = :k3;
select is(tests.reported(), '{minted pairs equal ledger}', 'the pairs of a market that minted since');
rollback to savepoint s;

update bj.orders set locked_cash = locked_cash + 1 where id = :bid;
select is(tests.reported(), '{escrow equals ledger}', 'the escrow of an order that filled since');
rollback to savepoint s;

update bj.orders set locked_cash = locked_cash + 1 where id = :idle_bid;
select is(tests.reported(), '{escrow equals ledger}', 'the escrow of an order open, untouched since: open orders are all read');
rollback to savepoint s;

update bj.trades set user_id = -1 where id = (select max(id) from bj.trades where order_id is null);
select is(tests.reported(), '{trade names its market and trader}', 'a trade since the checkpoint');
rollback to savepoint s;

-- a trade that commits after the checkpoint with an id below its watermark (it drew its id
-- before, as a transaction still running does): its postings name it
insert into bj.trades (id, market_id, user_id, outcome, side, shares, amount, fee, total, prices_after)
overriding system value
values (:late_trade_id, :k1, -1, 1, 'buy', 1, 1, 0, 1, '{0.5,0.5}');
select tests.post(bj.cash_account(:late), bj.pool_account(:k1), 1, :late_trade_id);
update bj.users set balance = balance - 1 where id = :late;
update bj.markets set pool = pool + 1 where id = :k1;
select ok(:late_trade_id < (select trade_id from bj.checkpoint), '(a trade id below the watermark)');
select is(tests.reported(), '{trade names its market and trader}', 'a trade below the watermark, posted since');
rollback to savepoint s;

update bj.markets set q = q || 0::numeric where id = :k2;
select is(tests.reported(), '{market has a quantity per outcome}', 'every market is read for what needs no ledger');
rollback to savepoint s;

---- the trade-off: a cache edited by hand in a row nothing posted to since
update bj.users set balance = balance + 1 where id = :idle;
select is(tests.reported(), '{}', 'the incremental check does not see a hand edit of an idle trader''s balance');
select is(tests.reported_full(), '{balance equals ledger}', 'the full replay does');

---- a checkpoint is refused while the full replay finds anything, and nothing is written
select checkpoint as before from bj.checkpoint checkpoint \gset
select throws_ok('call admin.checkpoint_invariants()', 'BJ060', 'no checkpoint of the ledger was written',
                 'a checkpoint is refused while an invariant is broken');
select is((select checkpoint::text from bj.checkpoint checkpoint), :'before', 'the checkpoint stays as it was');
select is(tests.checkpoint_drift(), 0::bigint, 'with its balances');
rollback to savepoint s;

---- a new checkpoint replaces the old
call admin.checkpoint_invariants();
select is((select count(*) from bj.checkpoint), 1::bigint, 'one checkpoint: the newest');
select is(tests.checkpoint_drift(), 0::bigint, 'its balances rewritten where they moved, and added where new');
select is_empty('select * from admin.check_invariants()', 'and every invariant holds from it');

select * from finish();
rollback;
