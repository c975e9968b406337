-- api.trade as a trader calls it, on one hot market: buy or sell one share.
-- (pipelined: the commit follows without a network round trip, as the HTTP layer sends it)
\set u random(1, 200)
\set s random(0, 1)
\startpipeline
begin;
select set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub": "' || :u::text || '"}', true);
select api.trade(market => 'hot', outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
commit;
\endpipeline
