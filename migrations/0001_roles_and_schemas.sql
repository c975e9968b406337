-- Roles, schemas and extensions: the frame every later migration fills in.
-- Roles are cluster-wide and may already exist (another BetJee database on the same server).

create schema if not exists extensions;
create extension if not exists pgcrypto with schema extensions;

do $$
declare
  r record;
begin
  for r in
    select * from (values
      ('betjee_owner', 'nologin'),       -- owns every project object; nobody logs in as it
      ('anon', 'nologin'),               -- a visitor without a token
      ('authenticated', 'nologin'),      -- a trader, identity from the JWT claims
      ('authenticator', 'login noinherit'), -- the HTTP layer; may only SET ROLE anon/authenticated
      ('analyst', 'login'),              -- read-only SQL on the analytics schema
      ('service_role', 'nologin')        -- DBA scripts: the admin schema
    ) as t(name, opts)
  loop
    if not exists (select 1 from pg_roles where rolname = r.name) then
      execute format('create role %I %s', r.name, r.opts);
    end if;
  end loop;
end $$;

grant anon, authenticated to authenticator;
alter role analyst set search_path = analytics;
grant anon, authenticated, analyst, service_role to betjee_owner;

do $$
begin
  execute format('grant create, connect, temporary on database %I to betjee_owner', current_database());
end $$;

grant usage on schema extensions to betjee_owner, anon, authenticated, service_role;

-- Private schema for tables and domain functions: no client role gets anything in it.
create schema bj authorization betjee_owner;
create schema auth authorization betjee_owner;
create schema api authorization betjee_owner;
create schema admin authorization betjee_owner;
create schema analytics authorization betjee_owner;

grant usage on schema api to anon, authenticated;
grant usage on schema auth to anon, authenticated;
grant usage on schema admin to service_role;
grant usage on schema analytics to analyst;

-- Functions are executable by PUBLIC unless told otherwise: not ours.
alter default privileges for role betjee_owner revoke execute on functions from public;
