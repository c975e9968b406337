-- sql/50_lifecycle.sql: creation's subsidy, closing, resolution (exact payouts with longs,
-- shorts and fees), split resolution and its preview, voiding.
begin;
\ir helpers/setup.psql
select plan(42);

select tests.user('alice') as alice, tests.user('bob') as bob, tests.user('carol') as carol \gset

-- creation funds the pool with b·ln(n) from the house
select tests.market('m1') \gset
select is((select pool::numeric from bj.markets where code = 'm1'), 69.314719::numeric, 'the subsidy 100·ln 2, rounded up, funds the pool');
select is((select sum(amount) from bj.ledger where credit = 'house' and kind = 'subsidy' and market_id = (select id from bj.markets where code = 'm1')),
          69.314719::numeric, 'paid by the house through the ledger');
select throws_ok($$ select admin.create_market('m1', 'again') $$, 'BJ008', null, 'a code is unique');
select throws_ok($$ select admin.create_market('m9', 'x', '{A,A}') $$, 'BJ021', null, 'outcomes are distinct');
select throws_ok($$ select admin.create_market('m9', 'x', '{A}') $$, 'BJ021', null, 'a market has at least two outcomes');
select throws_ok($$ select admin.create_market('m9', 'x', liquidity => 0) $$, 'BJ021', null, 'liquidity is positive');

-- close_at in the past: the market reads as closed and refuses trades at once
select admin.create_market('late', 'late', close_at => now() - interval '1 second') \gset
select is(bj.market_json(bj.find_market('late')) ->> 'status', 'closed', 'a market past close_at reads as closed');
select ok(not api.list_markets('open') @> jsonb_build_array(jsonb_build_object('code', 'late'))
          and api.list_markets('closed') @> jsonb_build_array(jsonb_build_object('code', 'late')),
          'and is listed as closed, not open');
select throws_ok(format($$ select bj.trade(%s, 'late', 'YES', 'buy', 1, null, null, null, null) $$, :alice), 'BJ002', null,
                 'and refuses trades without any worker');

-- binary resolution: longs paid 1 per share from the pool, shorts pay from collateral
select bj.trade(:alice, 'm1', 'YES', 'buy', 40, null, null, null, null) \gset
select bj.trade(:bob, 'm1', 'YES', 'sell', 25, null, null, null, null) \gset
select bj.trade(:carol, 'm1', 'NO', 'buy', 10, null, null, null, null) \gset
select balance as a0 from bj.users where id = :alice \gset
select balance as b0 from bj.users where id = :bob \gset
select balance as c0 from bj.users where id = :carol \gset
select pool as pool0 from bj.markets where code = 'm1' \gset
select is((select count(*) from admin.preview_resolution('m1', '{"YES": 1}')), 3::bigint, 'the preview lists every account');
select is((select payout from admin.preview_resolution('m1', '{"YES": 1}') where username = 'bob'), -25.000000::numeric,
          'the preview shows the short''s payment');
select is((select pool::numeric from bj.markets where code = 'm1'), :'pool0'::numeric, 'and commits nothing');
select admin.resolve_market('m1', 'YES') as res \gset
select is((select balance::numeric from bj.users where id = :alice), :'a0'::numeric + 40, 'each winning share pays exactly 1');
select is((select balance::numeric from bj.users where id = :bob), :'b0'::numeric + 25 - 25, 'the short''s collateral pays its 25 and nothing else is lost');
select is((select balance::numeric from bj.users where id = :carol), :'c0'::numeric, 'losing shares pay nothing');
select is((:'res'::jsonb ->> 'returned_to_house')::numeric, :'pool0'::numeric - 40 + 25, 'the pool''s remainder returns to the house');
select is((select pool::numeric from bj.markets where code = 'm1'), 0::numeric, 'the pool is empty');
select throws_ok($$ select admin.resolve_market('m1', 'NO') $$, 'BJ008', null, 'a second resolution is refused');
select throws_ok(format($$ select bj.trade(%s, 'm1', 'YES', 'buy', 1, null, null, null, null) $$, :alice), 'BJ002', null,
                 'a resolved market refuses trades');

-- multi-outcome split resolution
select tests.market('m3', '{A,B,C}', 50) \gset
select bj.trade(:alice, 'm3', 'A', 'buy', 30, null, null, null, null) \gset
select bj.trade(:bob, 'm3', 'B', 'buy', 20, null, null, null, null) \gset
select bj.trade(:carol, 'm3', 'C', 'sell', 10, null, null, null, null) \gset
select balance as a1 from bj.users where id = :alice \gset
select balance as b1 from bj.users where id = :bob \gset
select balance as c1 from bj.users where id = :carol \gset
select is((select sum(amount)::numeric from bj.ledger
            where kind = 'subsidy' and market_id = (select id from bj.markets where code = 'm3')),
          54.930615::numeric, 'three outcomes at b=50 are subsidised 50·ln 3, rounded up');
select throws_ok($$ select admin.resolve_market_split('m3', '{"A": 0.5, "B": 0.6}') $$, 'BJ021', null, 'weights must sum to 1');
select throws_ok($$ select admin.resolve_market_split('m3', '{"A": 0.5, "B": 0.4}') $$, 'BJ021', null, 'neither more nor less');
select throws_ok($$ select admin.resolve_market_split('m3', '{"A": 0.5, "Z": 0.5}') $$, 'BJ011', null, 'weights name outcomes');
select admin.resolve_market_split('m3', '{"A": 0.3, "B": 0.3, "C": 0.4}') \gset
select is((select balance::numeric from bj.users where id = :alice), :'a1'::numeric + 9, '30 A at 0.3 pay 9');
select is((select balance::numeric from bj.users where id = :bob), :'b1'::numeric + 6, '20 B at 0.3 pay 6');
select is((select balance::numeric from bj.users where id = :carol), :'c1'::numeric + 10 - 4, 'a short of 10 C at 0.4 pays 4 of its 10 collateral');

