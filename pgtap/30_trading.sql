-- sql/30_trading.sql: trades, shorts and collateral, quotes equal trades, every refusal raises
-- its documented SQLSTATE and changes nothing, slippage, idempotency, and the ledger's guard.
begin;
\ir helpers/setup.psql
select plan(108);

select tests.market('t1') \gset
select tests.market('t3', '{A,B,C}', 50, 0) \gset
select tests.user('alice') as alice, tests.user('bob') as bob \gset

-- a quote equals the trade that follows it, to the last digit
select bj.quote('t1', 'YES', 'buy', 10, null) as q1 \gset
select bj.trade(:alice, 't1', 'YES', 'buy', 10, null, null, null, null) as r1 \gset
select is((:'r1'::jsonb) - '{trade_id,market,outcome,side,balance,locked,position,triggered,root_trade_id,order_id,prices_after}'::text[],
          (:'q1'::jsonb) - '{market,outcome,side,price_before}'::text[], 'the quote equals the trade');
select is((:'r1'::jsonb ->> 'total')::numeric, 5.210535, 'buying 10 YES at b=100 costs 5.124948 + fee 0.085587');
select is((select balance::numeric from bj.users where id = :alice), 1000 - 5.210535, 'the balance is debited the total');
select is((select shares::numeric from bj.positions where user_id = :alice), 10.000000::numeric, 'the position holds 10 shares');
select is((select fee::numeric from bj.trades where user_id = :alice), 0.085587::numeric, 'the fee is recorded');
select is((select sum(amount) from bj.ledger where debit = 'fees'), 0.085587::numeric, 'the fee reaches the fee account');
select is((select q from bj.markets where code = 't1'), '{10,0}'::numeric[], 'the market''s quantities moved');

-- spend
select bj.trade(:bob, 't3', 'B', 'buy', null, 57.046624, null, null, null) as r2 \gset
select is((:'r2'::jsonb ->> 'shares')::numeric, 100.000000, 'spending C(100,0,0) − C(0,0,0) on 3 outcomes at b=50 buys 100 shares');
select ok((:'r2'::jsonb ->> 'total')::numeric <= 57.046624, 'and costs no more than the budget');

-- selling back, shorting, collateral
select bj.trade(:alice, 't1', 'YES', 'sell', 10, null, null, null, null) as r3 \gset
select is((:'r3'::jsonb ->> 'amount')::numeric, 5.124947, 'selling the 10 back returns the amount rounded down');
select is((:'r3'::jsonb ->> 'total')::numeric, 5.124947 - 0.085587, 'less the fee');
select bj.trade(:alice, 't1', 'NO', 'sell', 30, null, null, null, null) as r4 \gset
select is((:'r4'::jsonb ->> 'position')::numeric, -30.000000, 'selling shares one does not hold opens a short');
select is((select amount::numeric from bj.collateral where user_id = :alice), 30.000000::numeric,
          'the short''s maximum payout is locked as collateral');
select is((:'r4'::jsonb ->> 'locked')::numeric, 30.000000, 'the receipt shows it');
select is((select balance::numeric from bj.users where id = :alice),
          1000 - 5.210535 + (5.124947 - 0.085587) + (:'r4'::jsonb ->> 'total')::numeric - 30,
          'collateral leaves the available balance');
select bj.trade(:alice, 't1', 'NO', 'buy', 20, null, null, null, null) \gset
select is((select amount::numeric from bj.collateral where user_id = :alice), 10.000000::numeric,
          'covering part of the short releases its collateral');
select bj.trade(:alice, 't1', 'YES', 'sell', 5, null, null, null, null) \gset
select is((select amount::numeric from bj.collateral where user_id = :alice), 10.000000::numeric,
          'collateral is the worst payout over outcomes: max(0, −min pos)');
select is((select volume::numeric from bj.markets where code = 't1'),
          (select sum(amount)::numeric from bj.trades t join bj.markets m on m.id = t.market_id where m.code = 't1'),
          'a market''s volume is the market maker''s amounts, fees not counted');
select is_empty('select * from admin.check_invariants()', 'invariants hold after trading');

