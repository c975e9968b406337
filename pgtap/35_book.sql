-- sql/35_book.sql and the taking path's book: resting with escrow, price-time priority, fills
-- at the resting price, minting and merging pairs, time in force, post-only, self-trade
-- prevention, client order ids, the betting form, routing between the book and the market
-- maker, phases, batches, expiry, stop-limits; every refusal changes nothing.
begin;
\ir helpers/setup.psql
select plan(135);

-- a limit order (the price form), and its id
create function tests.limit(p_user bigint, p_market text, p_outcome text, p_side text, p_shares numeric,
                            p_price numeric, p_tif text default 'gtc', p_post_only boolean default false,
                            p_stp text default 'cancel_resting', p_client text default null,
                            p_kind text default 'limit', p_expires timestamptz default null,
                            p_persistence text default 'persist')
returns jsonb language sql as $$
  select bj.place_order(p_user, p_market, p_outcome, p_side, p_kind, p_shares, p_price, null, null, p_tif,
                        p_expires, p_post_only, p_persistence, p_client, p_stp, null, null, null)
$$;
create function tests.id(p_order jsonb) returns bigint language sql as $$ select (p_order ->> 'order_id')::bigint $$;
create function tests.balance(p_user bigint) returns numeric language sql as $$
  select balance::numeric from bj.users where id = p_user $$;
create function tests.position(p_user bigint, p_market text, p_outcome int) returns numeric language sql as $$
  select coalesce((select p.shares::numeric from bj.positions p join bj.markets m on m.id = p.market_id
                    where p.user_id = p_user and m.code = p_market and p.outcome = p_outcome), 0) $$;
create function tests.ledger(p_account text, p_asset text default 'coin') returns numeric language sql as $$
  select coalesce((select balance from bj.ledger_balances where account = p_account and asset = p_asset), 0) $$;

select admin.create_market('b1', 'a book market', pricing => 'book') \gset
select tests.user('alice') as alice, tests.user('bob') as bob, tests.user('carol') as carol,
       tests.user('dave') as dave \gset

-- a bid rests, its cost in escrow
select tests.limit(:alice, 'b1', 'YES', 'buy', 10, 0.40) as o1 \gset
select is(:'o1'::jsonb ->> 'status', 'open', 'a bid that meets nothing rests');
select is((:'o1'::jsonb -> 'locked' ->> 'cash')::numeric, 4.000000, 'locking its cost: 10 × 0.40');
select is(tests.balance(:alice), 996::numeric, 'out of the trader''s balance');
select is(tests.ledger(bj.order_account(tests.id(:'o1'))), 4::numeric, 'into the order''s escrow account, by a posting');
select is((select resting from bj.markets where code = 'b1'), 1, 'the market counts it on its book');
select is(api.book('b1', 'YES') -> 'outcomes' -> 0 -> 'bids', '[{"price": 0.400000000, "shares": 10.000000, "orders": 1}]'::jsonb,
          'the book shows it as a level');
select is(api.book('b1', 'NO') -> 'outcomes' -> 0 -> 'asks', '[{"price": 0.600000000, "shares": 10.000000, "orders": 1}]'::jsonb,
          'and, in a binary market, as an ask for the other outcome at the complement');

-- refusals change nothing
select tests.state() as before \gset
select throws_ok($$ select tests.limit(1, 'b1', 'YES', 'buy', 1, 0.405) $$, 'BJ021', null, 'a price off the tick');
select throws_ok($$ select tests.limit(1, 'b1', 'YES', 'buy', 1, 1) $$, 'BJ021', null, 'a price of 1');
select throws_ok($$ select tests.limit(1, 'b1', 'YES', 'buy', 1, 0) $$, 'BJ021', null, 'a price of 0');
select throws_ok($$ select tests.limit(1, 'b1', 'YES', 'buy', 0, 0.5) $$, 'BJ020', null, 'no shares');
select throws_ok($$ select tests.limit(1, 'b1', 'YES', null, 1, 0.5) $$, 'BJ021', null, 'no side');
select throws_ok($$ select tests.limit(1, 'b1', 'MAYBE', 'buy', 1, 0.5) $$, 'BJ011', null, 'an unknown outcome');
select throws_ok($$ select tests.limit(1, 'nope', 'YES', 'buy', 1, 0.5) $$, 'BJ010', null, 'an unknown market');
select throws_ok(format($$ select bj.place_order(%s, 'b1', 'YES', 'back', 'limit', null, null, 2.03, 10, 'gtc',
                             null, false, 'persist', null, 'cancel_resting', null, null, null) $$, :dave),
                 'BJ021', null, 'odds off the ladder (2 to 3 goes by 0.02)');
