-- Candles kept per minute (admin.roll_candles), so that a market's price history reads its
-- minutes, not every trade it ever had (docs/architecture.md §18).
-- depends: 0017_standings

set role betjee_owner;

-- one row per market, minute and outcome: the prices after the trades of that minute up to the
-- market's watermark (bj.candles_rolled), and the volume traded in the outcome
create table bj.candles (
  market_id bigint not null,
  minute timestamptz not null,
  outcome smallint not null,
  open numeric(12, 9) not null,
  high numeric(12, 9) not null,
  low numeric(12, 9) not null,
  close numeric(12, 9) not null,
  volume numeric not null,
  primary key (market_id, minute, outcome)
);
alter table bj.candles enable row level security;
alter table bj.candles force row level security;

-- per market, the last trade in bj.candles: every trade of the market up to it
create table bj.candles_rolled (
  market_id bigint primary key,
  trade_id bigint not null
);
alter table bj.candles_rolled enable row level security;
alter table bj.candles_rolled force row level security;

-- a market's trades past its watermark
create index trades_market_id on bj.trades (market_id, id);

reset role;
