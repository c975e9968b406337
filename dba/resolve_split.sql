-- Resolve a market to a payout vector: each share of an outcome pays its weight.
--   psql "$(make -s dburl)" -v market=21s1 -v payouts='{"YES": 0.3, "NO": 0.7}' -f dba/resolve_split.sql
--   add -v dry_run=1 to see the payouts and commit nothing
\set ON_ERROR_STOP on
\if :{?market}
\else
  \echo 'usage: psql URL -v market=CODE -v payouts=JSON [-v dry_run=1] -f dba/resolve_split.sql'
  \quit
\endif
\ir _begin.psql
\echo 'Resolving' :market 'to' :payouts
select * from admin.preview_resolution(:'market', :'payouts'::jsonb);
select admin.resolve_market_split(:'market', :'payouts'::jsonb) - 'outcomes' as result;
\ir _end.psql