select throws_ok($$ select tests.limit(1, 'b1', 'YES', 'buy', 1, 0.5, 'gtd') $$, 'BJ021', null, 'gtd without expires_at');
select throws_ok($$ select tests.limit(1, 'b1', 'YES', 'buy', 1, 0.5, 'gtd', p_expires => now() - interval '1 minute') $$,
                 'BJ021', null, 'an expiry in the past');
select throws_ok($$ select tests.limit(1, 'b1', 'YES', 'buy', 1, 0.5, 'ioc', true) $$, 'BJ021', null, 'post-only and ioc');
select throws_ok($$ select tests.limit(1, 'b1', 'YES', 'buy', 1, 0.5, 'ioc', p_kind => 'market') $$, 'BJ021', null,
                 'a market order with a price');
select throws_ok(format($$ select tests.limit(%s, 'b1', 'YES', 'buy', 5000, 0.5) $$, :alice), 'BJ001', null,
                 'an escrow the balance cannot cover');
select throws_ok(format($$ select tests.limit(%s, 'b1', 'YES', 'buy', 100, 0.9, 'fok') $$, :dave), 'BJ015', null,
                 'fill-or-kill that cannot fill whole');
select throws_ok(format($$ select bj.cancel_order(%s, %s) $$, :bob, tests.id(:'o1')), 'BJ012', null,
                 'cancelling another trader''s order is cancelling an unknown one');
select is(tests.state(), :'before', 'the refused calls changed nothing');

-- a direct fill: an ask meets the bid, at the bid's price (the resting one)
select tests.limit(:bob, 'b1', 'YES', 'sell', 4, 0.35) as o2 \gset
select is(:'o2'::jsonb ->> 'status', 'filled', 'an ask at 0.35 meets the bid at 0.40');
select is(:'o2'::jsonb -> 'fills', jsonb_build_array(jsonb_build_object('trade_id', (:'o2'::jsonb -> 'fills' -> 0 ->> 'trade_id')::bigint,
            'price', 0.4, 'shares', 4.000000, 'counterparty', 'book')),
          'and fills at the resting price, 0.40');
select is(tests.position(:bob, 'b1', 1), -4::numeric, 'selling what one does not hold is a short');
select is((select amount::numeric from bj.collateral where user_id = :bob), 4::numeric, 'with its collateral locked');
select is(tests.balance(:bob), 1000 + 1.60 - 0.026720 - 4, 'the seller receives 1.60 less the taker fee, less collateral');
select is(tests.position(:alice, 'b1', 1), 4::numeric, 'the bid''s trader holds the shares');
select is((select filled::numeric || '/' || remaining::numeric || '/' || locked_cash::numeric from bj.orders where id = tests.id(:'o1')),
          '4.000000/6.000000/2.400000', 'the bid is part filled, its escrow paid down');

-- minting: a buy of NO at 0.60 and the YES bid at 0.40 pay for new pairs together
select tests.limit(:carol, 'b1', 'NO', 'buy', 3, 0.60) as o3 \gset
select is(:'o3'::jsonb ->> 'filled', '3.000000', 'a NO buy at 0.60 meets the YES bid at 0.40');
select is((select pairs::numeric from bj.markets where code = 'b1'), 3::numeric, 'three pairs are minted');
select is((select pool::numeric from bj.markets where code = 'b1'), 3::numeric, 'funding the pool with 1 per pair');
select is(tests.balance(:carol), 1000 - 1.80 - 0.030060, 'the NO buyer pays 1.80 and the fee');
select is(tests.position(:carol, 'b1', 2) || '/' || tests.position(:alice, 'b1', 1), '3.000000/7.000000',
          'each gets their side of the pairs');
select is((select locked_cash::numeric from bj.orders where id = tests.id(:'o1')), 1.2::numeric,
          'the bid''s escrow paid its 1.20');

