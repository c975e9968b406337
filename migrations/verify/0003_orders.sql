select id, user_id, market_id, outcome, kind, direction, shares, trigger_price, status from bj.orders where false;
