do $$
begin
  if (select rolsuper from pg_roles where rolname = current_user) then
    revoke pg_read_all_stats from betjee_owner;
    drop extension if exists pg_stat_statements;
  end if;
end $$;