-- merging: a sale of YES and an ask for NO return pairs; the pool pays both
select tests.limit(:carol, 'b1', 'NO', 'sell', 2, 0.45) as o4 \gset
select is(:'o4'::jsonb ->> 'status', 'open', 'an ask for NO at 0.45 rests');
select is((:'o4'::jsonb -> 'locked' ->> 'shares')::numeric, 2::numeric, 'with the shares it sells in escrow');
select is(tests.position(:carol, 'b1', 2), 1::numeric, 'out of the position');
select tests.balance(:alice) as alice_before \gset
select tests.limit(:alice, 'b1', 'YES', 'sell', 2, 0.50) as o5 \gset
select is((:'o5'::jsonb -> 'fills' -> 0 ->> 'price')::numeric, 0.55, 'a YES sale at 0.50 merges with the NO ask: 1 − 0.45');
select is((select pairs::numeric || '/' || pool::numeric from bj.markets where code = 'b1'), '1.000000/1.000000',
          'two pairs are retired, their pool paid out');
select is(tests.balance(:alice), :alice_before + 1.10 - 0.018370, 'the seller receives 1.10 less the fee');
select is((select status from bj.orders where id = tests.id(:'o4')), 'filled', 'the ask is filled');
select is_empty('select * from admin.check_invariants()', 'invariants hold after fills, mints and merges');

-- price-time priority, partial fills
select tests.limit(:dave, 'b1', 'YES', 'sell', 5, 0.70) as o6 \gset
select tests.limit(:bob, 'b1', 'YES', 'sell', 5, 0.70) as o7 \gset
select tests.limit(:carol, 'b1', 'YES', 'buy', 7, 0.70) as o8 \gset
select is((select array_agg(mt.order_id order by t.id) from bj.trades t join bj.trades mt on mt.id = t.other_trade_id
            where t.order_id = tests.id(:'o8') and t.role = 'taker'), array[tests.id(:'o6'), tests.id(:'o7')],
          'two asks at one price fill oldest first');
select is((select remaining::numeric from bj.orders where id = tests.id(:'o7')), 3::numeric, 'the second one in part');

-- post-only, ioc
select tests.state() as before \gset
select throws_ok(format($$ select tests.limit(%s, 'b1', 'YES', 'buy', 1, 0.70, p_post_only => true) $$, :alice),
                 'BJ014', null, 'a post-only order that would take is refused');
select is(tests.state(), :'before', 'and changes nothing');
select tests.limit(:alice, 'b1', 'YES', 'buy', 1, 0.65, p_post_only => true) as o9 \gset
select is(:'o9'::jsonb ->> 'status', 'open', 'one that would not take rests');
select tests.limit(:carol, 'b1', 'YES', 'buy', 10, 0.70, 'ioc') as o10 \gset
select is((:'o10'::jsonb ->> 'status') || ' ' || (:'o10'::jsonb ->> 'filled') || ' ' || (:'o10'::jsonb ->> 'cancelled'),
          'cancelled 3.000000 7.000000', 'immediate-or-cancel fills what it can and cancels the rest');

-- self-trade prevention
select tests.limit(:alice, 'b1', 'YES', 'sell', 1, 0.60) as o11 \gset
select is((select status || ': ' || reason from bj.orders where id = tests.id(:'o9')),
          'cancelled: self-trade prevention: met by order ' || tests.id(:'o11'),
          'an order meeting its trader''s own resting order cancels that one (cancel_resting)');
select is(:'o11'::jsonb ->> 'status', 'open', 'and goes on (here, to rest)');
select tests.limit(:alice, 'b1', 'YES', 'buy', 1, 0.61, p_stp => 'cancel_newest') as o12 \gset
select is(:'o12'::jsonb ->> 'status', 'cancelled', 'with cancel_newest, the new order stops instead');
select is((select status from bj.orders where id = tests.id(:'o11')), 'open', 'and the resting one stays');

-- only what the order's price reaches is met: a bid below the trader's own asks leaves them
select tests.limit(:carol, 'b1', 'YES', 'sell', 1, 0.97) as own_ask \gset
select tests.limit(:carol, 'b1', 'YES', 'buy', 1, 0.02) as low_bid \gset
select is((select status from bj.orders where id = tests.id(:'own_ask')), 'open',
          'an order never meets its trader''s own order beyond its limit');
select is(:'low_bid'::jsonb ->> 'status', 'open', 'and rests');
select bj.cancel_orders(:carol, 'b1', array[tests.id(:'own_ask'), tests.id(:'low_bid')]) \gset

