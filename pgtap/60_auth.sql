-- sql/60_auth.sql: signup and its bonus, login, tokens, the per-address signup limit, wipes.
begin;
\ir helpers/setup.psql
select plan(54);

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
-- a failed login is an answer with its status (so that its count commits), not an exception
select is(bj.login('alice', 'wrong password') - 'details', '{"code": "BJ022", "message": "wrong username or password", "hint": null}'::jsonb,
          'a wrong password is refused');
select is(current_setting('response.status'), '401', 'with status 401');
select is(bj.login('nobody', 'wrong password') - 'details', bj.login('alice', 'wrong password') - 'details',
          'an unknown user gets the same answer');

-- the per-address signup limit (3 within 15 s by default)
select bj.signup('bot1', 'password123', '10.9.9.9') \gset
select bj.signup('bot2', 'password123', '10.9.9.9') \gset
select bj.signup('bot3', 'password123', '10.9.9.9') \gset
select is(bj.signup('bot4', 'password123', '10.9.9.9') ->> 'code', 'BJ031', 'the fourth signup from one address is refused');
select lives_ok($$ select bj.signup('human', 'password123', '10.9.9.10') $$, 'another address is not affected');
select is((select accounts from admin.flagged_ips where ip = '10.9.9.9'), 3::bigint, 'the address is flagged for review');
select is((select count(*) from admin.flagged_ips where ip = '10.9.9.10'), 0::bigint, 'the other is not');

-- wipe: a whale's cash, positions and orders burned without touching prices or ledger rows
select tests.user('whale') as whale, tests.user('minnow') as minnow \gset
select tests.market('w1') \gset
select bj.trade(:whale, 'w1', 'YES', 'buy', 300, null, null, null, null) \gset
select bj.trade(:whale, 'w1', 'NO', 'sell', 100, null, null, null, null) \gset
select bj.trade(:minnow, 'w1', 'NO', 'buy', 10, null, null, null, null) \gset
select bj.place_conditional(:whale, 'w1', 'YES', null, 'stop_loss', 100, 0.1, null, null) \gset
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

-- wiping: an unknown name refuses the whole call and changes nothing
select tests.state() as before_wipe \gset
select throws_ok($$ select * from admin.wipe_users(array['minnow', 'no_such_user']) $$, 'BJ013', null,
                 'wiping an unknown user is refused');
select is(tests.state(), :'before_wipe', 'and wipes nobody');
select throws_ok($$ select * from admin.wipe_users('{}') $$, 'BJ021', null, 'wiping no one is refused');
select throws_ok($$ select * from admin.wipe_users(array['_burned']) $$, 'BJ021', null, 'the _burned account cannot be wiped');

-- passwords: bcrypt reads 72 bytes, so nothing longer is accepted or matched
select throws_ok($$ select bj.signup('multibyte', repeat('é', 36) || 'AAAA', null) $$, 'BJ023', null,
                 '72 characters of 76 bytes are refused at signup');
select lives_ok($$ select bj.signup('multibyte', repeat('é', 36), null) $$, 'exactly 72 bytes are accepted');
select is(bj.login('multibyte', repeat('é', 36) || 'AAAA') ->> 'code', 'BJ022',
          'and a longer password that bcrypt would cut to it does not log in');
select ok(bj.login('multibyte', repeat('é', 36)) ? 'token', 'the 72 bytes do');

-- the login throttle: per username and per address, checked before bcrypt runs
update bj.settings set value = '3' where key = 'login_max_failures_user';
update bj.settings set value = '5' where key = 'login_max_failures_ip';
update bj.settings set value = '10' where key = 'throttle_backoff_s';
select bj.signup('carol', 'carols password', null) \gset
select is(bj.login('carol', 'guess 1', '192.0.2.1') ->> 'details', null, 'a first failure says nothing of a limit');
select is(bj.login('carol', 'guess 2', '192.0.2.2') ->> 'code', 'BJ022', 'a second one is still a plain refusal');
select matches(bj.login('carol', 'guess 3', '192.0.2.3') ->> 'details', 'refused for 10 s',
               'the third failure for one username blocks it (from any address)');
