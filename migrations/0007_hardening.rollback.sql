set role betjee_owner;
drop table if exists bj.throttle cascade;
reset role;

grant execute on function pg_catalog.pg_logical_emit_message(boolean, text, text),
                          pg_catalog.pg_logical_emit_message(boolean, text, bytea),
                          pg_catalog.pg_notify(text, text)
  to public;
revoke execute on function pg_catalog.pg_logical_emit_message(boolean, text, text) from authenticator;

do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_proc p
     where p.pronamespace = 'pg_catalog'::regnamespace
       and (p.proname like 'pg\_advisory\_%' or p.proname like 'pg\_try\_advisory\_%'
            or p.proname like 'lo\_%' or p.proname in ('loread', 'lowrite'))
  loop
    execute format('grant execute on function %s to public', f);
    if f::text like 'pg_advisory%' or f::text like 'pg_try_advisory%' then
      execute format('revoke execute on function %s from betjee_owner', f);
    end if;
  end loop;
end $$;