-- a cancel under self-trade prevention gives its escrow back before the taker's account is
-- judged and written: a sale that sells to the market maker down to its trader's own bid,
-- cancels it, and sells on
select tests.market('h3') \gset
select bj.trade(:alice, 'h3', 'YES', 'buy', 10, null, null, null, null) \gset
select floor((bj.market_prices(m))[1] * 100) / 100 as bid_price from bj.markets m where m.code = 'h3' \gset
select tests.limit(:alice, 'h3', 'YES', 'buy', 5, :bid_price) as own_bid \gset
select tests.balance(:alice) as alice_before \gset
select tests.limit(:alice, 'h3', 'YES', 'sell', 3, 0.30, 'ioc') as through \gset
select is((select status || ': ' || reason from bj.orders where id = tests.id(:'own_bid')),
          'cancelled: self-trade prevention: met by order ' || tests.id(:'through'),
          'a sale meeting its trader''s own bid cancels it');
select is(tests.balance(:alice),
          :alice_before + 5 * :bid_price + (select total::numeric from bj.trades where order_id = tests.id(:'through')),
          'and the balance is what it was, the bid''s escrow (5 at the bid''s price) and the sale''s proceeds');
select is(tests.position(:alice, 'h3', 1), 7::numeric, 'the position 10 less the 3 sold');
select is_empty($$ select * from admin.check_invariants() $$, 'the caches agree with the ledger');

-- client order ids: a retry is the same order, other terms are refused
select tests.limit(:dave, 'b1', 'YES', 'buy', 2, 0.30, p_client => 'd-1') as o13 \gset
select tests.limit(:dave, 'b1', 'YES', 'buy', 2, 0.30, p_client => 'd-1') as o13b \gset
select is(tests.id(:'o13b'), tests.id(:'o13'), 'a retried client_order_id returns the first order');
select ok((:'o13b'::jsonb ->> 'replayed')::boolean, 'marked as replayed');
select is((select count(*) from bj.orders where client_order_id = 'd-1'), 1::bigint, 'and places nothing new');
select throws_ok(format($$ select tests.limit(%s, 'b1', 'YES', 'buy', 2, 0.31, p_client => 'd-1') $$, :dave),
                 'BJ004', null, 'the same id with other terms is refused');

-- cancelling returns exactly what was locked
select tests.balance(:dave) as dave_before \gset
select bj.cancel_order(:dave, null, 'd-1') as c13 \gset
select is(:'c13'::jsonb ->> 'status', 'cancelled', 'an order cancels by its client_order_id');
select is(tests.balance(:dave), :dave_before + 0.60, 'and its escrow of 0.60 comes back');
select is(tests.ledger(bj.order_account(tests.id(:'o13'))), 0::numeric, 'its escrow account is empty');
select throws_ok(format($$ select bj.cancel_order(%s, %s) $$, :dave, tests.id(:'o13')), 'BJ007', null,
                 'a cancelled order cannot be cancelled again');

-- the betting form: back at odds with a stake, lay with a liability
select admin.create_market('b2', 'another book market', pricing => 'book') \gset
select bj.place_order(:dave, 'b2', 'YES', 'back', 'limit', null, null, 2.5, 10, 'gtc', null, false, 'persist',
                      null, 'cancel_resting', null, null, null) as back \gset
select is((:'back'::jsonb ->> 'price')::numeric || ' × ' || (:'back'::jsonb ->> 'shares')::numeric,
          '0.400000000 × 25.000000', 'backing at 2.5 with a stake of 10 buys 25 shares at 0.40');
select is((:'back'::jsonb ->> 'liability')::numeric, 10::numeric, 'a back risks its stake');
select bj.place_order(:bob, 'b2', 'YES', 'lay', 'limit', null, null, 3, 10, 'gtc', null, false, 'persist',
                      null, 'cancel_resting', null, null, null) as lay \gset
select is((:'lay'::jsonb ->> 'price')::numeric, 0.34::numeric, 'laying at 3 sells at 1/3, rounded up to the tick');
select is((:'lay'::jsonb ->> 'liability')::numeric, 20::numeric, 'its liability is stake × (odds − 1)');
select is((:'lay'::jsonb ->> 'filled')::numeric, 25::numeric, 'it fills the back at the back''s price');
select is(api.book('b2', 'YES', format => 'odds') -> 'outcomes' -> 0 -> 'back',
          '[{"odds": 2.94, "stake": 1.700000, "orders": 1}]'::jsonb,
          'the book in odds: the rest of the lay is a back offer at 1/0.34, snapped down the ladder');

