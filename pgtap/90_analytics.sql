-- sql/90_analytics.sql: candles at any granularity (kept after settlement), calibration and
-- Brier scores on a constructed example, leaderboard, market stats and the house's results;
-- the public reads of the web app (the tape, trends, leaderboard, calibration, quote guards).
begin;
\ir helpers/setup.psql
select plan(70);

select tests.user('alice') as alice, tests.user('bob') as bob \gset
select tests.market('h1') as h1 \gset
select bj.trade(:alice, 'h1', 'YES', 'buy', 10, null, null, null, null) as t1 \gset
select bj.trade(:bob, 'h1', 'YES', 'buy', 30, null, null, null, null) as t2 \gset
select bj.trade(:alice, 'h1', 'YES', 'sell', 20, null, null, null, null) as t3 \gset
select bj.trade(:bob, 'h1', 'NO', 'buy', 5, null, null, null, null) as t4 \gset
-- place them in time: creation and three trades in 10:00-11:00, the last at 11:30
update bj.markets set created_at = '2026-01-01 10:00:00+00' where id = :h1;
update bj.trades set created_at = '2026-01-01 10:05:00+00' where id = (:'t1'::jsonb ->> 'trade_id')::bigint;
update bj.trades set created_at = '2026-01-01 10:10:00+00' where id = (:'t2'::jsonb ->> 'trade_id')::bigint;
update bj.trades set created_at = '2026-01-01 10:50:00+00' where id = (:'t3'::jsonb ->> 'trade_id')::bigint;
update bj.trades set created_at = '2026-01-01 11:30:00+00' where id = (:'t4'::jsonb ->> 'trade_id')::bigint;

select api.price_history('h1', '1 hour') as c \gset
select is(jsonb_array_length(:'c'::jsonb), 4, 'two hourly candles for each of two outcomes');
select is((:'c'::jsonb -> 0) - 't', jsonb_build_object('outcome', 'YES', 'open', 0.5, 'high', (:'t2'::jsonb ->> 'price_after')::numeric,
            'low', 0.5, 'close', (:'t3'::jsonb ->> 'price_after')::numeric,
            'volume', (:'t1'::jsonb ->> 'amount')::numeric + (:'t2'::jsonb ->> 'amount')::numeric + (:'t3'::jsonb ->> 'amount')::numeric),
          'the first YES candle opens at 0.5, peaks after the second trade, closes after the third, with their volume');
select is((:'c'::jsonb -> 0 ->> 't')::timestamptz, '2026-01-01 10:00:00+00'::timestamptz, 'buckets start on the hour');
select is((:'c'::jsonb -> 2 ->> 'close')::numeric,
          (select prices_after[1]::numeric from bj.trades where id = (:'t4'::jsonb ->> 'trade_id')::bigint),
          'the second YES candle closes at the last trade''s price');
select is(jsonb_array_length(api.price_history('h1', '1 minute')), 10, 'the same history at one-minute granularity');
select is(jsonb_array_length(api.price_history('h1', '1 day')), 2, 'and at one day');
select is(jsonb_array_length(api.price_history('h1', '1 hour', '2026-01-01 11:00:00+00')), 2, 'since limits the range');
select throws_ok($$ select api.price_history('h1', '0 seconds') $$, 'BJ021', null, 'a bucket must be at least a second');
select throws_ok($$ select api.price_history('h1', '1 mon') $$, 'BJ021', null, 'a bucket of a month has no fixed length: refused');
select throws_ok($$ select api.price_history('h1', '1 year -11 months') $$, 'BJ021', null, 'nor one spelled in years and months');
-- the minute candles give the same numbers as the trades
create function tests.raw_candles(p_market text, p_bucket interval, p_since timestamptz default null) returns jsonb
language plpgsql as $$
declare
  v_saved bj.candles_rolled;
  v_out jsonb;
begin
  delete from bj.candles_rolled w where w.market_id = (select id from bj.markets where code = p_market) returning * into v_saved;
  v_out := api.price_history(p_market, p_bucket, p_since);
  if v_saved.market_id is not null then
    insert into bj.candles_rolled values (v_saved.*);
  end if;
  return v_out;
end $$;
select is(admin.roll_candles() >= 4, true, 'a roll takes in every trade not yet rolled');
select is((select trade_id from bj.candles_rolled where market_id = :h1), (:'t4'::jsonb ->> 'trade_id')::bigint,
          'up to the market''s last trade');
