-- sql/02_rls.sql and the grants beside every function: least privilege for every role on
-- every table and function, policies, and what each role can actually do.
begin;
\ir helpers/setup.psql
select plan(47 + 5 * (select count(*)::int from pg_proc where pronamespace = 'api'::regnamespace)
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
                or r = 'anon' and p.proname not in ('me', 'trade', 'place_order', 'place_orders', 'cancel_order', 'cancel_orders',
                                                       'my_orders', 'my_trades', 'create_bot', 'update_bot', 'pause_bot',
                                                       'resume_bot', 'delete_bot', 'fund_bot', 'defund_bot', 'my_bots',
                                                       'bot_runs')
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

-- PostgreSQL's own functions that act beyond the caller's session: client roles reach none
-- but those reviewed here. Every VOLATILE pg_catalog function a client role may execute is
-- either harmless (listed, with why) or must not be reachable: a new one fails this test.
create temp table harmless (name text primary key, why text);
insert into harmless
select n, 'the caller''s own session, transaction or random state' from unnest(array[
  'set_config', 'random', 'setseed', 'gen_random_uuid', 'clock_timestamp', 'timeofday', 'nextval', 'currval',
  'setval', 'lastval', 'pg_sleep', 'pg_sleep_for', 'pg_sleep_until', 'pg_stat_clear_snapshot',
  'pg_stat_force_next_flush', 'pg_export_snapshot', 'current_query', 'bernoulli', 'system', 'txid_status',
  'pg_xact_status', 'pg_notification_queue_usage', 'pg_backend_pid', 'pg_current_xact_id', 'txid_current',
  'pg_current_xact_id_if_assigned', 'txid_current_if_assigned']) n
union all
select n, 'reads, no more than the caller may read' from unnest(array[
  'query_to_xml', 'query_to_xmlschema', 'query_to_xml_and_xmlschema', 'cursor_to_xml', 'cursor_to_xmlschema',
  'ts_stat', 'ts_rewrite', 'pg_lock_status', 'pg_blocking_pids', 'pg_safe_snapshot_blocking_pids',
  'pg_isolation_test_session_is_blocked', 'pg_prepared_xact', 'pg_get_multixact_members',
  'pg_last_committed_xact', 'pg_xact_commit_timestamp', 'pg_xact_commit_timestamp_origin',
  'pg_current_wal_lsn', 'pg_current_wal_insert_lsn', 'pg_current_wal_flush_lsn', 'pg_is_in_recovery',
  'pg_last_wal_receive_lsn', 'pg_last_wal_replay_lsn', 'pg_last_xact_replay_timestamp',
  'pg_is_wal_replay_paused', 'pg_get_wal_replay_pause_state', 'pg_get_wal_resource_managers',
  'pg_control_checkpoint', 'pg_control_init', 'pg_control_recovery', 'pg_control_system',
  'pg_database_size', 'pg_tablespace_size', 'pg_relation_size', 'pg_table_size', 'pg_indexes_size',
  'pg_total_relation_size', 'pg_partition_tree', 'pg_partition_ancestors', 'pg_sequence_last_value',
  'pg_collation_actual_version', 'pg_database_collation_actual_version', 'pg_jit_available',
  'pg_stat_get_recovery_prefetch', 'currtid2', 'amvalidate', 'pg_extension_config_dump']) n
union all
select n, 'refuses a caller without the privilege it needs (superuser, replication, owner or same role)'
  from unnest(array['pg_cancel_backend', 'pg_terminate_backend', 'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot', 'pg_drop_replication_slot', 'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot', 'pg_replication_slot_advance', 'pg_logical_slot_get_changes',
  'pg_logical_slot_peek_changes', 'pg_logical_slot_get_binary_changes', 'pg_logical_slot_peek_binary_changes',
  'pg_import_system_collations', 'pg_nextoid', 'pg_stop_making_pinned_objects', 'brin_summarize_new_values',
  'brin_summarize_range', 'brin_desummarize_range', 'gin_clean_pending_list', 'pg_read_file_old',
  'pg_rotate_logfile_old']) n
union all
select n, 'PL/pgSQL''s own entry points: DO blocks and checking the caller''s own function bodies'
  from unnest(array['plpgsql_inline_handler', 'plpgsql_validator']) n;
select is_empty($$
  select r.role || ': ' || p.oid::regprocedure::text from pg_proc p
   cross join unnest(array['anon', 'authenticated', 'authenticator', 'analyst', 'service_role']) r(role)
   where p.pronamespace = 'pg_catalog'::regnamespace and p.provolatile = 'v'
     and has_function_privilege(r.role, p.oid, 'execute')
     and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype, 'internal'::regtype, 'language_handler'::regtype,
                              'fdw_handler'::regtype, 'index_am_handler'::regtype, 'table_am_handler'::regtype,
                              'tsm_handler'::regtype)
     and p.proname !~ '^(binary_upgrade_|pg_stat_get_xact_)'
     and p.proname not in (select name from harmless)
     and not (r.role = 'authenticator' and p.oid = 'pg_catalog.pg_logical_emit_message(boolean, text, text)'::regprocedure)
   order by 1 $$, 'client roles execute no PostgreSQL function that acts beyond their session but those reviewed');
select ok(not has_function_privilege(r, 'pg_catalog.pg_logical_emit_message(boolean, text, text)', 'execute'),
          format('%s cannot write to the WAL', r))
  from unnest(array['anon', 'authenticated', 'analyst', 'service_role']) r;
select ok(has_function_privilege('authenticator', 'pg_catalog.pg_logical_emit_message(boolean, text, text)', 'execute'),
          'the HTTP layer''s login may (its writes are confirmed by that commit)');
select ok(not has_function_privilege('analyst', 'pg_catalog.pg_advisory_xact_lock(bigint)', 'execute')
          and not has_function_privilege('analyst', 'pg_catalog.pg_try_advisory_lock(bigint)', 'execute')
          and not has_function_privilege('analyst', 'pg_catalog.lo_create(oid)', 'execute')
          and not has_function_privilege('analyst', 'pg_catalog.pg_notify(text, text)', 'execute'),
          'nor take advisory locks the exchange uses, create large objects or notify');

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
select lives_ok($$ do $do$ declare v text; begin
                     for v in select c.relname from pg_class c where c.relnamespace = 'analytics'::regnamespace and c.relkind = 'v' loop
                       execute format('select * from analytics.%I', v);
                     end loop; end $do$ $$, 'and every analytics view');
select throws_ok('select * from bj.trades', '42501', null, 'but no private table');
select throws_ok('select api.list_markets()', '42501', null, 'and calls no api function');
reset role;

select * from finish();
rollback;