-- refusals: each raises its SQLSTATE and changes nothing
select tests.state() as before \gset
select throws_ok(format($$ select bj.trade(%s, 'nope', 'YES', 'buy', 1, null, null, null, null) $$, :bob), 'BJ010', 'no such market', 'unknown market');
select throws_ok(format($$ select bj.trade(%s, 't1', 'MAYBE', 'buy', 1, null, null, null, null) $$, :bob), 'BJ011', 'no such outcome in this market', 'unknown outcome');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'hold', 1, null, null, null, null) $$, :bob), 'BJ021', 'invalid argument', 'unknown side');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 0, null, null, null, null) $$, :bob), 'BJ020', 'invalid quantity', 'zero shares');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', -5, null, null, null, null) $$, :bob), 'BJ020', 'invalid quantity', 'negative shares');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 1e12, null, null, null, null) $$, :bob), 'BJ020', 'invalid quantity', 'absurd shares');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 0.0000001, null, null, null, null) $$, :bob), 'BJ020', 'invalid quantity', 'more than 6 decimals');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 1, 1, null, null, null) $$, :bob), 'BJ020', 'invalid quantity', 'both shares and spend');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', null, null, null, null, null) $$, :bob), 'BJ020', 'invalid quantity', 'neither shares nor spend');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'sell', null, 5, null, null, null) $$, :bob), 'BJ020', 'invalid quantity', 'spend on a sale');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 5000, null, null, null, null) $$, :bob), 'BJ001', 'the balance does not cover this', 'insufficient funds');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'sell', 2000, null, null, null, null) $$, :bob), 'BJ001', 'the balance does not cover this', 'a short beyond the collateral one can post');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 10, null, 5, null, null) $$, :bob), 'BJ003', 'the price moved past your bound', 'max_total exceeded');
select throws_ok(format($$ select bj.trade(%s, 't1', 'NO', 'sell', 1, null, null, 0.9, null) $$, :bob), 'BJ003', 'the price moved past your bound', 'min_total not reached');
select throws_ok(format($$ select bj.trade(%s, 't1', 'NO', 'sell', 1, null, 5, null, null) $$, :bob), 'BJ021', 'invalid argument', 'max_total on a sale');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 1, null, null, null, repeat('k', 201)) $$, :bob), 'BJ021', 'invalid argument', 'an overlong idempotency key');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 1, null, null, null, '') $$, :bob), 'BJ021', 'invalid argument', 'an empty idempotency key');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 1, null, 'NaN', null, null) $$, :bob), 'BJ021', 'invalid argument', 'max_total NaN bounds nothing: refused');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 1, null, 'Infinity', null, null) $$, :bob), 'BJ021', 'invalid argument', 'max_total Infinity');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 1, null, -1, null, null) $$, :bob), 'BJ021', 'invalid argument', 'a negative max_total');
select throws_ok(format($$ select bj.trade(%s, 't1', 'NO', 'sell', 1, null, null, 'NaN', null) $$, :bob), 'BJ021', 'invalid argument', 'min_total NaN');
select throws_ok(format($$ select bj.trade(%s, 't1', 'NO', 'sell', 1, null, null, '-Infinity', null) $$, :bob), 'BJ021', 'invalid argument', 'min_total -Infinity');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 'NaN', null, null, null, null) $$, :bob), 'BJ020', 'invalid quantity', 'NaN shares');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', null, 'NaN', null, null, null) $$, :bob), 'BJ020', 'invalid quantity', 'a NaN budget');
select is(tests.state(), :'before', 'the refused calls changed nothing');

-- a bound exactly equal to the total is met, on either side
select bj.quote('t1', 'YES', 'buy', 3, null) ->> 'total' as exact_buy \gset
select is((bj.trade(:bob, 't1', 'YES', 'buy', 3, null, :exact_buy, null, null) ->> 'total')::numeric, :exact_buy::numeric,
          'a buy whose total equals max_total executes');
select bj.quote('t1', 'YES', 'sell', 2, null) ->> 'total' as exact_sell \gset
select is((bj.trade(:bob, 't1', 'YES', 'sell', 2, null, null, :exact_sell, null) ->> 'total')::numeric, :exact_sell::numeric,
          'a sale whose total equals min_total executes');
select bj.quote('t1', 'YES', 'buy', 3, null) ->> 'total' as exact_buy \gset
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 3, null, %s - 0.000001, null, null) $$, :bob, :exact_buy),
                 'BJ003', null, 'a millionth below the total is refused');
select bj.quote('t1', 'YES', 'sell', 1, null) ->> 'total' as exact_sell \gset
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'sell', 1, null, null, %s + 0.000001, null) $$, :bob, :exact_sell),
                 'BJ003', null, 'a millionth above the proceeds is refused');