select is(admin.roll_candles(), 0::bigint, 'and a second roll finds nothing new');
select is(api.price_history('h1', '1 hour'), :'c'::jsonb, 'rolled into minutes, the hourly candles are the same');
select is(api.price_history('h1', '1 minute'), tests.raw_candles('h1', '1 minute'), 'so are the minute candles');
select is(api.price_history('h1', '15 minutes', '2026-01-01 10:07:30+00'), tests.raw_candles('h1', '15 minutes', '2026-01-01 10:07:30+00'),
          'and candles from a time inside a minute');
select is(api.price_history('h1', '90 seconds'), tests.raw_candles('h1', '90 seconds'), 'buckets of no whole minutes read the trades');
select bj.trade(:alice, 'h1', 'NO', 'buy', 7, null, null, null, null) as t5 \gset
select bj.trade(:bob, 'h1', 'YES', 'buy', 3, null, null, null, null) as t6 \gset
select is(api.price_history('h1', '1 hour'), tests.raw_candles('h1', '1 hour'), 'trades after the last roll are read one by one');
select is(admin.roll_candles(), 2::bigint, 'the next roll takes in those two');
select is(api.price_history('h1', '1 hour'), tests.raw_candles('h1', '1 hour'), 'merged into the minute they fell in');
select results_eq($$ select * from analytics.candles('h1', '1 hour') $$,
                  $$ select * from jsonb_to_recordset(api.price_history('h1', '1 hour'))
                       as c(t timestamptz, outcome text, open numeric, high numeric, low numeric, close numeric, volume numeric)
                      order by t, outcome $$, 'analytics.candles: the same candles as rows');
select admin.resolve_market('h1', 'YES') \gset
select is(api.price_history('h1', '1 hour'), tests.raw_candles('h1', '1 hour'), 'candles stay available after resolution');

-- calibration on a constructed example: closing 0.8 for a YES win (Brier 0.08), closing 0.3
-- for a YES win (Brier 0.98), and a three-way market closing (0.5, 0.3, 0.2) won by C
-- (0.25 + 0.09 + 0.64 = 0.98)
select tests.market('k1') \gset
select tests.market('k2') \gset
select tests.market('k3', '{A,B,C}') \gset
select admin.resolve_market('k1', 'YES') \gset
select admin.resolve_market('k2', 'YES') \gset
select admin.resolve_market('k3', 'C') \gset
update bj.markets set closing_prices = '{0.8,0.2}' where code = 'k1';
update bj.markets set closing_prices = '{0.3,0.7}' where code = 'k2';
update bj.markets set closing_prices = '{0.5,0.3,0.2}' where code = 'k3';
select is((select distinct brier from analytics.calibration where market = 'k1'), 0.08::numeric, 'Brier score of 0.8 on a winner: 0.08');
select is((select distinct brier from analytics.calibration where market = 'k2'), 0.98::numeric, 'Brier score of 0.3 on a winner: 0.98');
select is((select distinct brier from analytics.calibration where market = 'k3'), 0.98::numeric, 'multi-class Brier: 0.25 + 0.09 + 0.64');
select is((select squared_error from analytics.calibration where market = 'k3' and outcome = 'C'), 0.64::numeric,
          'each outcome''s squared error');
-- h1 also resolved; its Brier is whatever its closing price gives
select is((select brier from analytics.calibration_summary where bucket = 'overall'),
          round((0.08 + 0.98 + 0.98 + (select distinct brier from analytics.calibration where market = 'h1')) / 4, 12),
          'the overall score is the mean over resolved markets');

-- leaderboard, stats, house
select is((select traders from analytics.market_stats where market = 'h1'), 2::bigint, 'market stats count traders');
select is((select username from analytics.leaderboard_live where rank = 1), 'bob', 'bob, who held the winner longest, leads');
select is((select pnl from analytics.house_pnl where market = 'h1'),
          (select fees + returned - subsidy from analytics.house_pnl where market = 'h1'),
          'the house''s result is fees plus what came back less the subsidy');

-- the book: orders and fills as analysts read them; resting orders count in net worth
select admin.create_market('bk', 'a book', pricing => 'book') \gset
select tests.user('carol') as carol, tests.user('dave') as dave \gset
select net_worth as carol_worth from analytics.leaderboard_live where username = 'carol' \gset
select bj.place_order(:carol, 'bk', 'YES', 'buy', 'limit', 10, 0.40, null, null, 'gtc', null, false, 'persist',
                      null, 'cancel_resting', null, null, null) as bid \gset
select is((select net_worth from analytics.leaderboard_live where username = 'carol'), :'carol_worth'::numeric,
          'a resting bid''s escrow still counts in its trader''s net worth');
