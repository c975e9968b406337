-- Fails unless the roles, schemas and pgcrypto exist.
select 1 / count(*) from pg_roles where rolname = 'authenticator' and rolcanlogin;
select 1 / count(*) from pg_roles where rolname = 'betjee_owner' and not rolcanlogin;
select 'bj'::regnamespace, 'api'::regnamespace, 'admin'::regnamespace, 'auth'::regnamespace,
       'analytics'::regnamespace;
select extensions.gen_random_uuid();
