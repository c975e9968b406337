-- Statement statistics for the DBA (admin.slow_calls): pg_stat_statements, where it can be
-- installed. Creating it, and letting the functions' owner read every statement's text
-- (pg_read_all_stats), take a superuser; a server without one (a managed database) installs it
-- as its provider says, and admin.slow_calls says so until then (BJ050).
-- depends: 0011_hot_rows

do $$
begin
  if (select rolsuper from pg_roles where rolname = current_user) then
    create extension if not exists pg_stat_statements with schema extensions;
    grant pg_read_all_stats to betjee_owner;
  else
    raise notice 'pg_stat_statements not installed: it takes a superuser (docs/dba.md)';
  end if;
end $$;
