-- The exchange's tables: settings, traders and their secrets, markets, positions, collateral,
-- trades, the ledger (append-only, double-entry) and the change outbox.
-- depends: 0001_roles_and_schemas

set role betjee_owner;

create domain bj.money6 as numeric(24, 6);
create domain bj.shares6 as numeric(24, 6);

create table bj.settings (
  key text primary key,
  value text not null,
  description text not null default ''
);

create table bj.users (
  id bigint generated always as identity primary key,
  username text not null unique check (username ~ '^[a-z0-9_]{3,32}$'),
  balance bj.money6 not null default 0 check (balance >= 0),
  created_at timestamptz not null default clock_timestamp(),
  disabled_at timestamptz,
  signup_ip inet,
  last_trade_at timestamptz
);
create index users_signup_ip on bj.users (signup_ip, created_at);

-- Secrets apart from the public profile: no client role can read this table.
create table bj.credentials (
  user_id bigint primary key references bj.users (id),
  password_hash text not null
);

create table bj.secrets (
  name text primary key,
  value text not null
);

create table bj.markets (
  id bigint generated always as identity primary key,
  code text not null unique check (code ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
  title text not null check (length(title) between 1 and 300),
  status text not null default 'open' check (status in ('open', 'closed', 'resolved', 'voided')),
  pricing text not null default 'lmsr' check (pricing in ('lmsr', 'sigmoid')),
  liquidity bj.money6 not null check (liquidity > 0),
  fee_rate numeric(8, 6) not null check (fee_rate >= 0 and fee_rate < 0.5),
  close_at timestamptz,
  outcomes text[] not null check (cardinality(outcomes) between 2 and 64),
  q numeric(24, 6)[] not null,
  pool bj.money6 not null default 0,
  subsidy bj.money6 not null default 0,
  volume bj.money6 not null default 0,
  version bigint not null default 0,
  payouts numeric(12, 9)[],
  closing_prices numeric(12, 9)[],
  created_at timestamptz not null default clock_timestamp(),
  closed_at timestamptz,
  settled_at timestamptz,
  check (cardinality(q) = cardinality(outcomes))
);

create table bj.positions (
  user_id bigint not null references bj.users (id),
  market_id bigint not null references bj.markets (id),
  outcome smallint not null,
  shares bj.shares6 not null default 0,
  cost_basis bj.money6 not null default 0,
  primary key (user_id, market_id, outcome)
);
create index positions_market on bj.positions (market_id, outcome);

-- The maximum payout of a trader's shorts in a market, locked out of the balance.
create table bj.collateral (
  user_id bigint not null references bj.users (id),
  market_id bigint not null references bj.markets (id),
  amount bj.money6 not null default 0 check (amount >= 0),
  primary key (user_id, market_id)
);
create index collateral_market on bj.collateral (market_id);

create table bj.trades (
  id bigint generated always as identity primary key,
  market_id bigint not null references bj.markets (id),
  user_id bigint not null references bj.users (id),
  outcome smallint not null,
  side text not null check (side in ('buy', 'sell')),
  shares bj.shares6 not null check (shares > 0),
  amount bj.money6 not null,
  fee bj.money6 not null,
  total bj.money6 not null,
  prices_after numeric(12, 9)[] not null,
  root_trade_id bigint references bj.trades (id),
  order_id bigint,
  created_at timestamptz not null default clock_timestamp()
);
create index trades_market_time on bj.trades (market_id, created_at);
create index trades_user on bj.trades (user_id, id);
create index trades_root on bj.trades (root_trade_id) where root_trade_id is not null;

-- Every movement of money or shares: `amount` of `asset` moves from account `credit` to
-- account `debit`. Each row balances by itself, so every journal and the whole ledger sum to
-- zero per asset. Accounts: house, fees, burn, cash:U, coll:U:M, pool:M (coin) and
-- maker:M:O, pos:U:M:O (shares of outcome O of market M, asset share:M:O).
create sequence bj.journal_seq;
create table bj.ledger (
  id bigint generated always as identity primary key,
  journal bigint not null,
  kind text not null,
  asset text not null,
  credit text not null,
  debit text not null,
  amount numeric(24, 6) not null check (amount > 0),
  user_id bigint,
  market_id bigint,
  trade_id bigint,
  at timestamptz not null default clock_timestamp(),
  check (credit <> debit)
);
create index ledger_user on bj.ledger (user_id) where user_id is not null;
create index ledger_market on bj.ledger (market_id) where market_id is not null;

create function bj.ledger_is_append_only() returns trigger
language plpgsql set search_path = '' as $$
begin
  raise exception 'the ledger is append-only: % refused', tg_op
    using errcode = 'BJ900', hint = 'post a compensating entry instead';
end $$;
create trigger _100_append_only before update or delete on bj.ledger
  for each row execute function bj.ledger_is_append_only();
create trigger _100_no_truncate before truncate on bj.ledger
  for each statement execute function bj.ledger_is_append_only();

create table bj.idempotency (
  user_id bigint not null references bj.users (id),
  key text not null check (length(key) between 1 and 200),
  request jsonb not null,
  response jsonb,
  created_at timestamptz not null default clock_timestamp(),
  primary key (user_id, key)
);

-- The change outbox: one row per market change, tagged with the writing transaction, so a
-- reader hands out only what lies below the oldest transaction still running.
create table bj.market_events (
  id bigint generated always as identity primary key,
  market_id bigint not null references bj.markets (id),
  version bigint not null,
  xid xid8 not null default pg_current_xact_id(),
  at timestamptz not null default clock_timestamp()
);
create index market_events_xid on bj.market_events (xid);

do $$
declare
  t text;
begin
  foreach t in array array['settings', 'users', 'credentials', 'secrets',
      'markets', 'positions', 'collateral', 'trades', 'ledger', 'idempotency', 'market_events'] loop
    execute format('alter table bj.%I enable row level security', t);
    execute format('alter table bj.%I force row level security', t);
  end loop;
end $$;

reset role;
