-- sql/50_lifecycle.sql, undoing a resolution: admin.unresolve_market posts every posting of the
-- resolution back (longs, shorts, the pool, the house), restores positions and collateral, and
-- where a winner spent the payout records a debt instead of a negative balance; the preview,
-- the audit log, reopening, resolving again, collecting debts; each refusal changes nothing.
begin;
\ir helpers/setup.psql
select plan(48);

select tests.user('alice') as alice, tests.user('bob') as bob, tests.user('carol') as carol,
       tests.user('dave') as dave \gset
create function tests.state(p_market text) returns jsonb language sql as $$
  select jsonb_build_object(
    'balances', (select jsonb_object_agg(u.username, u.balance) from bj.users u where u.username in ('alice', 'bob', 'carol', 'dave')),
    'positions', (select jsonb_object_agg(p.user_id || ':' || p.outcome, p.shares) from bj.positions p
                   where p.market_id = m.id and p.shares <> 0),
    'collateral', (select jsonb_object_agg(c.user_id, c.amount) from bj.collateral c
                    where c.market_id = m.id and c.amount <> 0),
    'pool', m.pool, 'q', m.q, 'pairs', m.pairs)
  from bj.markets m where m.code = p_market $$;
create function tests.balance(p_user bigint) returns numeric language sql as $$
  select balance::numeric from bj.users where id = p_user $$;
create function tests.limit(p_user bigint, p_market text, p_outcome text, p_side text, p_shares numeric, p_price numeric)
returns jsonb language sql as $$
  select bj.place_order(p_user, p_market, p_outcome, p_side, 'limit', p_shares, p_price, null, null, 'gtc',
                        null, false, 'persist', null, 'cancel_resting', null, null, null) $$;
create function tests.ledger_rows() returns bigint language sql as $$ select count(*) from bj.ledger $$;

select tests.market('u1') \gset
select bj.trade(:alice, 'u1', 'YES', 'buy', 40, null, null, null, null) \gset
select bj.trade(:bob, 'u1', 'YES', 'sell', 25, null, null, null, null) \gset
select bj.trade(:carol, 'u1', 'NO', 'buy', 10, null, null, null, null) \gset
select admin.close_market('u1') \gset
select tests.state('u1') as before \gset
select max(id) as last_row from bj.ledger \gset
select md5(string_agg(l::text, ',' order by l.id)) as ledger_md5 from bj.ledger l \gset

-- refusals, each changing nothing
select tests.ledger_rows() as rows0 \gset
select throws_ok($$ select admin.unresolve_market('u1', 'wrong outcome') $$, 'BJ008', null,
                 'a market that is not resolved cannot be unresolved');
select throws_ok($$ select admin.unresolve_market('nope', 'wrong outcome') $$, 'BJ010', null, 'an unknown market is refused');
select throws_ok($$ select admin.preview_unresolve('u1') $$, 'BJ008', null, 'nor previewed');
select admin.resolve_market('u1', 'YES') \gset
select tests.state('u1') as resolved \gset
select tests.ledger_rows() as rows1 \gset
select throws_ok($$ select admin.unresolve_market('u1', '  ') $$, 'BJ021', null, 'a reason is required');
select throws_ok($$ select admin.unresolve_market('u1', null) $$, 'BJ021', null, 'a null reason too');
select throws_ok($$ select admin.unresolve_market('u1', repeat('x', 501)) $$, 'BJ021', null, 'a reason is at most 500 characters');
select throws_ok($$ select admin.unresolve_market('u1', 'oops', now() - interval '1 minute') $$, 'BJ021', null,
                 'a market is not reopened into the past');
select is(tests.state('u1'), :'resolved'::jsonb, 'the refusals changed nothing');
select is(tests.ledger_rows(), :rows1::bigint, 'and posted nothing');

