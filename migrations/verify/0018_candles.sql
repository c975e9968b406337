select market_id, minute, outcome, open, high, low, close, volume from bj.candles where false;
select market_id, trade_id from bj.candles_rolled where false;
select 1 / (to_regclass('bj.trades_market_id') is not null)::int;
