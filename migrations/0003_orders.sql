-- Conditional orders (stop-loss, take-profit) fired inside the trade that crosses them.
-- depends: 0002_exchange

set role betjee_owner;

create table bj.orders (
  id bigint generated always as identity primary key,
  user_id bigint not null references bj.users (id),
  market_id bigint not null references bj.markets (id),
  outcome smallint not null,
  kind text not null check (kind in ('stop_loss', 'take_profit')),
  direction text not null check (direction in ('long', 'short')),
  -- fires when the price falls to the trigger (a long's stop, a short's take-profit), else rises
  falls boolean generated always as ((kind = 'stop_loss') = (direction = 'long')) stored,
  shares bj.shares6 not null check (shares > 0),
  trigger_price numeric(12, 9) not null check (trigger_price > 0 and trigger_price < 1),
  status text not null default 'open' check (status in ('open', 'filled', 'cancelled')),
  reason text,
  trade_id bigint references bj.trades (id),
  created_at timestamptz not null default clock_timestamp(),
  done_at timestamptz
);
create index orders_open on bj.orders (market_id, outcome, falls, trigger_price) where status = 'open';
create index orders_user on bj.orders (user_id, id);

alter table bj.trades add constraint trades_order_fk foreign key (order_id) references bj.orders (id);

alter table bj.orders enable row level security;
alter table bj.orders force row level security;

reset role;