-- routing between the book and the market maker (an LMSR market, b = 100)
select tests.market('h1') \gset
select tests.limit(:bob, 'h1', 'YES', 'sell', 10, 0.55) as a1 \gset
select is(:'a1'::jsonb ->> 'status', 'open', 'an ask above the market maker''s price rests');
select tests.limit(:alice, 'h1', 'YES', 'buy', 40, null, 'ioc', p_kind => 'market') as m1 \gset
select is((select array_agg(f ->> 'counterparty' || ' ' || (f ->> 'shares')::numeric order by f ->> 'counterparty')
             from jsonb_array_elements(:'m1'::jsonb -> 'fills') f), array['amm 30.000000', 'book 10.000000'],
          'a market order takes 30 from the market maker and the 10 resting at 0.55');
select is((select (f ->> 'price')::numeric from jsonb_array_elements(:'m1'::jsonb -> 'fills') f
            where f ->> 'counterparty' = 'book'), 0.55::numeric, 'the book''s at its price');
select is((select q from bj.markets where code = 'h1'), '{30,0}'::numeric[], 'the market maker moved by 30 in all');
select tests.limit(:carol, 'h1', 'YES', 'buy', 100, 0.60) as l1 \gset
select is((:'l1'::jsonb ->> 'filled')::numeric, bj.floor6(100 * ln(0.6 / 0.4) - 30),
          'a limit buy at 0.60 takes from the market maker up to 0.60');
select is(:'l1'::jsonb ->> 'status', 'open', 'and rests the rest');
select ok((bj.curve_prices('lmsr', (select q from bj.markets where code = 'h1'), 100))[1] <= 0.6,
          'the market maker stops at 0.60, not past it');
select is_empty($$ select * from admin.check_invariants() where invariant like 'no resting order%' $$,
                'no resting order is marketable against it');

-- phases: going in play cancels the orders placed to lapse
select tests.limit(:dave, 'b2', 'NO', 'buy', 1, 0.10, p_persistence => 'lapse') as lapse \gset
select tests.limit(:dave, 'b2', 'NO', 'buy', 1, 0.11) as persist \gset
select admin.set_phase('b2', 'in_play') as phase \gset
select is((select status from bj.orders where id = tests.id(:'lapse')), 'cancelled', 'a lapse order lapses in play');
select is((select status from bj.orders where id = tests.id(:'persist')), 'open', 'a persist order stays');
select is((:'phase'::jsonb ->> 'lapsed')::int, 1, 'set_phase says how many lapsed');

-- a batch: each order on its own, answered in order
select bj.place_orders(:dave, jsonb_build_array(
  jsonb_build_object('market', 'b2', 'outcome', 'NO', 'side', 'buy', 'shares', 1, 'price', 0.12),
  jsonb_build_object('market', 'b2', 'outcome', 'NO', 'side', 'buy', 'shares', 1, 'price', 0.125),
  jsonb_build_object('market', 'b2', 'outcome', 'NO', 'side', 'buy', 'shares', 1, 'price', 0.13))) as batch \gset
select is(jsonb_array_length(:'batch'::jsonb), 3, 'a batch answers each order');
select is(:'batch'::jsonb -> 1 ->> 'code', 'BJ021', 'a refused one with its error, in its place');
select is((:'batch'::jsonb -> 0 ->> 'status') || ' ' || (:'batch'::jsonb -> 2 ->> 'status'), 'open open',
          'and the others are placed');
select throws_ok(format($$ select bj.place_orders(%s, (select jsonb_agg(jsonb_build_object('market', 'b2'))
                                                          from generate_series(1, 21))) $$, :dave),
                 'BJ021', null, 'at most 20 orders');

-- gtd: an expired order is cancelled when met, never filled
select tests.limit(:bob, 'b2', 'NO', 'sell', 2, 0.90, 'gtd', p_expires => now() + interval '1 hour') as gtd \gset
update bj.orders set expires_at = clock_timestamp() - interval '1 second' where id = tests.id(:'gtd');
select tests.limit(:carol, 'b2', 'NO', 'buy', 2, 0.90) as meets \gset
select is((select status || ': ' || reason from bj.orders where id = tests.id(:'gtd')), 'cancelled: expired',
          'an expired order met by a buyer is cancelled');
