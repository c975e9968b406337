-- The benchmark's world: 200 rich traders, one hot market, ten more, no cooldown, and a
-- bare schema for the baseline transaction of the same shape as a trade.
select admin.configure('trade_cooldown_ms', '0');
select admin.configure('bcrypt_cost', '4');
select admin.configure('signup_bonus', '1000000000');
select admin.configure('signup_ip_max', '1000000');
select count(bj.signup('bench' || i, 'password123', null)) from generate_series(1, 200) i;
select admin.create_market('hot', 'the hot market');
select admin.create_market('stops', 'a market with uncrossed stops');
select count(admin.create_market('m' || i, 'market ' || i)) from generate_series(1, 10) i;
-- fifty stop orders far from the price: checked after every trade, never crossed
select count(bj.trade(i, 'stops', 'YES', 'buy', 10, null, null, null, null)) from generate_series(1, 50) i;
select count(bj.place_conditional(i, 'stops', 'YES', null, 'stop_loss', 10, 0.01, null, null)) from generate_series(1, 50) i;

create schema bare;
create table bare.market (id int primary key, q numeric not null, version bigint not null);
create table bare.account (id int primary key, balance numeric not null);
create table bare.position (user_id int, market_id int, shares numeric not null, primary key (user_id, market_id));
create table bare.ledger (id bigint generated always as identity primary key, journal bigint, credit text,
                          debit text, amount numeric, at timestamptz default clock_timestamp());
insert into bare.market values (1, 0, 0);
insert into bare.account select i, 1000000000 from generate_series(1, 200) i;

-- The book: an empty book market, and one holding 100,000 resting orders (bids 0.01-0.40,
-- asks 0.60-0.99, one share each, from the 200 traders), placed through the exchange.
select admin.create_market('shallow', 'an empty book', pricing => 'book');
select admin.create_market('deep', 'a deep book', pricing => 'book');
-- (the 100,000 orders: bench/deep_book.sql, one statement that commits as it goes)
-- a market with a market maker to sweep: asks at ten levels above its price, a buy through them
select admin.create_market('sweep', 'levels and the market maker between them');
create schema bench;
-- One sweep, timed: trader 1 offers one share at each of p_levels ticks above the price
-- (none: the market maker alone), trader 2 buys up to the last of them (the market maker
-- fills between the levels); then (untimed) trader 2 sells it all to the market maker and
-- trader 1 buys back what it sold, so the market is where it was. Answers the buy's time in
-- microseconds.
create function bench.sweep(p_levels int) returns numeric
language plpgsql as $$
declare
  v_base numeric := ceil((bj.display_prices(bj.market_prices((select m from bj.markets m where m.code = 'sweep'))))[1] * 100) / 100;
  v_started timestamptz;
  v_took interval;
  v_held numeric;
begin
  for k in 1..p_levels loop
    perform bj.place_order(1, 'sweep', 'YES', 'sell', 'limit', 1, v_base + k * 0.01, null, null, 'gtc', null, false,
                           'persist', null, 'cancel_resting', null, null, null);
  end loop;
  v_started := clock_timestamp();
  perform bj.place_order(2, 'sweep', 'YES', 'buy', 'limit', 1000, v_base + 10 * 0.01, null, null, 'ioc', null, false,
                         'persist', null, 'cancel_resting', null, null, null);
  v_took := clock_timestamp() - v_started;
  select p.shares into v_held from bj.positions p join bj.markets m on m.id = p.market_id
   where p.user_id = 2 and m.code = 'sweep' and p.outcome = 1;
  perform bj.place_order(2, 'sweep', 'YES', 'sell', 'market', v_held, null, null, null, 'ioc', null, false,
                         'persist', null, 'cancel_resting', null, null, null);
  if p_levels > 0 then
    perform bj.place_order(1, 'sweep', 'YES', 'buy', 'market', p_levels, null, null, null, 'ioc', null, false,
                           'persist', null, 'cancel_resting', null, null, null);
  end if;
  return extract(epoch from v_took) * 1000000;
end $$;
