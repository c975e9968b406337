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
select count(bj.place_order(i, 'stops', 'YES', 'stop_loss', 10, 0.01)) from generate_series(1, 50) i;

create schema bare;
create table bare.market (id int primary key, q numeric not null, version bigint not null);
create table bare.account (id int primary key, balance numeric not null);
create table bare.position (user_id int, market_id int, shares numeric not null, primary key (user_id, market_id));
create table bare.ledger (id bigint generated always as identity primary key, journal bigint, credit text,
                          debit text, amount numeric, at timestamptz default clock_timestamp());
insert into bare.market values (1, 0, 0);
insert into bare.account select i, 1000000000 from generate_series(1, 200) i;
