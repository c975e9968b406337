-- Settlement records: what the house carried when voiding a market met a balance already spent.
-- depends: 0002_exchange

set role betjee_owner;

create table bj.void_shortfalls (
  market_id bigint not null references bj.markets (id),
  user_id bigint not null references bj.users (id),
  amount bj.money6 not null check (amount > 0),
  at timestamptz not null default clock_timestamp(),
  primary key (market_id, user_id)
);
alter table bj.void_shortfalls enable row level security;
alter table bj.void_shortfalls force row level security;

reset role;
