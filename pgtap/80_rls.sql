-- sql/02_rls.sql and the grants beside every function: least privilege for every role on
-- every table and function, policies, and what each role can actually do.
begin;
\ir helpers/setup.psql
select plan(39 + 5 * (select count(*)::int from pg_proc where pronamespace = 'api'::regnamespace)
              + 11 * (select count(*)::int from pg_class where relnamespace = 'bj'::regnamespace and relkind = 'r'));

-- every table has RLS enabled and forced
select is_empty($$ select c.relname from pg_class c where c.relnamespace = 'bj'::regnamespace
                    and c.relkind = 'r' and not (c.relrowsecurity and c.relforcerowsecurity) $$,
                'every table has row-level security enabled and forced');
select is_empty($$ select c.relname from pg_class c join pg_roles r on r.oid = c.relowner
                    where c.relnamespace = 'bj'::regnamespace and c.relkind = 'r' and r.rolname <> 'betjee_owner' $$,
                'every table is owned by betjee_owner, which nobody logs in as');
select ok(not (select rolcanlogin from pg_roles where rolname = 'betjee_owner'), 'betjee_owner cannot log in');

-- table privileges, for every table and every role
select table_privs_are('bj', t, r,
         case when t = 'markets' and r in ('anon', 'authenticated') then array['SELECT']
              when t in ('positions', 'orders', 'trades', 'ledger', 'collateral') and r = 'authenticated' then array['SELECT']
              else array[]::text[] end,
         format('%s: %s', r, t))
  from (select c.relname::text from pg_class c
         where c.relnamespace = 'bj'::regnamespace and c.relkind = 'r' order by c.relname) t(t)
 cross join unnest(array['anon', 'authenticated', 'authenticator', 'analyst', 'service_role']) r;
select column_privs_are('bj', 'users', c, r, array['SELECT'], format('%s reads users.%s', r, c))
  from unnest(array['id', 'username', 'created_at']) c cross join unnest(array['anon', 'authenticated']) r;
select column_privs_are('bj', 'users', c, 'anon', array[]::text[], format('anon cannot read users.%s', c))
  from unnest(array['balance', 'signup_ip', 'disabled_at']) c;

-- policies, by name, for every table clients can read
select policies_are('bj', 'markets', array['the exchange''s functions manage markets', 'markets are public']);
select policies_are('bj', 'positions', array['the exchange''s functions manage positions', 'traders read their own positions']);
select policies_are('bj', 'orders', array['the exchange''s functions manage orders', 'traders read their own orders']);
select policies_are('bj', 'trades', array['the exchange''s functions manage trades', 'traders read their own trades']);
select policies_are('bj', 'ledger', array['the exchange''s functions manage ledger', 'traders read their own ledger postings']);
select policies_are('bj', 'credentials', array['the exchange''s functions manage credentials']);

-- function privileges: clients execute the api (and auth.uid) and nothing else
select is_empty($$
  select p.oid::regprocedure::text from pg_proc p
   where p.pronamespace in ('bj'::regnamespace, 'admin'::regnamespace, 'analytics'::regnamespace)
     and (has_function_privilege('anon', p.oid, 'execute') or has_function_privilege('authenticated', p.oid, 'execute')
          or p.pronamespace <> 'analytics'::regnamespace and has_function_privilege('analyst', p.oid, 'execute'))
$$, 'no client role executes a private or admin function');
select is_empty($$
  select p.oid::regprocedure::text from pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
   where p.pronamespace in ('bj'::regnamespace, 'api'::regnamespace, 'admin'::regnamespace, 'auth'::regnamespace)
     and a.grantee = 0 and a.privilege_type = 'EXECUTE'
$$, 'PUBLIC executes no project function');
-- every api function, for every role: traders call all of them, visitors the public ones
select function_privs_are('api', p.proname, array(select format_type(t, null) from unnest(p.proargtypes) t), r,
         case when r = 'authenticated'
                or r = 'anon' and p.proname not in ('me', 'trade', 'place_order', 'cancel_order', 'my_trades')
              then array['EXECUTE'] else array[]::text[] end,
         format('%s on api.%s', r, p.proname))
  from pg_proc p cross join unnest(array['anon', 'authenticated', 'authenticator', 'analyst', 'service_role']) r
 where p.pronamespace = 'api'::regnamespace
 order by p.proname, r;
