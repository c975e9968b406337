-- sql/40_orders.sql: stop-loss and take-profit orders fired inside the crossing trade.
begin;
\ir helpers/setup.psql
select plan(41);

select tests.market('c1') \gset
select tests.user('user1') as u1, tests.user('user2') as u2, tests.user('user3') as u3,
       tests.user('whale') as whale, tests.user('shorty') as shorty \gset
select bj.trade(:u1, 'c1', 'YES', 'buy', 100, null, null, null, null) \gset
select bj.trade(:u2, 'c1', 'YES', 'buy', 100, null, null, null, null) \gset
select bj.trade(:u3, 'c1', 'YES', 'buy', 100, null, null, null, null) \gset

-- YES is at 0.95 with q = (300, 0). Buying 300 NO takes it to 0.5; each 100 YES sold then
-- takes it to 0.27, 0.12 and 0.05. Triggers 0.55, 0.30, 0.15 each fire only after the one before.
select (bj.place_conditional(:u1, 'c1', 'YES', null, 'stop_loss', 100, 0.55, null, null) ->> 'order_id')::bigint as o1 \gset
select (bj.place_conditional(:u2, 'c1', 'YES', null, 'stop_loss', 100, 0.30, null, null) ->> 'order_id')::bigint as o2 \gset
select (bj.place_conditional(:u3, 'c1', 'YES', null, 'stop_loss', 100, 0.15, null, null) ->> 'order_id')::bigint as o3 \gset
select throws_ok(format($$ select bj.place_conditional(%s, 'c1', 'YES', null, 'stop_loss', 10, 0.99, null, null) $$, :u1), 'BJ021', null,
                 'an order whose trigger is already crossed is refused');
select throws_ok(format($$ select bj.place_conditional(%s, 'c1', 'YES', null, 'stop_loss', 10, 0.5, null, null) $$, :whale), 'BJ005', null,
                 'an order needs a position');

select bj.trade(:whale, 'c1', 'NO', 'buy', 300, null, null, null, null) as root \gset
select is(jsonb_array_length(:'root'::jsonb -> 'triggered'), 3, 'one trade fires a three-level cascade');
select is((select array_agg(order_id order by id) from bj.trades where root_trade_id = (:'root'::jsonb ->> 'trade_id')::bigint),
          array[:o1, :o2, :o3]::bigint[], 'each level fires in turn, linked to the root trade');
select is((select array_agg(status order by id) from bj.orders), '{filled,filled,filled}'::text[], 'every order is filled');
select is((select sum(abs(shares))::numeric from bj.positions where user_id in (:u1, :u2, :u3)), 0::numeric,
          'the stops closed every position');
select is((select (prices_after[1])::numeric from bj.trades order by id desc limit 1),
          (bj.display_prices(bj.lmsr_prices('{0,300}', 100)))[1], 'the cascade left YES at the price of q = (0, 300)');
select is((select count(*) from bj.ledger where trade_id in (select id from bj.trades where root_trade_id is not null) and kind = 'fee'),
          3::bigint, 'fired trades pay fees like any other');
select is_empty('select * from admin.check_invariants()', 'invariants hold after the cascade');

-- an order fires once
select bj.trade(:u1, 'c1', 'YES', 'buy', 50, null, null, null, null) \gset
select bj.trade(:whale, 'c1', 'NO', 'buy', 10, null, null, null, null) as again \gset
select is(jsonb_array_length(:'again'::jsonb -> 'triggered'), 0, 'a filled order never fires again');

