-- sql/60_auth.sql: signup and its bonus, login, tokens, the per-address signup limit, wipes.
begin;
\ir helpers/setup.psql
select plan(24);

select bj.signup('alice', 'correct horse', '10.0.0.1') as s \gset
select is((:'s'::jsonb ->> 'balance')::numeric, 1000::numeric, 'signup credits the bonus');
select is((select sum(amount) from bj.ledger where kind = 'signup_bonus' and user_id = (:'s'::jsonb ->> 'user_id')::bigint),
          1000::numeric, 'from the house, through the ledger');
select isnt((select password_hash from bj.credentials where user_id = (:'s'::jsonb ->> 'user_id')::bigint), 'correct horse',
            'the password is stored hashed');
select matches((select password_hash from bj.credentials where user_id = (:'s'::jsonb ->> 'user_id')::bigint), '^\$2a\$',
               'with bcrypt');
select throws_ok($$ select bj.signup('alice', 'another password', null) $$, 'BJ009', null, 'a username is unique');
select throws_ok($$ select bj.signup('x', 'long enough', null) $$, 'BJ024', null, 'a username has at least 3 characters');
select throws_ok($$ select bj.signup('robert''); drop', 'long enough', null) $$, 'BJ024', null, 'and only a-z, 0-9, _');
select throws_ok($$ select bj.signup('_sneaky', 'long enough', null) $$, 'BJ024', null, 'names starting with _ are reserved');
select throws_ok($$ select bj.signup('shorty', 'short', null) $$, 'BJ023', null, 'a password has at least 8 characters');

-- tokens: HS256 over {sub, role, iat, exp}, verifiable with the secret
select bj.login('alice', 'correct horse') as l \gset
select is(split_part(:'l'::jsonb ->> 'token', '.', 3),
          bj.base64url(extensions.hmac(convert_to(split_part(:'l'::jsonb ->> 'token', '.', 1) || '.' || split_part(:'l'::jsonb ->> 'token', '.', 2), 'utf8'),
                                       convert_to(repeat('s', 40), 'utf8'), 'sha256')),
          'the token is signed with HMAC-SHA256 and the secret');
select is(convert_from(decode(rpad(translate(split_part(:'l'::jsonb ->> 'token', '.', 2), '-_', '+/'),
                                   (length(split_part(:'l'::jsonb ->> 'token', '.', 2)) + 3) / 4 * 4, '='), 'base64'), 'utf8')::jsonb
          - '{iat,exp}'::text[],
          jsonb_build_object('sub', :'s'::jsonb ->> 'user_id', 'role', 'authenticated', 'username', 'alice'),
          'its claims name the trader and the role');
select throws_ok($$ select bj.login('alice', 'wrong password') $$, 'BJ022', 'wrong username or password', 'a wrong password is refused');
select throws_ok($$ select bj.login('nobody', 'wrong password') $$, 'BJ022', 'wrong username or password',
                 'an unknown user gets the same answer');

-- the per-address signup limit (3 within 15 s by default)
select bj.signup('bot1', 'password123', '10.9.9.9') \gset
select bj.signup('bot2', 'password123', '10.9.9.9') \gset
select bj.signup('bot3', 'password123', '10.9.9.9') \gset
select throws_ok($$ select bj.signup('bot4', 'password123', '10.9.9.9') $$, 'BJ031', null, 'the fourth signup from one address is refused');
select lives_ok($$ select bj.signup('human', 'password123', '10.9.9.10') $$, 'another address is not affected');
select is((select accounts from admin.flagged_ips where ip = '10.9.9.9'), 3::bigint, 'the address is flagged for review');
select is((select count(*) from admin.flagged_ips where ip = '10.9.9.10'), 0::bigint, 'the other is not');

-- wipe: a whale's cash, positions and orders burned without touching prices or ledger rows
select tests.user('whale') as whale, tests.user('minnow') as minnow \gset
select tests.market('w1') \gset
select bj.trade(:whale, 'w1', 'YES', 'buy', 300, null, null, null, null) \gset
select bj.trade(:whale, 'w1', 'NO', 'sell', 100, null, null, null, null) \gset
select bj.trade(:minnow, 'w1', 'NO', 'buy', 10, null, null, null, null) \gset
select bj.place_order(:whale, 'w1', 'YES', 'stop_loss', 100, 0.1) \gset
select bj.market_json(bj.find_market('w1')) -> 'outcomes' as prices_before \gset
select count(*) as ledger_before, max(id) as last_id from bj.ledger \gset
select md5(string_agg(l::text, ',' order by l.id)) as ledger_hash from bj.ledger l \gset
select * from admin.wipe_users(array['whale']) \gset
select is((select balance::numeric from bj.users where id = :whale), 0::numeric, 'the wiped account holds nothing');
select is(bj.market_json(bj.find_market('w1')) -> 'outcomes', :'prices_before'::jsonb, 'prices are unchanged: no share went back to the pool');
select ok((select count(*) from bj.ledger) > :ledger_before, 'the ledger only grew');
select is((select md5(string_agg(l::text, ',' order by l.id)) from bj.ledger l where id <= :last_id), :'ledger_hash',
          'and no earlier row changed');
select is((select status from bj.orders where user_id = :whale), 'cancelled', 'open orders are cancelled');
select throws_ok($$ select bj.login('whale', 'password123') $$, 'BJ026', null, 'the account cannot log in');
select is_empty('select * from admin.check_invariants()', 'invariants hold after the wipe');

select * from finish();
rollback;
