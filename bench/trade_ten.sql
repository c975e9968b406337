-- api.trade spread over ten markets, sent as bench/trade_hot.sql sends it.
\set u random(1, 200)
\set s random(0, 1)
\set m random(1, 10)
\startpipeline
begin;
select set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub": "' || :u::text || '"}', true), set_config('synchronous_commit', 'off', true);
select api.trade(market => 'm' || :m::text, outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
commit;
select pg_logical_emit_message(true, 'betjee.durable', '');
\endpipeline
