-- Prove the caches agree with the ledger: lists every violated invariant, fails if any.
--   psql "$(make -s dburl)" -f dba/check.sql              from the newest checkpoint: what
--                                                         was posted since (admin.check_invariants)
--   psql "$(make -s dburl)" -v full=1 -f dba/check.sql    the whole ledger replayed (admin.check_invariants_full)
\set ON_ERROR_STOP on
\if :{?full}
\else
  \set full 0
\endif
\if :full
  \echo 'Checking the invariants: the whole ledger replayed'
  select coalesce(jsonb_agg(v), '[]') as found from admin.check_invariants_full() v \gset
\else
  select coalesce((select format('Checking the invariants from the checkpoint at ledger id %s (verified %s): %s postings since',
                                 c.ledger_id, c.verified_at, c.postings_since)
                     from admin.invariants_checkpoint() c),
                  'Checking the invariants: no checkpoint yet, the whole ledger replayed') as checking \gset
  \echo :checking
  select coalesce(jsonb_agg(v), '[]') as found from admin.check_invariants() v \gset
\endif
select * from jsonb_to_recordset(:'found') as v(invariant text, subject text, expected numeric, actual numeric);
select :'found' <> '[]' as violated \gset
\if :violated
  \echo 'INVARIANTS VIOLATED'
  select 1 / 0 as "invariants violated";
\else
  \echo 'all invariants hold'
\endif
