drop index if exists bj.trades_market_id;
drop table if exists bj.candles_rolled cascade;
drop table if exists bj.candles cascade;
