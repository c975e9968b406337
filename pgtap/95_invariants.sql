-- sql/95_invariants.sql: the invariant checker as a product of its own. Each invariant it
-- reports is broken on purpose, alone (as the owner, guards lifted inside a savepoint), and
-- the full replay (admin.check_invariants_full) must name that one and only that one. The
-- incremental check from a checkpoint is pgtap/96_checkpoint.sql's.
begin;
\ir helpers/setup.psql
select plan(28);

-- a state with longs, a short with collateral, fees and two markets
select tests.market('i1') as i1, tests.market('i2', '{A,B,C}', 50) as i2 \gset
select tests.user('long') as long, tests.user('short') as short \gset
select bj.trade(:long, 'i1', 'YES', 'buy', 40, null, null, null, null) \gset
select bj.trade(:short, 'i1', 'YES', 'sell', 25, null, null, null, null) \gset
select bj.trade(:long, 'i2', 'B', 'buy', 10, null, null, null, null) \gset
-- and a book: a book market with a mint and a resting bid and ask, an LMSR market with a bid
select (admin.create_market('i3', 'i3', pricing => 'book') ->> 'code') as i3_code \gset
select id as i3 from bj.markets where code = 'i3' \gset
select (bj.place_order(:long, 'i3', 'YES', 'buy', 'limit', 10, 0.40, null, null, 'gtc', null, false, 'persist',
                       null, 'cancel_resting', null, null, null) ->> 'order_id')::bigint as bid \gset
select bj.place_order(:short, 'i3', 'NO', 'buy', 'limit', 3, 0.60, null, null, 'gtc', null, false, 'persist',
                      null, 'cancel_resting', null, null, null) \gset
select (bj.place_order(:short, 'i3', 'YES', 'sell', 'limit', 2, 0.70, null, null, 'gtc', null, false, 'persist',
                       null, 'cancel_resting', null, null, null) ->> 'order_id')::bigint as ask \gset
select (bj.place_order(:long, 'i1', 'YES', 'buy', 'limit', 5, 0.30, null, null, 'gtc', null, false, 'persist',
                       null, 'cancel_resting', null, null, null) ->> 'order_id')::bigint as amm_bid \gset
select is_empty('select * from admin.check_invariants_full()', 'the state to break holds every invariant');

-- the names the checker can report, read from its definition: a new one without a case here fails
select is((select array_agg(distinct m[1] order by m[1])
             from regexp_matches(pg_get_functiondef('bj.invariant_violations'::regproc), $$SELECT '([a-z ]+)'::text$$, 'g') m),
          array['balance equals ledger', 'balance is not negative', 'book is not crossed', 'book levels add up',
                'collateral equals ledger', 'collateral matches shorts', 'escrow equals ledger', 'fill at the resting price',
                'ledger is guarded', 'ledger position has a row', 'market has a quantity per outcome',
                'market is solvent', 'market names its pricing model', 'market quantity equals ledger',
                'minted pairs equal ledger',
                'no resting order is marketable against the market maker', 'order fills add up',
                'pool equals ledger', 'position equals ledger', 'row names its market and trader',
                'trade names its market and trader',
                'trade names its order'],
          'every invariant the checker reports is broken below');

create function tests.reported() returns text[]
language sql as $$ select coalesce(array_agg(distinct invariant order by invariant), '{}') from admin.check_invariants_full() $$;
-- move coins from one account to another in the ledger alone (no cache follows)
create function tests.post(p_from text, p_to text, p_amount numeric) returns void
language sql as $$ select bj.post(nextval('bj.journal_seq'), 'test', 'coin', p_from, p_to, p_amount) $$;

savepoint s;
alter table bj.users drop constraint users_balance_check;
-- the cash account goes below zero in the ledger too, so that only the sign is wrong
select tests.post(bj.cash_account(:long), 'house', (select balance + 1 from bj.users where id = :long));
update bj.users set balance = -1 where id = :long;
select is(tests.reported(), '{balance is not negative}', 'a negative balance');
rollback to savepoint s;

update bj.users set balance = balance + 0.000001 where id = :long;
select is(tests.reported(), '{balance equals ledger}', 'a balance the ledger does not replay to');
rollback to savepoint s;

update bj.positions set shares = shares + 1 where user_id = :long and market_id = :i1;
select is(tests.reported(), '{position equals ledger}', 'a position the ledger does not replay to');
rollback to savepoint s;

delete from bj.positions where user_id = :long and market_id = :i2;
select is(tests.reported(), '{ledger position has a row}', 'a position the ledger holds and no row does');
rollback to savepoint s;

-- the ledger locks one more than the cache says (the cash it came from follows)
select tests.post(bj.cash_account(:short), bj.collateral_account(:short, :i1), 1);
update bj.users set balance = balance - 1 where id = :short;
select is(tests.reported(), '{collateral equals ledger}', 'collateral the ledger does not replay to');
rollback to savepoint s;