-- voiding restores every trader's wealth, fees included
select tests.market('v1') \gset
select balance as av from bj.users where id = :alice \gset
select balance as bv from bj.users where id = :bob \gset
select bj.trade(:alice, 'v1', 'YES', 'buy', 50, null, null, null, null) \gset
select bj.trade(:bob, 'v1', 'YES', 'sell', 70, null, null, null, null) \gset
select bj.trade(:alice, 'v1', 'YES', 'sell', 20, null, null, null, null) \gset
select admin.void_market('v1') \gset
select is((select balance::numeric from bj.users where id = :alice), :'av'::numeric, 'voiding gives back every coin a trader put in, fees included');
select is((select balance::numeric from bj.users where id = :bob), :'bv'::numeric, 'and takes back what a short received');
select throws_ok($$ select admin.resolve_market('v1', 'YES') $$, 'BJ008', null, 'a voided market cannot be resolved');
select throws_ok($$ select admin.void_market('v1') $$, 'BJ008', null, 'nor voided again');

-- a profit already spent elsewhere: the balance stops at zero and the house carries the rest
select tests.user('dave') as dave \gset
select tests.market('v2') \gset
select tests.market('sink') \gset
select bj.trade(:dave, 'v2', 'YES', 'buy', 100, null, null, null, null) \gset
select bj.trade(:alice, 'v2', 'YES', 'buy', 300, null, null, null, null) \gset
select bj.trade(:dave, 'v2', 'YES', 'sell', 100, null, null, null, null) \gset
select bj.trade(:dave, 'sink', 'YES', 'buy', null, (select balance from bj.users where id = :dave), null, null, null) \gset
select admin.void_market('v2') as v2 \gset
select is((select balance::numeric from bj.users where id = :dave), 0::numeric, 'a balance that cannot give back its profit stops at zero');
select is((select amount::numeric from bj.void_shortfalls where user_id = :dave), (:'v2'::jsonb ->> 'house_shortfall')::numeric,
          'the house''s shortfall is recorded');
select is_empty('select * from admin.check_invariants()', 'invariants hold after resolutions and voids');

-- payouts are rounded down to the millionth (the house's favour), never to the nearest
select tests.market('m7') \gset
select tests.user('erin') as erin, tests.user('frank') as frank \gset
select bj.trade(:erin, 'm7', 'YES', 'buy', 1.5, null, null, null, null) \gset
select bj.trade(:frank, 'm7', 'YES', 'sell', 1.5, null, null, null, null) \gset
select admin.resolve_market_split('m7', '{"YES": 0.333333333, "NO": 0.666666667}') \gset
select is((select amount::numeric from bj.ledger where kind = 'payout' and user_id = :erin), 0.499999::numeric,
          '1.5 shares at 0.333333333 are paid 0.499999, not 0.500000');
select is((select amount::numeric from bj.ledger where kind = 'payout' and user_id = :frank and debit = 'pool:' || :market), 0.500000::numeric,
          'and a short of 1.5 pays 0.500000, not 0.499999');

-- wipe, then void: what the wiped account would get back or owe is the _burned account's,
-- and every coin moved is posted (the collateral of a wiped short included)
select tests.market('v3') \gset
select tests.user('shorty') as shorty, tests.user('longy') as longy \gset
select bj.trade(:shorty, 'v3', 'YES', 'sell', 50, null, null, null, null) \gset
select bj.trade(:longy, 'v3', 'NO', 'buy', 30, null, null, null, null) \gset
select balance as lv from bj.users where id = :longy \gset
select coalesce((select balance from bj.ledger_balances where asset = 'coin' and account = 'burn'), 0) as burnt0 \gset
select count(*) from admin.wipe_users(array['shorty', 'longy']) \gset
select admin.void_market('v3') \gset
select is_empty('select * from admin.check_invariants()', 'a wiped short''s market voids with every invariant holding');
select is((select sum(amount)::numeric from bj.collateral where market_id = :market), 0::numeric, 'its collateral is released');
select is((select balance from bj.ledger_balances where asset = 'coin' and account = 'burn') - :burnt0
           + (select balance from bj.users where username = '_burned'), 2000::numeric,
          'what the two wiped accounts hold in the end is what they had before they traded');
select is((select balance::numeric from bj.users where id in (:shorty)), 0::numeric, 'the wiped accounts stay empty');
select is((select count(*) from bj.void_shortfalls where market_id = :market), 0::bigint, 'and the house carries nothing');

-- wipe, then resolve
select tests.market('v4') \gset
select tests.user('shorty2') as shorty2 \gset
select bj.trade(:shorty2, 'v4', 'YES', 'sell', 50, null, null, null, null) \gset
select count(*) from admin.wipe_users(array['shorty2']) \gset
select admin.resolve_market('v4', 'NO') \gset
select is_empty('select * from admin.check_invariants()', 'a wiped short''s market resolves with every invariant holding');
select is((select sum(amount)::numeric from bj.collateral where market_id = :market), 0::numeric, 'and its collateral is released');

select * from finish();
rollback;
