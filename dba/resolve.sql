-- Resolve a market to one winning outcome: every winning share pays 1.
--   psql "$(make -s dburl)" -v market=21s1 -v outcome=YES -f dba/resolve.sql
--   add -v dry_run=1 to see the payouts and commit nothing
\set ON_ERROR_STOP on
\if :{?market}
\else
  \echo 'usage: psql URL -v market=CODE -v outcome=NAME [-v dry_run=1] -f dba/resolve.sql'
  \quit
\endif
\ir _begin.psql
\echo 'Resolving' :market 'to' :outcome
select code, title, status, volume, traders from admin.market_summary(:'market');
\echo 'Payouts (negative: paid by a short from its collateral):'
select * from admin.preview_resolution(:'market', jsonb_build_object(:'outcome', 1));
select admin.resolve_market(:'market', :'outcome') - 'outcomes' as result;
\ir _end.psql