-- the preview: alice gives back 40, bob's short gets its 25 collateral back less the 25 it paid
select is((select taken_back from admin.preview_unresolve('u1') where username = 'alice'), 40.000000::numeric,
          'the preview shows what a winner gives back');
select is((select taken_back from admin.preview_unresolve('u1') where username = 'bob'), 0::numeric,
          'a short gives back the collateral released less what it paid');
select is((select shares_restored from admin.preview_unresolve('u1') where username = 'bob'), -25.000000::numeric,
          'and has its short restored');
select is((select count(*) from admin.preview_unresolve('u1') where debt > 0), 0::bigint, 'nobody owes anything yet');
select is(tests.ledger_rows(), :rows1::bigint, 'the preview posts nothing');

-- unresolve: everything as before the resolution
select admin.unresolve_market('u1', 'resolved YES by mistake: NO won') as res \gset
select is(tests.state('u1'), :'before'::jsonb, 'balances, positions, collateral, pool and quantities are as before the resolution');
select is((select status from bj.markets where code = 'u1'), 'closed', 'the market is closed again');
select ok((select payouts is null and settled_at is null and closing_prices is null from bj.markets where code = 'u1'),
          'with no payouts, settlement time or closing prices');
select is((:'res'::jsonb ->> 'taken_back')::numeric, 40::numeric, 'the answer says what was taken back');
select is((:'res'::jsonb ->> 'debt')::numeric, 0::numeric, 'and that nobody owes');
select is((select md5(string_agg(l::text, ',' order by l.id)) from bj.ledger l where l.id <= :last_row), :'ledger_md5',
          'no ledger row was edited');
select is((select count(*) from bj.ledger where kind = 'unresolve'),
          (select count(*) from bj.ledger l where l.journal = (select journal from bj.settlement_log where action = 'resolve'
                                                                 and market_id = (select id from bj.markets where code = 'u1'))),
          'every posting of the resolution is posted back once');
select is((select string_agg(format('%s by %s: %s', action, actor, coalesce(reason, '-')), '; ')
             from admin.settlement_log('u1')),
          format('unresolve by %s: resolved YES by mistake: NO won; resolve by %s: -', session_user, session_user),
          'the audit log says who did what, and why');
select is_empty($$ select * from admin.check_invariants() $$, 'the invariants hold');
select throws_ok($$ select admin.unresolve_market('u1', 'again') $$, 'BJ008', null, 'a second unresolve is refused');

-- resolving again pays the right side
select balance as c0 from bj.users where id = :carol \gset
select admin.resolve_market('u1', 'NO') \gset
select is(tests.balance(:carol), :'c0'::numeric + 10, 'resolved again, the right winner is paid');
select is(tests.balance(:bob), (:'before'::jsonb -> 'balances' ->> 'bob')::numeric + 25,
          'and the short keeps its collateral when its outcome loses');
select is_empty($$ select * from admin.check_invariants() $$, 'the invariants hold after resolving again');

-- a winner who spent the payout: the balance stops at zero, the rest is a debt the house carries
select tests.market('u2') \gset
select tests.market('other', '{YES,NO}', 100000, 0) \gset
select bj.trade(:dave, 'u2', 'YES', 'buy', 100, null, null, null, null) \gset
select admin.resolve_market('u2', 'YES') \gset
select balance as spendable from bj.users where id = :dave \gset
-- dave spends almost all of it on another market
select bj.trade(:dave, 'other', 'YES', 'buy', floor((:'spendable'::numeric - 5) / 0.51), null, null, null, null) \gset
select balance as left_over from bj.users where id = :dave \gset
select tests.limit(:dave, 'other', 'NO', 'buy', 1, 0.01) \gset
select locked_cash as escrowed from bj.orders where user_id = :dave and status = 'open' \gset
select balance as left_over from bj.users where id = :dave \gset
select ok(:'left_over'::numeric < 100, 'the winner spent the payout');
select admin.unresolve_market('u2', 'wrong outcome') as res2 \gset
select is(tests.balance(:dave), 0::numeric, 'the balance stops at zero');
select is((select sum(amount)::numeric from bj.debts where user_id = :dave), 100 - :'left_over'::numeric,
          'the rest is the trader''s debt');
