-- Void a market: every trader gets back what they put in, fees included.
--   psql "$(make -s dburl)" -v market=21s1 -f dba/void.sql        (add -v dry_run=1 to rehearse)
\set ON_ERROR_STOP on
\if :{?market}
\else
  \echo 'usage: psql URL -v market=CODE [-v dry_run=1] -f dba/void.sql'
  \quit
\endif
\ir _begin.psql
\echo 'Voiding' :market '- balances before and after:'
create temp table before on commit drop as select * from admin.market_traders(:'market');
select admin.void_market(:'market') - 'outcomes' as result;
select b.username, b.balance as before, a.balance as after, a.balance - b.balance as refund
  from before b join admin.market_traders(:'market') a using (user_id) order by refund desc, b.username;
\ir _end.psql
