-- 100,000 resting orders on the market 'deep', placed through the exchange, committed every
-- thousand (run alone: a DO block may commit only outside a transaction block).
do $$
begin
  for i in 1..100000 loop
    perform bj.place_order(1 + i % 200, 'deep', 'YES', case when i % 2 = 0 then 'buy' else 'sell' end, 'limit', 1,
                           case when i % 2 = 0 then 0.01 + (i / 2 % 40) * 0.01 else 0.60 + (i / 2 % 40) * 0.01 end,
                           null, null, 'gtc', null, false, 'persist', null, 'cancel_resting', null, null, null);
    if i % 1000 = 0 then
      commit;
    end if;
  end loop;
end $$;