select is_empty($$
  select p.oid::regprocedure::text from pg_proc p
   where p.pronamespace in ('bj'::regnamespace, 'api'::regnamespace, 'admin'::regnamespace, 'auth'::regnamespace, 'analytics'::regnamespace)
     and p.prosecdef and not exists (select 1 from unnest(p.proconfig) c where c like 'search_path=%')
$$, 'every SECURITY DEFINER function pins search_path');
select is_empty($$
  select p.oid::regprocedure::text from pg_proc p
   where p.pronamespace in ('bj'::regnamespace, 'api'::regnamespace, 'admin'::regnamespace, 'auth'::regnamespace, 'analytics'::regnamespace)
     and not exists (select 1 from unnest(p.proconfig) c where c like 'search_path=%')
     and p.prosqlbody is null
     and (has_function_privilege('anon', p.oid, 'execute') or has_function_privilege('authenticated', p.oid, 'execute')
          or has_function_privilege('analyst', p.oid, 'execute') or has_function_privilege('service_role', p.oid, 'execute'))
$$, 'a function without a pinned search_path is private or bound when created');
select is_empty($$ select p.oid::regprocedure::text from pg_proc p
                    where p.pronamespace = 'api'::regnamespace and obj_description(p.oid, 'pg_proc') is null $$,
                'every api function is documented');

-- as a visitor and as a trader, every write on every table fails
select tests.user('alice') as alice, tests.user('bob') as bob \gset
select tests.market('r1') \gset
select bj.trade(:alice, 'r1', 'YES', 'buy', 5, null, null, null, null) \gset
select bj.trade(:bob, 'r1', 'NO', 'buy', 7, null, null, null, null) \gset
grant all on all tables in schema pg_temp to public;
grant all on all sequences in schema pg_temp to public;
create temp table writes as
select r.role, format(w.stmt, c.relname, a.attname, a.attname) as stmt, format('%s cannot %s %s', r.role, w.op, c.relname) as label
  from pg_class c
  join lateral (select attname from pg_attribute where attrelid = c.oid and attnum > 0 and attidentity = '' and not attisdropped order by attnum limit 1) a on true
  cross join (values ('insert', 'insert into bj.%I default values'), ('update', 'update bj.%I set %I = %I'),
                     ('delete', 'delete from bj.%I')) w(op, stmt)
  cross join (values ('anon'), ('authenticated')) r(role)
 where c.relnamespace = 'bj'::regnamespace and c.relkind = 'r';
grant select on writes to public;
select tests.anonymous();
select throws_ok(w.stmt, '42501', null, w.label) from writes w where w.role = 'anon' order by w.label;
select tests.authenticate_as(:alice);
select throws_ok(w.stmt, '42501', null, w.label) from writes w where w.role = 'authenticated' order by w.label;

-- a trader reads their own rows only, and no secret
select is((select count(*) from bj.positions), 1::bigint, 'a trader sees only their own positions');
select is((select count(*) from bj.trades where user_id = :bob), 0::bigint, 'and none of another trader''s trades');
select ok((select count(*) from bj.ledger) > 0 and (select bool_and(user_id = :alice) from bj.ledger),
          'and only their own ledger postings');
select throws_ok('select password_hash from bj.credentials', '42501', null, 'the hash column is unreadable');
select throws_ok('select value from bj.secrets', '42501', null, 'the signing secret is unreadable');
select throws_ok('select balance from bj.users', '42501', null, 'other traders'' balances are unreadable');
select throws_ok($$ select admin.resolve_market('r1', 'YES') $$, '42501', null, 'a trader cannot resolve a market');
select throws_ok($$ select bj.execute_trade(1, 'r1', 'YES', 'buy', 1, null) $$, '42501', null,
                 'nor call a private function');
select is((api.me() ->> 'user_id')::bigint, :alice::bigint, 'api.me answers for the claims'' trader');
select tests.anonymous();
select throws_ok('select * from bj.positions', '42501', null, 'a visitor cannot read positions');
select throws_ok('select api.me()', '42501', null, 'a visitor cannot call api.me');
select ok(jsonb_array_length(api.list_markets()) > 0, 'a visitor lists markets');
select tests.clear_authentication();

-- the analyst reads analytics and no private table
set local role analyst;
select lives_ok('select * from analytics.trades', 'the analyst reads analytics.trades');
select lives_ok('select * from analytics.leaderboard', 'and the leaderboard');
select throws_ok('select * from bj.trades', '42501', null, 'but no private table');
select throws_ok('select api.list_markets()', '42501', null, 'and calls no api function');
reset role;

select * from finish();
rollback;
