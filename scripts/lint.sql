-- Every PL/pgSQL function in the project's schemas, checked by plpgsql_check.
-- Prints each finding; fails when any is an error.
create temp table lint as
select p.oid::regprocedure as fn, r.level, r.message, r.lineno
  from pg_proc p
  join pg_language l on l.oid = p.prolang and l.lanname = 'plpgsql'
  cross join lateral plpgsql_check_function_tb(
      p.oid,
      relid => coalesce((select t.tgrelid from pg_trigger t where t.tgfoid = p.oid limit 1), 0),
      extra_warnings => false) r
 where p.pronamespace in (select oid from pg_namespace
                           where nspname in ('bj', 'auth', 'api', 'admin', 'analytics'));
select level, fn, 'line ' || lineno, message from lint order by level, fn::text;
select count(*) filter (where level = 'error') as errors,
       count(*) filter (where level <> 'error') as warnings from lint;
do $$ begin
  if exists (select 1 from lint where level = 'error') then
    raise exception 'plpgsql_check found errors';
  end if;
end $$;
