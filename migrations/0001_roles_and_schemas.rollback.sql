alter default privileges for role betjee_owner grant execute on functions to public;
drop schema if exists analytics cascade;
drop schema if exists admin cascade;
drop schema if exists api cascade;
drop schema if exists auth cascade;
drop schema if exists bj cascade;
drop extension if exists pgcrypto;
drop schema if exists extensions cascade;
do $$
declare
  r text;
begin
  execute format('revoke all on database %I from betjee_owner', current_database());
  -- Roles are shared by every database of the server: drop them when no other one uses them.
  foreach r in array array['analyst', 'service_role', 'authenticator', 'authenticated', 'anon', 'betjee_owner'] loop
    execute format('drop owned by %I', r);
    begin
      execute format('drop role if exists %I', r);
    exception when dependent_objects_still_exist or object_in_use then
      null;
    end;
  end loop;
end $$;
