-- Move a market in play (or back to pre-play). Going in play cancels the resting orders
-- placed with persistence 'lapse' (their escrow comes back); 'persist' ones stay.
--   psql "$(make -s dburl)" -v market=21s1 -v phase=in_play -f dba/set_phase.sql
\set ON_ERROR_STOP on
\if :{?market}
\else
  \echo 'usage: psql URL -v market=CODE -v phase=pre|in_play -f dba/set_phase.sql'
  \quit
\endif
\if :{?phase}
\else
  \echo 'usage: psql URL -v market=CODE -v phase=pre|in_play -f dba/set_phase.sql'
  \quit
\endif
select r ->> 'code' as market, r ->> 'phase' as phase, r -> 'lapsed' as orders_lapsed
  from admin.set_phase(:'market', :'phase') r;