select admin.close_market('t1') \gset
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', 1, null, null, null, null) $$, :bob), 'BJ002', 'the market is not open for trading', 'a closed market');
select throws_ok(format($$ select bj.trade(%s, 't1', 'YES', 'buy', -1, null, null, null, null) $$, :bob), 'BJ002', 'the market is not open for trading', 'a closed market, whatever the quantity');
select throws_ok($$ select bj.quote('t1', 'YES', 'buy', -1, null) $$, 'BJ002', 'the market is not open for trading', 'and a quote says the same');
select admin.create_market('t5', 'past its close', close_at => clock_timestamp() - interval '1 second') \gset
select throws_ok($$ select bj.quote('t5', 'YES', 'buy', 1, null) $$, 'BJ002', null,
                 'a market past its close_at quotes nothing, though nothing has written its row');


-- idempotency
select bj.trade(:bob, 't3', 'A', 'buy', 1, null, null, null, 'key-1') as i1 \gset
select bj.trade(:bob, 't3', 'A', 'buy', 1, null, null, null, 'key-1') as i2 \gset
select is((:'i2'::jsonb) - 'replayed', :'i1'::jsonb, 'a retry with the same key returns the first receipt');
select is((select count(*) from bj.trades t join bj.markets m on m.id = t.market_id where t.user_id = :bob and m.code = 't3' and t.outcome = 1),
          1::bigint, 'and trades nothing new');
select throws_ok(format($$ select bj.trade(%s, 't3', 'A', 'buy', 2, null, null, null, 'key-1') $$, :bob), 'BJ004',
                 'this idempotency key was used with other arguments', 'the same key with other arguments is refused');
select tests.market('t4', '{A,B,C}', 50, 0) as t4 \gset
select throws_ok(format($$ select bj.trade(%s, 't4', 'A', 'buy', 1, null, null, null, 'key-1') $$, :bob), 'BJ004',
                 null, 'the same key on another market is refused (the market is part of the request)');
select throws_ok(format($$ select bj.trade(%s, 't3', 'B', 'buy', 1, null, null, null, 'key-1') $$, :bob), 'BJ004', null, 'so is another outcome');

-- retention: a trade's key is forgotten after idempotency_keep_h (oldest first, max_rows a call);
-- a client_order_id is kept as long as its order
select bj.trade(:bob, 't3', 'A', 'buy', 1, null, null, null, 'old-' || i) from generate_series(1, 3) i;
select bj.trade(:bob, 't3', 'A', 'buy', 1, null, null, null, 'recent') \gset
update bj.idempotency set created_at = clock_timestamp() - interval '49 hours' - i * interval '1 minute'
  from generate_series(1, 3) i where user_id = :bob and key = 'old-' || i;
insert into bj.idempotency (user_id, key, request, created_at)
  values (:bob, 'order:ancient', '{}', clock_timestamp() - interval '400 days');
select is(admin.prune_idempotency(2), 2, 'at most max_rows keys are forgotten a call');
select is((select array_agg(key order by key) from bj.idempotency where user_id = :bob and key like 'old-%'),
          array['old-1'], 'the oldest first');
select is(admin.prune_idempotency(), 1, 'then the rest');
select is((select count(*)::int from bj.idempotency where user_id = :bob and key in ('recent', 'order:ancient')), 2,
          'keys within the window, and client order ids, are kept');
select isnt((bj.trade(:bob, 't3', 'A', 'buy', 1, null, null, null, 'old-3') -> 'replayed'), 'true'::jsonb,
            'a retry after the window trades again');
select throws_ok($$ select admin.configure('idempotency_keep_h', '23') $$, 'BJ021', null, 'the window is at least 24 hours');
select throws_ok($$ select admin.prune_idempotency(0) $$, 'BJ021', null, 'max_rows is at least 1');
select throws_ok(format($$ select bj.trade(%s, 't3', 'A', 'sell', 1, null, null, null, 'key-1') $$, :bob), 'BJ004', null, 'another side');
select throws_ok(format($$ select bj.trade(%s, 't3', 'A', 'buy', 1, null, 100, null, 'key-1') $$, :bob), 'BJ004', null, 'another bound');
select is((select count(*) from bj.trades where user_id = :bob and market_id = :t4), 0::bigint, 'and nothing traded on the other market');
select lives_ok(format($$ select bj.trade(%s, 't3', 'A', 'buy', 1, null, null, null, 'key-1') $$, :alice),
                'a key is per trader: another trader''s same key is their own');

