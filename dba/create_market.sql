-- Create a market.
--   psql "$(make -s dburl)" -v code=29s1 -v title='Was shift 29s1 the hardest?' -f dba/create_market.sql
--   optional: -v outcomes='{A,B,C}' -v liquidity=100 -v fee_rate=0.0167 -v close_at='2027-01-31 18:00+05:30'
--             -v pricing=lmsr|sigmoid|book -v tick=0.01 -v maker_fee_rate=0
\set ON_ERROR_STOP on
\if :{?code}
\else
  \echo 'usage: psql URL -v code=CODE -v title=TITLE [-v outcomes={A,B}] [-v liquidity=N] [-v fee_rate=R] [-v close_at=T] [-v pricing=lmsr|sigmoid|book] [-v tick=0.01|0.001|0.0001] [-v maker_fee_rate=R] -f dba/create_market.sql'
  \quit
\endif
\if :{?title}
\else
  \set title :code
\endif
\if :{?outcomes}
\else
  \set outcomes '{YES,NO}'
\endif
\if :{?liquidity}
\else
  \set liquidity 100
\endif
\if :{?fee_rate}
\else
  \set fee_rate ''
\endif
\if :{?close_at}
\else
  \set close_at ''
\endif
\if :{?pricing}
\else
  \set pricing lmsr
\endif
\if :{?tick}
\else
  \set tick 0.01
\endif
\if :{?maker_fee_rate}
\else
  \set maker_fee_rate 0
\endif
select admin.create_market(:'code', :'title', :'outcomes'::text[], :'liquidity'::numeric,
                           nullif(:'fee_rate', '')::numeric, nullif(:'close_at', '')::timestamptz,
                           :'pricing', :'tick'::numeric, :'maker_fee_rate'::numeric);
