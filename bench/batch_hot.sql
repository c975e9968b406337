-- api.place_orders on the hot market, as a trader calls it over HTTP: eight marketable orders
-- (market orders of one share, four buys and four sales) in one transaction.
\set u random(1, 200)
\startpipeline
begin;
select set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub": "' || :u::text || '"}', true), set_config('synchronous_commit', 'off', true);
select api.place_orders(orders => '[{"market": "hot", "outcome": "YES", "side": "buy", "kind": "market", "shares": 1, "time_in_force": "ioc"}, {"market": "hot", "outcome": "YES", "side": "sell", "kind": "market", "shares": 1, "time_in_force": "ioc"}, {"market": "hot", "outcome": "NO", "side": "buy", "kind": "market", "shares": 1, "time_in_force": "ioc"}, {"market": "hot", "outcome": "NO", "side": "sell", "kind": "market", "shares": 1, "time_in_force": "ioc"}, {"market": "hot", "outcome": "YES", "side": "buy", "kind": "market", "shares": 1, "time_in_force": "ioc"}, {"market": "hot", "outcome": "YES", "side": "sell", "kind": "market", "shares": 1, "time_in_force": "ioc"}, {"market": "hot", "outcome": "NO", "side": "buy", "kind": "market", "shares": 1, "time_in_force": "ioc"}, {"market": "hot", "outcome": "NO", "side": "sell", "kind": "market", "shares": 1, "time_in_force": "ioc"}]');
commit;
select pg_logical_emit_message(true, 'betjee.durable', '');
\endpipeline