-- the v1 sigmoid curve: no short sales, and the market maker refuses what it cannot cover
select admin.create_market('sig', 'sigmoid', pricing => 'sigmoid') \gset
select tests.user('sigma') as sigma \gset
select bj.trade(:sigma, 'sig', 'YES', 'buy', 10, null, null, null, null) as sg \gset
select is((:'sg'::jsonb ->> 'amount')::numeric, bj.ceil6(10 * (bj.sigmoid_price(0, 100) + bj.sigmoid_price(10, 100)) / 2),
          'a sigmoid market prices at the average of start and end price');
select throws_ok(format($$ select bj.trade(%s, 'sig', 'YES', 'sell', 20, null, null, null, null) $$, :sigma), 'BJ005', null,
                 'a sigmoid market allows no short sale');
select lives_ok(format($$ select bj.trade(%s, 'sig', 'YES', 'sell', 10, null, null, null, null) $$, :sigma),
                'but sells what one holds');
select tests.fund(:sigma, 100000) \gset
select throws_ok(format($$ select bj.trade(%s, 'sig', 'NO', 'buy', 20000, null, null, null, null) $$, :sigma), 'BJ006', null,
                 'the market maker refuses a trade its pool could not pay out');
select is_empty('select * from admin.check_invariants()', 'invariants hold on the sigmoid market');

-- the ledger is append-only, for the owner too
set local role betjee_owner;
select throws_ok('update bj.ledger set amount = amount + 1', 'BJ900', null, 'the owner cannot update the ledger');
reset role;
select throws_ok('delete from bj.ledger', 'BJ900', null, 'nor can a superuser delete from it');

-- a market's definition and a trader's name are checked whenever they are written, not by
-- every trade (triggers on those columns rather than CHECK constraints)
select throws_ok($$ update bj.markets set title = '' where code = 't1' $$, '23514', null, 'a market needs a title');
select throws_ok($$ update bj.markets set fee_rate = 0.5 where code = 't1' $$, '23514', null, 'a fee rate below one half');
select throws_ok($$ update bj.markets set status = 'paused' where code = 't1' $$, '23514', null, 'a known status');
select throws_ok($$ update bj.markets set outcomes = '{A,B,C}' where code = 't1' $$, '23514', null, 'a quantity per outcome');
select throws_ok($$ insert into bj.markets (code, title, liquidity, fee_rate, outcomes, q)
                    values ('Bad Code', 'x', 100, 0, '{YES,NO}', '{0,0}') $$, '23514', null, 'a code of a-z, 0-9, _ and -');
select throws_ok($$ update bj.users set username = 'No Spaces' where id = $$ || :bob, '23514', null, 'a username of a-z, 0-9 and _');
select is((select array_agg(a.attname::text order by a.attname) from pg_trigger t
             join pg_attribute a on a.attrelid = t.tgrelid and a.attnum = any(t.tgattr::int2[])
            where t.tgrelid = 'bj.markets'::regclass and t.tgname = '_100_definition_is_valid'),
          array['code', 'fee_rate', 'liquidity', 'maker_fee_rate', 'outcomes', 'phase', 'pricing', 'status', 'tick', 'title'],
          'and a trade, which writes only the market''s state, does not run that check');

-- markets as clients see them, a page at a time
select count(tests.market(format('pg%s', i))) as made from generate_series(1, 55) i \gset
select admin.create_market('pgr', 'resolved', '{A,B,C}') \gset
select admin.close_market('pgr') \gset
select admin.resolve_market_split('pgr', '{"A": 0.3, "B": 0.7, "C": 0}') \gset
select admin.create_market('pgv', 'voided') \gset
select admin.void_market('pgv') \gset
create function tests.codes(p_markets jsonb) returns text[]
language sql as $$ select coalesce(array_agg(m ->> 'code' order by i), '{}') from jsonb_array_elements(p_markets) with ordinality e(m, i) $$;
-- every page from the first, max_rows at a time, each after the last code of the one before,
-- until a page shorter than max_rows: the codes, and the number of pages read
create function tests.walk(p_status text, p_rows int, out codes text[], out pages int)
language plpgsql as $$
declare
  v_page jsonb;
  v_after text;
begin
  codes := '{}';
  pages := 0;
  loop
    v_page := api.list_markets(status => p_status, max_rows => p_rows, after => v_after);
    pages := pages + 1;
    codes := codes || tests.codes(v_page);
    exit when jsonb_array_length(v_page) < p_rows;
    v_after := v_page -> -1 ->> 'code';
  end loop;
