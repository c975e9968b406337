-- The same trade with the stop check, as every root trade runs it: fifty open orders, none crossed.
\set u random(51, 200)
\set s random(0, 1)
select bj.execute_trade(:u, 'stops', 'NO', case :s::int when 0 then 'buy' else 'sell' end, 1, null, p_cascade => true);