-- the bound: max_cascade fired per root trade, the rest on the market's next trade
select tests.market('c2') \gset
select count(bj.trade(u, 'c2', 'YES', 'buy', 100, null, null, null, null)) from unnest(array[:u1, :u2, :u3]) u \gset
select (bj.place_conditional(:u1, 'c2', 'YES', null, 'stop_loss', 100, 0.55, null, null) ->> 'order_id')::bigint as b1 \gset
select (bj.place_conditional(:u2, 'c2', 'YES', null, 'stop_loss', 100, 0.30, null, null) ->> 'order_id')::bigint as b2 \gset
select (bj.place_conditional(:u3, 'c2', 'YES', null, 'stop_loss', 100, 0.15, null, null) ->> 'order_id')::bigint as b3 \gset
update bj.settings set value = '2' where key = 'max_cascade';
select bj.trade(:whale, 'c2', 'NO', 'buy', 300, null, null, null, null) as bounded \gset
select is(jsonb_array_length(:'bounded'::jsonb -> 'triggered'), 2, 'max_cascade bounds the orders one trade fires');
select is((select status from bj.orders where id = :b3), 'open', 'the order left over stays open');
select bj.trade(:whale, 'c2', 'NO', 'buy', 1, null, null, null, null) as next \gset
select is((:'next'::jsonb -> 'triggered' -> 0 ->> 'order_id')::bigint, :b3::bigint, 'and fires on the market''s next trade');
update bj.settings set value = '20' where key = 'max_cascade';

-- a cancelled order never fires; a crossed order whose position is gone is cancelled with a reason
select tests.market('c3') \gset
select count(bj.trade(u, 'c3', 'YES', 'buy', 100, null, null, null, null)) from unnest(array[:u1, :u2]) u \gset
select (bj.place_conditional(:u1, 'c3', 'YES', null, 'stop_loss', 100, 0.55, null, null) ->> 'order_id')::bigint as x1 \gset
select (bj.place_conditional(:u2, 'c3', 'YES', null, 'stop_loss', 100, 0.55, null, null) ->> 'order_id')::bigint as x2 \gset
select bj.cancel_order(:u1, :x1) \gset
select throws_ok(format('select bj.cancel_order(%s, %s)', :u1, :x1), 'BJ007', null, 'a cancelled order cannot be cancelled again');
select throws_ok(format('select bj.cancel_order(%s, %s)', :u1, :x2), 'BJ012', null, 'nor can another trader''s order');
select bj.trade(:u2, 'c3', 'YES', 'sell', 100, null, null, null, null) \gset
select bj.trade(:whale, 'c3', 'NO', 'buy', 300, null, null, null, null) as c3 \gset
select is(jsonb_array_length(:'c3'::jsonb -> 'triggered'), 0, 'a cancelled order never fires');
select is((select status || ': ' || reason from bj.orders where id = :x2), 'cancelled: the position is closed',
          'a crossed order whose position is gone is cancelled with its reason, and the root trade stands');
select isnt((:'c3'::jsonb ->> 'trade_id'), null, 'the root trade executed');

-- stops on shorts, and take-profit: a short's stop fires as the price rises
select tests.market('c4') \gset
select bj.trade(:shorty, 'c4', 'YES', 'sell', 50, null, null, null, null) \gset
select (bj.place_conditional(:shorty, 'c4', 'YES', null, 'stop_loss', 50, 0.6, null, null) ->> 'direction') as dir \gset
select is(:'dir'::text, 'short', 'an order on a short position is a short stop');
select bj.trade(:u1, 'c4', 'YES', 'buy', 150, null, null, null, null) as up \gset
select is(:'up'::jsonb -> 'triggered' -> 0 ->> 'side', 'buy', 'a short''s stop-loss fires as the price rises past it, buying back');
select is((select shares::numeric from bj.positions where user_id = :shorty), 0::numeric, 'the short is closed');
select is((select amount::numeric from bj.collateral where user_id = :shorty), 0::numeric, 'and its collateral released');