end $$;
create function tests.plan(p_query text) returns setof text
language plpgsql as $$ begin return query execute 'explain (verbose, costs off) ' || p_query; end $$;
grant execute on function tests.codes(jsonb), tests.walk(text, int) to anon;
select tests.state() as before \gset
select bj.market_json(m) as first_market from bj.markets m order by id limit 1 \gset
select tests.anonymous();
select is(tests.codes(api.list_markets()), (select array_agg(code order by id) from (select code, id from bj.markets order by id limit 50) m),
          'list_markets answers the first 50 markets, in the order they were created');
select is(tests.codes(api.list_markets(max_rows => 3, after => 'pg1')), array['pg2', 'pg3', 'pg4'],
          'max_rows of them after the market named by after');
select is((tests.walk(null, 7)).codes, (select array_agg(code order by id) from bj.markets),
          'reading page after page brings every market once, in order');
select is((tests.walk(null, 7)).pages, (select count(*)::int / 7 + 1 from bj.markets),
          'and stops at the first page shorter than max_rows');
select is((tests.walk('open', 5)).codes, (select array_agg(code order by id) from bj.markets where status = 'open' and (close_at is null or close_at > now())),
          'a status filter pages through the markets of that status');
select is(tests.codes(api.list_markets(status => 'voided')), array['pgv'], 'and answers them only');
select is(api.list_markets(after => (select code from bj.markets order by id desc limit 1)), '[]'::jsonb,
          'after the last market: an empty page');
select is(api.list_markets(max_rows => 500) -> 0, :'first_market'::jsonb,
          'a listed market is the market as get_market shows it');
select is(api.get_market('pgr') -> 'resolution' -> 'payouts', '{"A": 0.3, "B": 0.7, "C": 0}'::jsonb,
          'a resolved market shows its payouts');
select is((api.get_market('pgr') -> 'resolution' ->> 'payouts')::text, '{"A": 0.300000000, "B": 0.700000000, "C": 0.000000000}',
          'to the digit');
select is((api.get_market('pgv') -> 'resolution') - 'settled_at'::text, '{"void": true}'::jsonb, 'a voided market says so');
select is((select array_agg(k order by k) from jsonb_object_keys(api.get_market('pg1')) k),
          '{book_seq,close_at,code,fee_rate,liquidity,maker_fee_rate,outcomes,phase,pricing,resolution,status,tick,title,version,volume}'::text[],
          'a market''s fields');
select is(api.get_market('pg1') -> 'outcomes', '[{"outcome": "YES", "price": 0.500000000, "shares": 0.000000}, {"outcome": "NO", "price": 0.500000000, "shares": 0.000000}]'::jsonb,
          'its outcomes, in order, with price and shares');
select throws_ok($$ select api.list_markets(max_rows => 0) $$, 'BJ021', null, 'max_rows below 1 is refused');
select throws_ok($$ select api.list_markets(max_rows => 501) $$, 'BJ021', null, 'above 500 too');
select throws_ok($$ select api.list_markets(max_rows => null) $$, 'BJ021', null, 'and none');
select throws_ok($$ select api.list_markets(after => 'no-such-market') $$, 'BJ021', null, 'after names a market');
select throws_ok($$ select api.list_markets(status => 'mine') $$, 'BJ021', null, 'a status is one of the four');
-- without a cursor, changes answers the cursor and the first page, read in its snapshot
select api.changes() as first \gset
select is(:'first'::jsonb -> 'markets', api.list_markets(), 'changes without a cursor answers list_markets'' first page');
select is(:'first'::jsonb -> 'more', 'true'::jsonb, 'and says that more follow');
select is(:'first'::jsonb -> 'book', '[]'::jsonb, 'and no book changes');
select ok(:'first'::jsonb ->> 'cursor' ~ '^[0-9]+:[0-9]+:[0-9,]*@[0-9]+$', 'and a cursor');
select throws_ok(format($$ select api.changes_between(null, %L) $$, :'first'::jsonb ->> 'cursor'), 'BJ021', null,
                 'a catch-up needs the cursor it starts from');
select tests.clear_authentication();
select is(tests.state(), :'before', 'and reading (or being refused) changed nothing');
select is(jsonb_array_length(api.changes() -> 'markets'), 50, 'the first answer is one page, however many markets there are');
-- a list renders each market in its own plan (bj.market_json_at is inlined, not called per row)
select unalike((select string_agg(l, ' ') from tests.plan('select bj.market_json_at(m, now()) from bj.markets m') l),
               '%market_json_at%', 'market_json_at is inlined into the query that lists markets');

select * from finish();
rollback;
