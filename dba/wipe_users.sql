-- Scorched earth: disable accounts and burn their cash, positions and orders, ledger intact.
--   psql "$(make -s dburl)" -v users='{bot1,bot2}' -f dba/wipe_users.sql   (add -v dry_run=1 to rehearse)
\set ON_ERROR_STOP on
\if :{?users}
\else
  \echo 'usage: psql URL -v users={name,...} [-v dry_run=1] -f dba/wipe_users.sql'
  \quit
\endif
\ir _begin.psql
\echo 'Wiping' :users
select * from admin.wipe_users(:'users'::text[]);
\ir _end.psql