select is((:'meets'::jsonb ->> 'filled')::numeric, 0::numeric, 'and fills nothing');

-- my orders
select is(jsonb_array_length(bj.my_orders(:dave, 'b2', 'open')), 3, 'my_orders lists a trader''s open orders');
select ok(not exists (select 1 from jsonb_array_elements(bj.my_orders(:dave, null, 'all')) o
                       where (o ->> 'order_id')::bigint in (select id from bj.orders where user_id <> :dave)),
          'and only theirs');

-- a stop-limit fires as the limit order it names
select tests.market('h2') \gset
select bj.trade(:dave, 'h2', 'YES', 'buy', 50, null, null, null, null) \gset
select bj.place_order(:dave, 'h2', 'YES', null, 'stop_loss', 50, null, null, null, null, null, null, null, null,
                      null, 0.55, 0.50, null) as sl \gset
select bj.trade(:alice, 'h2', 'NO', 'buy', 40, null, null, null, null) as down \gset
select is((select kind || ' ' || status from bj.orders where id = tests.id(:'sl')), 'limit open',
          'a stop-limit crossed becomes its limit order, resting at 0.50 for what it could not sell');
select is((select filled::numeric from bj.orders where id = tests.id(:'sl')), 10::numeric,
          'having sold to the market maker down to 0.50 first (q from 50 to 40)');
select is(jsonb_array_length(:'down'::jsonb -> 'triggered'), 1, 'the trade that crossed it lists it');

-- rounding: a taker pays its fills rounded up and receives them rounded down, to the millionth;
-- the fee on the rounded amount, rounded up
select admin.create_market('b4', 'rounding', pricing => 'book', fee_rate => 0.02) \gset
select tests.limit(:alice, 'b4', 'YES', 'sell', 1, 0.37) \gset
select tests.limit(:bob, 'b4', 'YES', 'buy', 0.333333, 0.37, 'ioc') as rb \gset
select results_eq(format('select amount::numeric, fee::numeric, total::numeric from bj.trades where order_id = %s', tests.id(:'rb')),
                  $$values (0.123334::numeric, 0.002467::numeric, 0.125801::numeric)$$,
                  'a buy of 0.333333 at 0.37 pays ceil(0.12333321) and a fee of ceil(0.00246668)');
select tests.limit(:alice, 'b4', 'YES', 'buy', 1, 0.37) \gset
select tests.limit(:bob, 'b4', 'YES', 'sell', 0.333333, 0.37, 'ioc') as rs \gset
select results_eq(format('select amount::numeric, fee::numeric, total::numeric from bj.trades where order_id = %s', tests.id(:'rs')),
                  $$values (0.123333::numeric, 0.002467::numeric, 0.120866::numeric)$$,
                  'a sale of 0.333333 at 0.37 receives floor(0.12333321), less a fee of ceil(0.00246666)');

-- a resting order is rounded over its whole quantity: three fills of a bid for 1 at 0.37 pay
-- 0.37 together, exactly what it escrowed (one by one, each rounded up, they would pay 0.370002)
select admin.create_market('b6', 'rounding over the whole', pricing => 'book') \gset
select tests.limit(:alice, 'b6', 'YES', 'buy', 1, 0.37) as whole \gset
select tests.limit(:bob, 'b6', 'YES', 'sell', 0.333333, 0.37, 'ioc') \gset
select tests.limit(:bob, 'b6', 'YES', 'sell', 0.333333, 0.37, 'ioc') \gset
select tests.limit(:bob, 'b6', 'YES', 'sell', 0.333334, 0.37, 'ioc') \gset
select results_eq(format('select amount::numeric from bj.trades where order_id = %s order by id', tests.id(:'whole')),
                  $$values (0.123334::numeric), (0.123333), (0.123333)$$,
                  'the maker pays ceil(0.37 F'') - ceil(0.37 F) for each fill taking its filled quantity from F to F''');

