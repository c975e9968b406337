select name, market_maker, shorts from bj.pricing_models where false;
select tick, maker_fee_rate, phase, pairs, book_seq, resting, last_prices from bj.markets where false;
select side, price, filled, cancelled, remaining, time_in_force, expires_at, post_only, persistence,
       client_order_id, stp, request, locked_cash, locked_shares from bj.orders where false;
select how, role, other_trade_id, price from bj.trades where false;
select market_id, seq, outcome, side, price, shares, orders, xid, at from bj.book_changes where false;
select (null::bj.fill).how, (null::bj.take_plan).fills, (null::bj.take_account).cash;
select market_id, outcome, side, price, shares, orders from bj.book_levels where false;
