-- Hardening: the login and signup throttle, PostgreSQL's own functions that client roles do
-- not need taken from PUBLIC, and stored receipts cleared of other traders' state.
-- depends: 0006_definition_checks

set role betjee_owner;

-- Failed logins and refused signups per key (an address, or a username), and how long the key
-- is refused for; checked before any password is hashed (sql/60_auth.sql).
create table bj.throttle (
  key text primary key,
  failures int not null default 0,
  window_start timestamptz not null default clock_timestamp(),
  blocked_until timestamptz
);
alter table bj.throttle enable row level security;
alter table bj.throttle force row level security;

-- A receipt lists the conditional orders it fired with public facts only: receipts stored
-- for idempotent retries before that held their owners' balances, positions and collateral.
update bj.idempotency i
   set response = jsonb_set(i.response, '{triggered}', (
         select coalesce(jsonb_agg(f - array['balance', 'locked', 'position', 'prices_after',
                                             'amount', 'fee', 'total', 'triggered',
                                             'root_trade_id'] order by n), '[]')
           from jsonb_array_elements(i.response -> 'triggered') with ordinality t(f, n)))
 where jsonb_typeof(i.response -> 'triggered') = 'array'
   and jsonb_array_length(i.response -> 'triggered') > 0;

reset role;

-- PostgreSQL grants these to PUBLIC. Client roles need none of them: WAL writes (only the HTTP
-- layer's confirming commit), advisory locks (only the exchange's own functions, which could
-- otherwise be blocked by a lock someone else holds), large objects (disk without a quota) and
-- notifications (the HTTP layer listens on betjee_schema).
revoke execute on function pg_catalog.pg_logical_emit_message(boolean, text, text),
                           pg_catalog.pg_logical_emit_message(boolean, text, bytea),
                           pg_catalog.pg_notify(text, text)
  from public;
grant execute on function pg_catalog.pg_logical_emit_message(boolean, text, text) to authenticator;

do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_proc p
     where p.pronamespace = 'pg_catalog'::regnamespace
       and (p.proname like 'pg\_advisory\_%' or p.proname like 'pg\_try\_advisory\_%'
            or p.proname like 'lo\_%' or p.proname in ('loread', 'lowrite'))
       and has_function_privilege('public', p.oid, 'execute')
  loop
    execute format('revoke execute on function %s from public', f);
    if f::text like 'pg_advisory%' or f::text like 'pg_try_advisory%' then
      execute format('grant execute on function %s to betjee_owner', f);
    end if;
  end loop;
end $$;