set local track_functions = 'all';
select coalesce((select calls from pg_stat_xact_user_functions where schemaname = 'extensions' and funcname = 'crypt'), 0) as crypt_before \gset
select is(bj.login('carol', 'carols password', '192.0.2.4') - 'details',
          '{"code": "BJ032", "message": "too many failed logins", "hint": "wait as long as Retry-After says"}'::jsonb,
          'even the right password is refused while it is blocked');
select is(current_setting('response.status'), '429', 'with 429');
select is(current_setting('response.headers')::jsonb, '[{"Retry-After": "10"}]'::jsonb, 'and Retry-After');
select is(coalesce((select calls from pg_stat_xact_user_functions where schemaname = 'extensions' and funcname = 'crypt'), 0),
          :crypt_before::bigint, 'without hashing anything');
-- the block passes: the next failure doubles it
update bj.throttle set blocked_until = clock_timestamp() - interval '1 second' where key = 'login:user:carol';
select matches(bj.login('carol', 'guess 4', '192.0.2.5') ->> 'details', 'refused for 20 s', 'the next failure blocks twice as long');
update bj.throttle set blocked_until = clock_timestamp() - interval '1 second' where key = 'login:user:carol';
select ok(bj.login('carol', 'carols password', '192.0.2.6') ? 'token', 'the right password logs in once the block has passed');
select is((select count(*) from bj.throttle where key = 'login:user:carol'), 0::bigint, 'and clears the username''s count');
-- one address trying many usernames
select count(bj.login(n, 'x', '198.51.100.7')) from unnest(array['u1', 'u2', 'u3', 'u4']) n \gset
select is(bj.login('u5', 'x', '198.51.100.7') ->> 'details', 'further attempts are refused for 10 s',
          'the fifth failure from one address blocks the address');
select is(bj.login('carol', 'carols password', '198.51.100.7') ->> 'code', 'BJ032', 'for every username');
select ok(bj.login('carol', 'carols password', '198.51.100.8') ? 'token', 'but not for another address');
select is((select failures from bj.throttle where key = 'login:ip:198.51.100.7'), 5,
          'a correct login never clears an address''s count');
select is(bj.login(repeat('x', 10000), 'x', '203.0.113.1') ->> 'code', 'BJ022', 'an absurd username is just a failure');
select ok((select max(length(key)) from bj.throttle) < 100, 'and keys stay short');

-- the signup limit answers when to come back, and backs off while the address keeps trying
update bj.settings set value = '1' where key = 'throttle_backoff_s';
select bj.signup('hum1', 'password123', '10.7.7.7') \gset
select bj.signup('hum2', 'password123', '10.7.7.7') \gset
select bj.signup('hum3', 'password123', '10.7.7.7') \gset
select bj.signup('hum4', 'password123', '10.7.7.7') as refused \gset
select is(:'refused'::jsonb ->> 'code', 'BJ031', 'the limit refuses the fourth signup');
select ok((current_setting('response.headers')::jsonb -> 0 ->> 'Retry-After')::int between 14 and 15,
          'Retry-After is when the oldest signup leaves the 15 s window');
update bj.users set created_at = created_at - interval '20 seconds' where signup_ip = '10.7.7.7';
select is(bj.signup('hum4', 'password123', '10.7.7.7') ->> 'code', 'BJ031', 'a refused address stays refused for its back-off');
update bj.throttle set blocked_until = clock_timestamp() - interval '1 second' where key = 'signup:ip:10.7.7.7';
select ok(bj.signup('hum4', 'password123', '10.7.7.7') ? 'token', 'and signs up once the window and the back-off have passed');
select is((select count(*) from bj.users where signup_ip = '10.7.7.7'), 4::bigint, 'no refused signup opened an account');

select * from finish();
rollback;
