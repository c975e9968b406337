-- Stop trading in a market ahead of its resolution.
--   psql "$(make -s dburl)" -v market=21s1 -f dba/close_market.sql
\set ON_ERROR_STOP on
\if :{?market}
\else
  \echo 'usage: psql URL -v market=CODE -f dba/close_market.sql'
  \quit
\endif
select admin.close_market(:'market') - 'outcomes' as result;