select is((:'res2'::jsonb ->> 'debt')::numeric, 100 - :'left_over'::numeric, 'the answer says so');
select is((select sum(amount)::numeric from bj.ledger where kind = 'debt' and user_id = :dave), 100 - :'left_over'::numeric,
          'lent by the house through the ledger');
select is((select shares::numeric from bj.positions where user_id = :dave and market_id = (select id from bj.markets where code = 'u2') and outcome = 1),
          100::numeric, 'the position is back');
select is_empty($$ select * from admin.check_invariants() $$, 'the invariants hold with a debt');
select is((select balance from analytics.leaderboard_live where username = 'dave'), -(100 - :'left_over'::numeric),
          'the leaderboard counts the debt against the trader');
-- collecting: the cancelled order's escrow comes back, and collect_debts takes it
select bj.cancel_order(:dave, (select id from bj.orders where user_id = :dave and status = 'open')) \gset
select is(admin.collect_debts(), :'escrowed'::numeric, 'collect_debts takes what the balance now holds');
select is(tests.balance(:dave), 0::numeric, 'and leaves the balance at zero');
select is((select sum(repaid)::numeric from bj.debts where user_id = :dave), :'escrowed'::numeric, 'recorded as repaid');
select is(admin.collect_debts(), 0::numeric, 'with nothing more to take, it takes nothing');
-- a newer debtor who can pay is not kept waiting behind one who cannot
select tests.user('erin') as erin \gset
select tests.market('u4') \gset
select bj.trade(:erin, 'u4', 'YES', 'buy', 10, null, null, null, null) \gset
select admin.resolve_market('u4', 'YES') \gset
select bj.trade(:erin, 'other', 'YES', 'buy', floor(tests.balance(:erin) / 0.51), null, null, null, null) \gset
select admin.unresolve_market('u4', 'wrong outcome') \gset
select ok((select sum(amount - repaid) from bj.debts where user_id = :erin) > 0, 'a second debtor');
select bj.trade(:erin, 'other', 'YES', 'sell', 1, null, null, null, null) \gset
select ok(admin.collect_debts(1) > 0, 'collected from the one who can pay, past an older debt nobody can');
select is_empty($$ select * from admin.check_invariants() $$, 'the invariants hold after collecting');

-- reopening: the market trades again until the given time
select tests.market('u3') \gset
select bj.trade(:alice, 'u3', 'NO', 'buy', 5, null, null, null, null) \gset
select admin.resolve_market('u3', 'YES') \gset
select admin.unresolve_market('u3', 'resolved early', now() + interval '1 day') \gset
select is((select status from bj.markets where code = 'u3'), 'open', 'reopened, the market is open');
select lives_ok(format($$ select bj.trade(%s, 'u3', 'YES', 'buy', 1, null, null, null, null) $$, :bob), 'and takes trades');
select is_empty($$ select * from admin.check_invariants() $$, 'the invariants hold after reopening');

-- an account paid by the resolution and wiped since: refused, nothing changed
select tests.user('fay') as fay \gset
select tests.market('u5') \gset
select bj.trade(:fay, 'u5', 'YES', 'buy', 10, null, null, null, null) \gset
select admin.resolve_market('u5', 'YES') \gset
select * from admin.wipe_users('{fay}') \gset
select tests.ledger_rows() as rows5 \gset
select throws_ok($$ select admin.unresolve_market('u5', 'wrong') $$, 'BJ008', null,
                 'a resolution that paid an account wiped since is not unresolved');
select is(tests.ledger_rows(), :rows5::bigint, 'and nothing is posted');
select ok((select username from analytics.leaderboard_live where username = 'fay') is null, 'a wiped trader is not ranked');

select * from finish();
rollback;