select tests.market('c5') \gset
select bj.trade(:u3, 'c5', 'YES', 'buy', 40, null, null, null, null) \gset
select bj.place_conditional(:u3, 'c5', 'YES', null, 'take_profit', 15, 0.7, null, null) \gset
select bj.trade(:whale, 'c5', 'YES', 'buy', 100, null, null, null, null) as tp \gset
select is((:'tp'::jsonb -> 'triggered' -> 0 ->> 'shares')::numeric, 15.000000, 'a take-profit on a long fires as the price rises, selling its shares');
-- the receipt of a trade that fires another trader's order shows that order's public facts
-- only (what the market's history shows anyone), and the caller's own account
select tests.market('c6') \gset
select tests.user('owner6') as owner6, tests.user('taker6') as taker6 \gset
select bj.trade(:owner6, 'c6', 'YES', 'buy', 100, null, null, null, null) \gset
-- the trigger is exactly the price YES will have after the taker buys 50 NO
select (bj.display_prices(bj.lmsr_prices('{100,50}', 100)))[1] as exact \gset
select (bj.place_conditional(:owner6, 'c6', 'YES', null, 'stop_loss', 100, :exact, null, null) ->> 'order_id')::bigint as o6 \gset
select bj.trade(:taker6, 'c6', 'NO', 'buy', 50, null, null, null, null) as r6 \gset
select is(jsonb_array_length(:'r6'::jsonb -> 'triggered'), 1, 'a long''s stop-loss fires when the price falls exactly onto its trigger');
select is((select array_agg(k order by k) from jsonb_object_keys(:'r6'::jsonb -> 'triggered' -> 0) k),
          '{avg_price,market,order_id,outcome,price_after,shares,side,trade_id}'::text[],
          'a fired order shows public facts only: no balance, position or collateral of its owner');
select is((:'r6'::jsonb ->> 'balance')::numeric, (select balance::numeric from bj.users where id = :taker6),
          'the receipt''s balance is the caller''s');
select is((:'r6'::jsonb -> 'triggered' -> 0 ->> 'order_id')::bigint, :o6::bigint, 'and the fired order is named');

-- rising exactly onto a trigger fires too (a long's take-profit)
select tests.market('c7') \gset
select bj.trade(:owner6, 'c7', 'YES', 'buy', 10, null, null, null, null) \gset
select (bj.display_prices(bj.lmsr_prices('{60,0}', 100)))[1] as exact7 \gset
select bj.place_conditional(:owner6, 'c7', 'YES', null, 'take_profit', 10, :exact7, null, null) \gset
select bj.trade(:taker6, 'c7', 'YES', 'buy', 50, null, null, null, null) as r7 \gset
select is(jsonb_array_length(:'r7'::jsonb -> 'triggered'), 1, 'a take-profit fires when the price rises exactly onto its trigger');
-- and a short's stop-loss: rising exactly onto it
select tests.market('c8') \gset
select bj.trade(:owner6, 'c8', 'YES', 'sell', 10, null, null, null, null) \gset
select (bj.display_prices(bj.lmsr_prices('{30,0}', 100)))[1] as exact8 \gset
select bj.place_conditional(:owner6, 'c8', 'YES', null, 'stop_loss', 10, :exact8, null, null) \gset
select bj.trade(:taker6, 'c8', 'YES', 'buy', 40, null, null, null, null) as r8 \gset
select is(jsonb_array_length(:'r8'::jsonb -> 'triggered'), 1, 'a short''s stop-loss fires when the price rises exactly onto its trigger');
-- a short's take-profit: falling exactly onto it
select tests.market('c9') \gset
select bj.trade(:owner6, 'c9', 'YES', 'sell', 10, null, null, null, null) \gset
select (bj.display_prices(bj.lmsr_prices('{-10,40}', 100)))[1] as exact9 \gset
select bj.place_conditional(:owner6, 'c9', 'YES', null, 'take_profit', 10, :exact9, null, null) \gset
select bj.trade(:taker6, 'c9', 'NO', 'buy', 40, null, null, null, null) as r9 \gset
select is(jsonb_array_length(:'r9'::jsonb -> 'triggered'), 1, 'a short''s take-profit fires when the price falls exactly onto its trigger');

-- a stop larger than the position left sells only what is held: a long never turns short
select tests.market('c10') \gset
select tests.user('partial') as partial \gset
select bj.trade(:partial, 'c10', 'YES', 'buy', 100, null, null, null, null) \gset
select bj.place_conditional(:partial, 'c10', 'YES', null, 'stop_loss', 100, 0.5, null, null) \gset
select bj.trade(:partial, 'c10', 'YES', 'sell', 70, null, null, null, null) \gset
select bj.trade(:taker6, 'c10', 'NO', 'buy', 200, null, null, null, null) as r10 \gset
select is((:'r10'::jsonb -> 'triggered' -> 0 ->> 'shares')::numeric, 30.000000, 'the stop sells the 30 shares left, not its 100');
select is((select shares::numeric from bj.positions where user_id = :partial and market_id = :market), 0::numeric,
          'the position is closed, not short');
select is(coalesce((select amount::numeric from bj.collateral where user_id = :partial), 0), 0::numeric, 'and no collateral is locked');

-- the trader's own order fired by their own trade: the receipt shows the account after it
select tests.market('c11') \gset
select tests.user('selfie') as selfie \gset
select bj.trade(:selfie, 'c11', 'YES', 'buy', 50, null, null, null, null) \gset
select bj.place_conditional(:selfie, 'c11', 'YES', null, 'stop_loss', 50, 0.45, null, null) \gset
select bj.trade(:selfie, 'c11', 'NO', 'buy', 100, null, null, null, null) as r11 \gset
select is(jsonb_array_length(:'r11'::jsonb -> 'triggered'), 1, 'a trade can fire its trader''s own stop');
select is((:'r11'::jsonb ->> 'balance')::numeric, (select balance::numeric from bj.users where id = :selfie),
          'and its receipt''s balance is the balance after the cascade');

-- a trigger exactly at the current price would fire at once: refused
select tests.market('c12') \gset
select bj.trade(:selfie, 'c12', 'YES', 'buy', 10, null, null, null, null) \gset
select (bj.display_prices(bj.lmsr_prices('{10,0}', 100)))[1] as now12 \gset
select throws_ok(format($$ select bj.place_conditional(%s, 'c12', 'YES', null, 'stop_loss', 10, %s, null, null) $$, :selfie, :now12),
                 'BJ021', null, 'a stop-loss exactly at the current price is refused');
select throws_ok(format($$ select bj.place_conditional(%s, 'c12', 'YES', null, 'take_profit', 10, %s, null, null) $$, :selfie, :now12),
                 'BJ021', null, 'and so is a take-profit');

-- two orders crossed by one trade fire deepest first: the one the price passed first
select tests.market('c13') \gset
select tests.user('deep') as deep, tests.user('shallow') as shallow \gset
select bj.trade(:deep, 'c13', 'YES', 'buy', 100, null, null, null, null) \gset
select bj.trade(:shallow, 'c13', 'YES', 'buy', 100, null, null, null, null) \gset
select (bj.place_conditional(:shallow, 'c13', 'YES', null, 'stop_loss', 100, 0.50, null, null) ->> 'order_id')::bigint as s13 \gset
select (bj.place_conditional(:deep, 'c13', 'YES', null, 'stop_loss', 100, 0.60, null, null) ->> 'order_id')::bigint as d13 \gset
select bj.trade(:taker6, 'c13', 'NO', 'buy', 300, null, null, null, null) as r13 \gset
select is(array(select (f ->> 'order_id')::bigint from jsonb_array_elements(:'r13'::jsonb -> 'triggered') f),
          array[:d13, :s13]::bigint[], 'the order crossed deepest fires first');

-- a fired stop does not start its owner's cooldown: the owner may trade at once
update bj.settings set value = '60000' where key = 'trade_cooldown_ms';
select tests.market('c14') \gset
select tests.user('cool') as cool \gset
select bj.trade(:cool, 'c14', 'YES', 'buy', 50, null, null, null, null) \gset
select bj.place_conditional(:cool, 'c14', 'YES', null, 'stop_loss', 50, 0.45, null, null) \gset
update bj.users set last_trade_at = clock_timestamp() - interval '1 hour' where id = :cool;
update bj.users set last_trade_at = null where id = :taker6;
select bj.trade(:taker6, 'c14', 'NO', 'buy', 100, null, null, null, null) as r14 \gset
select is(jsonb_array_length(:'r14'::jsonb -> 'triggered'), 1, 'the owner''s stop fired');
select lives_ok(format($$ select bj.trade(%s, 'c14', 'YES', 'buy', 1, null, null, null, null) $$, :cool),
                'and its owner trades at once: a fired order is not their trade');
update bj.settings set value = '0' where key = 'trade_cooldown_ms';

select is_empty('select * from admin.check_invariants()', 'invariants hold at the end');

select * from finish();
rollback;
