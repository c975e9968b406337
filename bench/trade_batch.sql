-- Not part of make bench: what per-market batching would give (docs/performance.md). Eight
-- trades of one market in one transaction, each in a savepoint under its own trader's claims,
-- committed as the HTTP layer commits a write; run with one client, as one worker per market.
-- pgbench -n -M prepared -c 1 -T 6 -f bench/trade_batch.sql (rate x 8 = trades per second)
\set u0 random(1, 200)
\set u1 random(1, 200)
\set u2 random(1, 200)
\set u3 random(1, 200)
\set u4 random(1, 200)
\set u5 random(1, 200)
\set u6 random(1, 200)
\set u7 random(1, 200)
\set s random(0, 1)
\startpipeline
begin;
select set_config('role', 'authenticated', true), set_config('synchronous_commit', 'off', true);
savepoint t;
select set_config('request.jwt.claims', '{"sub": "' || :u0::text || '"}', true);
select api.trade(market => 'hot', outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
release t;
savepoint t;
select set_config('request.jwt.claims', '{"sub": "' || :u1::text || '"}', true);
select api.trade(market => 'hot', outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
release t;
savepoint t;
select set_config('request.jwt.claims', '{"sub": "' || :u2::text || '"}', true);
select api.trade(market => 'hot', outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
release t;
savepoint t;
select set_config('request.jwt.claims', '{"sub": "' || :u3::text || '"}', true);
select api.trade(market => 'hot', outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
release t;
savepoint t;
select set_config('request.jwt.claims', '{"sub": "' || :u4::text || '"}', true);
select api.trade(market => 'hot', outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
release t;
savepoint t;
select set_config('request.jwt.claims', '{"sub": "' || :u5::text || '"}', true);
select api.trade(market => 'hot', outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
release t;
savepoint t;
select set_config('request.jwt.claims', '{"sub": "' || :u6::text || '"}', true);
select api.trade(market => 'hot', outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
release t;
savepoint t;
select set_config('request.jwt.claims', '{"sub": "' || :u7::text || '"}', true);
select api.trade(market => 'hot', outcome => 'YES', side => case :s::int when 0 then 'buy' else 'sell' end, shares => 1);
release t;
commit;
select pg_logical_emit_message(true, 'betjee.durable', '');
\endpipeline
