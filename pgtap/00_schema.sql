-- The frame: roles, schemas, and plpgsql_check finding no error in any function.
begin;
select plan(4);

select has_role(r) from unnest(array['anon', 'authenticated', 'authenticator']) r;
select is_empty($$
  select p.oid::regprocedure::text, r.message
    from pg_proc p
    join pg_language l on l.oid = p.prolang and l.lanname = 'plpgsql'
    cross join lateral plpgsql_check_function_tb(
        p.oid,
        relid => coalesce((select t.tgrelid from pg_trigger t where t.tgfoid = p.oid limit 1), 0)) r
   where p.pronamespace in (select oid from pg_namespace
                             where nspname in ('bj', 'auth', 'api', 'admin', 'analytics'))
     and r.level = 'error'
$$, 'plpgsql_check finds no error in any project function');

select * from finish();
rollback;
