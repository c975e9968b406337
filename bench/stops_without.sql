-- The trade without the stop check (p_cascade off, as for a fired trade).
\set u random(51, 200)
\set s random(0, 1)
select bj.execute_trade(:u, 'stops', 'NO', case :s::int when 0 then 'buy' else 'sell' end, 1, null, p_cascade => false);
