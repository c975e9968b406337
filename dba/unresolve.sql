-- Undo a resolution that was a mistake: every posting of it is posted back the other way, so
-- positions, collateral and the pool are as before it; a winner who spent the payout is left at
-- zero with the rest as a debt. The market is closed again (or open until -v reopen_until), to
-- be resolved again with dba/resolve.sql.
--   psql "$(make -s dburl)" -v market=21s1 -v reason='resolved YES by mistake' -f dba/unresolve.sql
--   add -v dry_run=1 to see what each trader gives back and commit nothing
\set ON_ERROR_STOP on
\if :{?market}
\else
  \echo 'usage: psql URL -v market=CODE -v reason=TEXT [-v reopen_until=TIME] [-v dry_run=1] -f dba/unresolve.sql'
  \quit
\endif
\if :{?reason}
\else
  \echo 'a reason is required (-v reason=...): it is logged with the reversal'
  \quit
\endif
\if :{?reopen_until}
\else
  \set reopen_until ''
\endif
\ir _begin.psql
\echo 'Unresolving' :market
select code, title, status, volume, traders from admin.market_summary(:'market');
\echo 'What each account gives back (debt: what its balance cannot cover):'
select * from admin.preview_unresolve(:'market');
select admin.unresolve_market(:'market', :'reason', nullif(:'reopen_until', '')::timestamptz) - 'outcomes' as result;
select at, action, actor, reason from admin.settlement_log(:'market', 2);
\ir _end.psql
