-- api.trade as a trader calls it over HTTP, on one hot market: buy or sell one share.
-- The statements are the HTTP layer's (api/rpc.py): role, claims and an asynchronous commit
-- for the trade's transaction, then a synchronous one whose flush makes the trade durable
-- before the answer. Pipelined: the commit follows without a network round trip.
\set u random(1, 200)
\set s random(0, 1)
\startpipeline
begin;
select set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub": "' || :u::text || '"}', true), set_config('synchronous_commit', 'off', true);
select api.trade(market => 'hot', outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
commit;
select pg_logical_emit_message(true, 'betjee.durable', '');
\endpipeline
