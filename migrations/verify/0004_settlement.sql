select market_id, user_id, amount from bj.void_shortfalls where false;
