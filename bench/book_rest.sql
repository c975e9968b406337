-- A non-marketable limit order rests, then is cancelled (two transactions, as the HTTP layer
-- sends writes), on the market named by -D market=...: the deep book (100,000 resting
-- orders) or the empty one. The bid lies below every ask, so it only rests.
\set u random(1, 200)
\set p random(20, 40)
begin;
select set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub": "' || :u::text || '"}', true), set_config('synchronous_commit', 'off', true);
select api.place_order(market => :market, outcome => 'YES', side => 'buy', shares => 1, price => :p::numeric / 100) ->> 'order_id' as oid \gset
commit;
select pg_logical_emit_message(true, 'betjee.durable', '');
begin;
select set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub": "' || :u::text || '"}', true), set_config('synchronous_commit', 'off', true);
select api.cancel_order(order_id => :oid);
commit;
select pg_logical_emit_message(true, 'betjee.durable', '');