-- a maker fee: a resting bid escrows it with its cost, and its fills pay it from there
select admin.create_market('b5', 'maker fee', pricing => 'book', maker_fee_rate => 0.01) \gset
select tests.limit(:alice, 'b5', 'YES', 'buy', 10, 0.33) as mf \gset
select is((:'mf'::jsonb -> 'locked' ->> 'cash')::numeric, 3.333000,
          'a bid of 10 at 0.33 with a maker fee of 1 % escrows 3.30 and 0.033');
select tests.balance(:alice) as alice_mf \gset
select tests.limit(:bob, 'b5', 'YES', 'sell', 10, 0.33, 'ioc') \gset
select results_eq(format('select status, locked_cash::numeric from bj.orders where id = %s', tests.id(:'mf')),
                  $$values ('filled', 0::numeric)$$, 'filled, the escrow paid the cost and the fee exactly');
select is((select fee::numeric from bj.trades where order_id = tests.id(:'mf')), 0.033000, 'the maker''s fee');
select is(tests.balance(:alice), :alice_mf::numeric, 'and nothing more came from the maker''s cash');

-- the book's changes: one number per transaction, each level as it is after it
select admin.create_market('b3', 'three ways', '{A,B,C}', pricing => 'book') \gset
select id as b3 from bj.markets where code = 'b3' \gset
select tests.limit(:alice, 'b3', 'A', 'buy', 10, 0.30) as d1 \gset
select tests.limit(:bob, 'b3', 'A', 'buy', 5, 0.30) as d2 \gset
select tests.limit(:bob, 'b3', 'B', 'sell', 4, 0.60) as d3 \gset
select is((select book_seq from bj.markets where id = :b3), 1::bigint,
          'a transaction changing a book takes the next number of its sequence, once');
select results_eq(format('select outcome::int, side, price, shares::numeric, orders from bj.book_changes where market_id = %s order by 1, 2, 3', :b3),
                  $$values (1, 'buy', 0.3::numeric, 15::numeric, 2), (2, 'sell', 0.6, 4, 1)$$,
                  'and records each level it changed as the level is after it');
select is((api.book('b3') ->> 'seq')::bigint, 1::bigint, 'the book reads at that number');
select is((api.get_market('b3') ->> 'book_seq')::bigint, 1::bigint, 'and so does the market');
select bj.cancel_order(:bob, tests.id(:'d2')) \gset
select results_eq(format('select shares::numeric, orders from bj.book_changes where market_id = %s and outcome = 1', :b3),
                  $$values (10::numeric, 1)$$, 'a cancel records the level it left');
select tests.limit(:carol, 'b3', 'A', 'sell', 4, 0.30) \gset
select results_eq(format('select shares::numeric, orders from bj.book_changes where market_id = %s and outcome = 1 and side = ''buy''', :b3),
                  $$values (6::numeric, 1)$$, 'a fill records what remains at the level');
select tests.limit(:carol, 'b3', 'A', 'sell', 6, 0.30) \gset
select results_eq(format('select shares::numeric, orders from bj.book_changes where market_id = %s and outcome = 1 and side = ''buy''', :b3),
                  $$values (0::numeric, 0)$$, 'a fill that empties a level records it gone');
select is((select seq from bj.book_changes where market_id = :b3 group by seq), 1::bigint,
          'all under the one number of this transaction');

-- expiry: the sweep closes what is due, gives back its escrow, and records the level gone
select tests.limit(:dave, 'b3', 'C', 'buy', 20, 0.25, 'gtd', p_expires => now() + interval '1 hour') as due \gset
select tests.limit(:dave, 'b3', 'C', 'buy', 20, 0.20, 'gtd', p_expires => now() + interval '1 hour') as later \gset
select tests.balance(:dave) as dave_before \gset
update bj.orders set expires_at = clock_timestamp() - interval '1 second' where id = tests.id(:'due');
select ok(not (api.book('b3', 'C') -> 'outcomes' -> 0 -> 'bids') @> '[{"price": 0.25}]',
          'an expired order is out of the book as clients read it at once');
select is(admin.expire_orders(), 1, 'the sweep closes the orders whose time has come');
select is((select status || ': ' || reason from bj.orders where id = tests.id(:'due')), 'cancelled: expired',
          'as expired');
select is((select status from bj.orders where id = tests.id(:'later')), 'open', 'and leaves the others');
select is(tests.balance(:dave), :dave_before + 5.000000, 'giving back the escrow (20 × 0.25)');
select results_eq(format('select shares::numeric, orders from bj.book_changes where market_id = %s and outcome = 3 and price = 0.25', :b3),
                  $$values (0::numeric, 0)$$, 'and recording the level gone');
