-- installed wherever the migrations ran as a superuser
select 1 / (exists (select 1 from pg_extension where extname = 'pg_stat_statements')
            or not (select rolsuper from pg_roles where rolname = current_user))::int;