select bj.place_order(:dave, 'bk', 'NO', 'buy', 'limit', 4, 0.60, null, null, 'ioc', null, false, 'persist',
                      null, 'cancel_resting', null, null, null) as take \gset
select results_eq($$ select market, outcome, how, shares, price, taker, taker_side, maker, maker_outcome, maker_side, maker_price
                       from analytics.fills where market = 'bk' $$,
                  $$ values ('bk', 'NO', 'mint', 4::numeric, 0.600000000::numeric, 'dave', 'buy', 'carol', 'YES', 'buy', 0.400000000::numeric) $$,
                  'a fill: the taker''s side, and the maker''s (a mint: the other outcome at the complement)');
select results_eq($$ select username, kind, side, price, shares, filled, remaining, status from analytics.orders where market = 'bk' order by order_id $$,
                  $$ values ('carol', 'limit', 'buy', 0.400000000::numeric, 10::numeric, 4::numeric, 6::numeric, 'open'),
                            ('dave', 'limit', 'buy', 0.600000000::numeric, 4::numeric, 4::numeric, 0::numeric, 'filled') $$,
                  'orders as they stand');
select is((select count(*) from analytics.trades where market = 'bk' and how = 'mint'), 2::bigint,
          'the trades view shows both sides of it');

-- the public reads behind the web app's screens
select tests.user('erin') as erin \gset
select tests.market('w1') as w1 \gset
select bj.trade(:erin, 'w1', 'YES', 'buy', 10, null, null, null, null) as w_t1 \gset
select bj.trade(:erin, 'w1', 'NO', 'buy', 4, null, null, null, null) as w_t2 \gset
select is(jsonb_array_length(api.market_trades('w1')), 2, 'the tape: every trade of the market');
select is((select array_agg(k order by k) from jsonb_object_keys(api.market_trades('w1') -> 0) k),
          '{at,outcome,price,price_after,shares,side}', 'and no trader named in it, nor a trade''s id');
select is(api.market_trades('w1', 1) -> 0 ->> 'outcome', 'NO', 'newest first, at most max_rows');
select is((select count(*)::int from jsonb_array_elements(api.market_trades('bk')) e),
          (select count(*)::int from bj.trades t join bj.markets m on m.id = t.market_id where m.code = 'bk' and t.role is distinct from 'maker'),
          'a book fill is on the tape once (its taker''s side)');
select throws_ok($$ select api.market_trades('w1', 0) $$, 'BJ021', null, 'max_rows lies between 1 and 500');
select throws_ok($$ select api.market_trades('nowhere') $$, 'BJ010', null, 'an unknown market');

select api.market_trends(markets => '{w1}') -> 0 as trend \gset
select is(jsonb_array_length(:'trend'::jsonb -> 'outcomes' -> 0 -> 'spark'), 25, 'a trend: 25 hourly prices');
select is((:'trend'::jsonb -> 'outcomes' -> 0 ->> 'price')::numeric,
          (api.get_market('w1') -> 'outcomes' -> 0 ->> 'price')::numeric, 'ending at the price now');
select is((:'trend'::jsonb -> 'outcomes' -> 0 ->> 'price_24h_ago')::numeric, 0.5::numeric,
          'a market younger than a day: its opening price 24 hours ago');
select is((:'trend'::jsonb -> 'outcomes' -> 0 ->> 'change_24h')::numeric,
          (:'trend'::jsonb -> 'outcomes' -> 0 ->> 'price')::numeric - 0.5, 'the change is now less then');
select is((:'trend'::jsonb ->> 'volume_24h')::numeric,
          (:'w_t1'::jsonb ->> 'amount')::numeric + (:'w_t2'::jsonb ->> 'amount')::numeric, 'the day''s volume');
select is((select count(*)::int from jsonb_array_elements(api.market_trends('resolved'))),
          (select count(*)::int from bj.markets where status = 'resolved'), 'trends by status');
select throws_ok($$ select api.market_trends('sideways') $$, 'BJ021', null, 'a status that is none');
select is((select jsonb_agg(e ->> 'market') from jsonb_array_elements(api.market_trends(markets => '{w1,h1,nowhere}')) e),
          '["h1", "w1"]'::jsonb, 'the markets named (unknown codes skipped)');

-- a market's last trades, read by its time index
select results_eq($$ select * from analytics.recent_trades('h1', 2) $$,
                  $$ select * from analytics.trades where market = 'h1' order by at desc, trade_id desc limit 2 $$,
                  'recent_trades: the last trades of a market as analytics.trades has them');