select is(admin.expire_orders(), 0, 'a second sweep finds nothing');
select throws_ok($$ select admin.expire_orders(0) $$, 'BJ021', null, 'the sweep''s limit lies between 1 and 100000');

-- an ask's shares coming back free the collateral of a short its trader took while they were
-- locked: carol holds 10, offers them, sells 5 more to the market maker (a short of 5), cancels
select tests.market('h4') \gset
select bj.trade(:carol, 'h4', 'YES', 'buy', 10, null, null, null, null) \gset
select tests.limit(:carol, 'h4', 'YES', 'sell', 10, 0.99) as h4_ask \gset
select bj.trade(:carol, 'h4', 'YES', 'sell', 5, null, null, null, null) \gset
select is((select c.amount::numeric from bj.collateral c join bj.markets m on m.id = c.market_id
            where c.user_id = :carol and m.code = 'h4'), 5::numeric, 'a short beside a resting ask locks its collateral');
select tests.balance(:carol) as carol_before \gset
select bj.cancel_order(:carol, tests.id(:'h4_ask')) \gset
select is(tests.position(:carol, 'h4', 1), 5::numeric, 'cancelling the ask gives its shares back');
select is((select c.amount::numeric from bj.collateral c join bj.markets m on m.id = c.market_id
            where c.user_id = :carol and m.code = 'h4'), 0::numeric, 'and the short they cover needs no collateral');
select is(tests.balance(:carol), :carol_before + 5, 'which comes back to cash');
select is(tests.ledger(bj.collateral_account(:carol, (select id from bj.markets where code = 'h4'))), 0::numeric,
          'through the ledger');

-- closing a market cancels its resting orders and gives back their escrow
select tests.balance(:alice) + tests.balance(:bob) + tests.balance(:carol) + tests.balance(:dave) as cash_before \gset
select sum(locked_cash)::numeric as escrow_before from bj.orders where market_id = (select id from bj.markets where code = 'b1') and status = 'open' \gset
select admin.close_market('b1') \gset
select is((select count(*) from bj.orders o join bj.markets m on m.id = o.market_id where m.code = 'b1' and o.status = 'open'),
          0::bigint, 'closing a market cancels its resting orders');
select is(tests.balance(:alice) + tests.balance(:bob) + tests.balance(:carol) + tests.balance(:dave),
          :cash_before + :escrow_before, 'and their escrow comes back');
select admin.resolve_market('b1', 'YES') \gset
select is((select status from bj.markets where code = 'b1'), 'resolved', 'a book market resolves');
select is((select pool::numeric from bj.markets where code = 'b1'), 0::numeric, 'its pool paid out');
select admin.void_market('b2') \gset
select is(tests.balance(:dave) > 0 and tests.balance(:bob) > 0, true, 'and one voids');
-- an account lists its newest 100 open orders and counts them all (api.my_orders lists the rest)
select tests.user('many') as many \gset
select admin.create_market('mo', 'mo', pricing => 'book') \gset
select count(tests.limit(:many, 'mo', 'YES', 'buy', 1, 0.01)) from generate_series(1, 105);
select is(jsonb_array_length(bj.account_json(:many) -> 'orders'), 100, 'an account lists 100 open orders');
select is((bj.account_json(:many) ->> 'open_orders')::int, 105, 'and counts all 105');
select is((bj.account_json(:many) -> 'orders' -> 0 ->> 'order_id')::bigint,
          (select id from bj.orders where user_id = :many order by id offset 5 limit 1),
          'the newest 100, oldest first');

-- a market order's time in force: immediate-or-cancel unless it says fill-or-kill (the
-- contract's default gtc is a limit order's)
select tests.market('mk') \gset
select is((tests.limit(:alice, 'mk', 'YES', 'buy', 3, null, null, p_kind => 'market')) ->> 'status', 'filled',
          'a market order without a time in force fills, as ioc');
select throws_ok($$ select tests.limit(1, 'mk', 'YES', 'buy', 1, null, 'gtc', p_kind => 'market') $$, 'BJ021', null,
                 'a market order named good-till-cancelled is refused');
select is_empty('select * from admin.check_invariants()', 'invariants hold at the end');

select * from finish();
rollback;
