-- Prove the caches agree with the ledger: lists every violated invariant, fails if any.
--   psql "$(make -s dburl)" -f dba/check.sql
\set ON_ERROR_STOP on
select * from admin.check_invariants();
select count(*) > 0 as violated from admin.check_invariants() \gset
\if :violated
  \echo 'INVARIANTS VIOLATED'
  select 1 / 0 as "invariants violated";
\else
  \echo 'all invariants hold'
\endif