select is((select count(*) from analytics.recent_trades('h1')), (select count(*) from analytics.trades where market = 'h1'),
          'all of them when there are fewer than asked');
select throws_ok($$ select * from analytics.recent_trades('h1', 0) $$, 'BJ021', null, 'at least one row is asked for');
select throws_ok($$ select * from analytics.recent_trades('nowhere') $$, 'BJ010', null, 'of a market that exists');

-- the leaderboard is the live ranking as of its last refresh
select is(api.leaderboard(100), '[]'::jsonb, 'before the first ranking the leaderboard is empty');
select is(admin.refresh_leaderboard(), (select count(*) from analytics.leaderboard_live), 'a refresh ranks every trader');
select set_eq($$ select rank, username, balance, locked, positions_value, net_worth, profit, is_bot from analytics.leaderboard $$,
              $$ select * from analytics.leaderboard_live $$, 'as the live ranking has them');
select bj.trade(:carol, 'w1', 'YES', 'buy', 50, null, null, null, null) \gset
select isnt((select net_worth from analytics.leaderboard_live where username = 'carol'),
            (select net_worth from analytics.leaderboard where username = 'carol'), 'a trade moves the live ranking at once');
select is((select count(*) from analytics.leaderboard l where l.as_of < now() - interval '1 hour'), 0::bigint, 'as_of says when it was ranked');
select admin.refresh_leaderboard() \gset
select set_eq($$ select rank, username, balance, locked, positions_value, net_worth, profit, is_bot from analytics.leaderboard $$,
              $$ select * from analytics.leaderboard_live $$, 'and the leaderboard at its next refresh');
select is((select array_agg(k order by k) from jsonb_object_keys(api.leaderboard(1) -> 0) k),
          '{as_of,is_bot,net_worth,profit,rank,username}', 'the leaderboard: rank, name, bot or not, net worth, profit, when');
select is((select jsonb_agg(e -> 'username') from jsonb_array_elements(api.leaderboard(100)) e),
          (select jsonb_agg(to_jsonb(l.username) order by l.rank, l.username) from analytics.leaderboard l),
          'in the analysts'' order');
select throws_ok($$ select api.leaderboard(101) $$, 'BJ021', null, 'at most 100 rows');
select is((api.calibration() ->> 'brier')::numeric,
          (select brier from analytics.calibration_summary where bucket = 'overall'), 'calibration: the mean Brier score');
select is(jsonb_array_length(api.calibration() -> 'points'), (select count(*)::int from analytics.calibration),
          'every resolved outcome');

-- a quote with a tolerance gives the guard to send, and the trade takes it
select api.quote('w1', 'YES', 'buy', 5, null, 0.02) as qb \gset
select is((:'qb'::jsonb ->> 'max_total')::numeric, bj.ceil6((:'qb'::jsonb ->> 'total')::numeric * 1.02),
          'max_total: the total 2 % more, rounded up');
select is((api.quote('w1', 'YES', 'sell', 5, null, 0.02) ->> 'min_total')::numeric,
          bj.floor6((api.quote('w1', 'YES', 'sell', 5, null) ->> 'total')::numeric * 0.98), 'min_total: 2 % less, rounded down');
select ok(bj.trade(:erin, 'w1', 'YES', 'buy', 5, null, (:'qb'::jsonb ->> 'max_total')::numeric, null, null) ? 'trade_id',
          'the trade takes the quote''s guard');
select throws_ok($$ select api.quote('w1', 'YES', 'buy', 5, null, 0.6) $$, 'BJ021', null, 'a tolerance beyond 0.5 is refused');
select is((select count(*)::int from jsonb_array_elements(bj.account_json(:erin) -> 'positions') p
            where (p ->> 'pnl')::numeric <> (p ->> 'value')::numeric - (p ->> 'cost_basis')::numeric), 0,
          'a position''s P&L is its value less its cost basis');

select tests.authenticate_as(:erin);
select is((select jsonb_agg(e -> 'trade_id') from jsonb_array_elements(api.my_trades(max_rows => 2, latest => true)) e),
          (select jsonb_agg(to_jsonb(x.id) order by x.id) from (select id from bj.trades where user_id = :erin order by id desc limit 2) x),
          'my trades: the latest, oldest first');
select is((select jsonb_agg(e -> 'trade_id') from jsonb_array_elements(api.my_trades(max_rows => 2)) e),
          (select jsonb_agg(to_jsonb(x.id) order by x.id) from (select id from bj.trades where user_id = :erin order by id limit 2) x),
          'or the first');
select tests.clear_authentication();

select * from finish();
rollback;