-- one more locked, in the ledger and the cache alike, than the short needs
select tests.post(bj.cash_account(:short), bj.collateral_account(:short, :i1), 1);
update bj.collateral set amount = amount + 1 where user_id = :short;
update bj.users set balance = balance - 1 where id = :short;
select is(tests.reported(), '{collateral matches shorts}', 'collateral more than the shorts need');
rollback to savepoint s;

-- collateral released in the ledger and the cache alike, leaving the short uncovered
select tests.post(bj.collateral_account(:short, :i1), bj.cash_account(:short), 1);
update bj.collateral set amount = amount - 1 where user_id = :short;
update bj.users set balance = balance + 1 where id = :short;
select is(tests.reported(), '{collateral matches shorts}', 'a short its collateral does not cover');
rollback to savepoint s;

update bj.markets set pool = pool + 1 where id = :i1;
select is(tests.reported(), '{pool equals ledger}', 'a pool the ledger does not replay to');
rollback to savepoint s;

update bj.markets set q[1] = q[1] - 1 where id = :i1;
select is(tests.reported(), '{market quantity equals ledger}', 'quantities the maker''s accounts do not replay to');
rollback to savepoint s;

-- the pool drained below the worst payout, in the ledger and the cache alike
select tests.post(bj.pool_account(:i1), 'house', (select pool - 1 from bj.markets where id = :i1));
update bj.markets set pool = 1 where id = :i1;
select is(tests.reported(), '{market is solvent}', 'a pool that cannot pay the winning outcome');
rollback to savepoint s;

update bj.markets set q = q || 0::numeric where id = :i1;
select is(tests.reported(), '{market has a quantity per outcome}', 'a quantity vector longer than the outcomes');
rollback to savepoint s;

update bj.trades set user_id = -1 where id = (select max(id) from bj.trades where order_id is null);
select is(tests.reported(), '{trade names its market and trader}', 'a trade whose trader does not exist');
rollback to savepoint s;

insert into bj.positions (user_id, market_id, outcome, shares) values (-1, :i1, 1, 0);
select is(tests.reported(), '{row names its market and trader}', 'a position whose trader does not exist');
rollback to savepoint s;

insert into bj.collateral (user_id, market_id, amount) values (:long, -1, 0);
select is(tests.reported(), '{row names its market and trader}', 'collateral in a market that does not exist');
rollback to savepoint s;

update bj.orders set user_id = -1 where id = :ask;
select is(tests.reported(), '{row names its market and trader}', 'an order whose trader does not exist');
rollback to savepoint s;

alter table bj.markets disable trigger _100_definition_is_valid;
update bj.markets set pricing = 'nope' where code = 'i2';
select is(tests.reported(), '{market names its pricing model}', 'a market whose pricing model does not exist');
rollback to savepoint s;

update bj.trades set order_id = (select max(id) + 1 from bj.orders) where id = (select max(id) from bj.trades where order_id is null);
select is(tests.reported(), '{trade names its order}', 'a trade whose order does not exist');
rollback to savepoint s;

update bj.book_levels l set orders = l.orders + 1 from bj.orders o
 where o.id = :bid and (l.market_id, l.outcome, l.side, l.price) = (o.market_id, o.outcome, o.side, o.price);
select is(tests.reported(), '{book levels add up}', 'a level counting an order that is not there');
rollback to savepoint s;

update bj.orders set locked_cash = locked_cash + 1 where id = :bid;
select is(tests.reported(), '{escrow equals ledger}', 'an order whose escrow the ledger does not hold');
rollback to savepoint s;

update bj.orders set filled = filled + 1 where id = :bid;
update bj.book_levels l set shares = l.shares - 1 from bj.orders o
 where o.id = :bid and (l.market_id, l.outcome, l.side, l.price) = (o.market_id, o.outcome, o.side, o.price);
select is(tests.reported(), '{order fills add up}', 'an order filled beyond its trades');
rollback to savepoint s;

update bj.trades set price = price + 0.01 where role = 'maker' and market_id = :i3;
select is(tests.reported(), '{fill at the resting price}', 'a fill away from the resting order''s price');
rollback to savepoint s;

update bj.markets set pairs = pairs - 1 where id = :i3;
select is(tests.reported(), '{minted pairs equal ledger}', 'pairs the mint accounts did not put out');
rollback to savepoint s;

update bj.orders set price = 0.30 where id = :ask;
update bj.book_levels set price = 0.30 where market_id = :i3 and side = 'sell' and price = 0.70;
select is(tests.reported(), '{book is not crossed}', 'an ask below the best bid');
rollback to savepoint s;

update bj.orders set price = 0.60 where id = :amm_bid;
update bj.book_levels set price = 0.60 where market_id = (select market_id from bj.orders where id = :amm_bid)
                                         and side = 'buy' and price = 0.30;
select is(tests.reported(), '{no resting order is marketable against the market maker}',
          'a bid above the market maker''s price');
rollback to savepoint s;

alter table bj.ledger disable trigger _100_append_only;
select is(tests.reported(), '{ledger is guarded}', 'the ledger''s append-only guard switched off');
rollback to savepoint s;

select is_empty('select * from admin.check_invariants_full()', 'and after each, the state holds again');

select * from finish();
rollback;
