-- The order book: pricing models as data (one row per model, markets refer to it), the
-- market's tick, maker fee, phase and minted pairs; limit and market orders beside the
-- conditional ones, with their escrow and fill state; trades that record who they matched.
-- depends: 0007_hardening

set role betjee_owner;

-- functions whose standard-SQL bodies are bound to these tables' row types would block the
-- new columns: they go, with what is built on them, and sql/ re-creates it all
drop function if exists bj.market_status_at(bj.markets, timestamptz) cascade;
drop function if exists bj.market_json_at(bj.markets, timestamptz) cascade;
drop function if exists bj.order_json(bj.orders) cascade;
drop function if exists bj.trade_json(bj.trades) cascade;

-- Every pricing model and what it allows; a market names one.
create table bj.pricing_models (
  name text primary key,
  market_maker boolean not null,  -- a market maker quotes every price, from a subsidised pool
  shorts boolean not null,        -- selling beyond one's position opens a collateralised short
  description text not null
);
insert into bj.pricing_models (name, market_maker, shorts, description) values
  ('lmsr', true, true, 'the logarithmic market scoring rule: cost b·ln Σ exp(q_i/b), prices its softmax'),
  ('sigmoid', true, false, 'the v1 bonding curve: each outcome priced by its own shares, no short sales'),
  ('book', false, true, 'no market maker: liquidity comes from resting orders only');
alter table bj.pricing_models enable row level security;
alter table bj.pricing_models force row level security;

alter table bj.markets
  add constraint markets_pricing_fkey foreign key (pricing) references bj.pricing_models (name),
  add column tick numeric(12, 9) not null default 0.01,
  add column maker_fee_rate numeric(8, 6) not null default 0,
  add column phase text not null default 'pre',
  add column pairs bj.shares6 not null default 0,
  add column book_seq bigint not null default 0,
  add column resting int not null default 0,
  add column last_prices numeric(12, 9)[];

-- the definition check (its function lives in sql/50_lifecycle.sql) covers the new columns
drop trigger _100_definition_is_valid on bj.markets;
create trigger _100_definition_is_valid
  before insert or update of code, title, status, pricing, liquidity, fee_rate, outcomes, tick,
                             maker_fee_rate, phase
  on bj.markets for each row execute function bj.market_definition_is_valid();

-- Orders of every kind: limit and market orders (side, price, time in force), and the
-- conditional ones (trigger_price; direction of the position they protect). shares is the
-- quantity ordered, filled what executed, cancelled what will never execute; the rest remains.
alter table bj.orders
  drop constraint orders_kind_check,
  add constraint orders_kind_check check (kind in ('limit', 'market', 'stop_loss', 'take_profit')),
  -- pending: being placed (not yet on the book); open: resting, or waiting for its trigger
  drop constraint orders_status_check,
  add constraint orders_status_check check (status in ('pending', 'open', 'filled', 'cancelled')),
  alter column direction drop not null,
  alter column trigger_price drop not null,
  add column side text check (side in ('buy', 'sell')),
  add column price numeric(12, 9) check (price > 0 and price < 1),
  add column filled bj.shares6 not null default 0 check (filled >= 0),
  add column cancelled bj.shares6 not null default 0 check (cancelled >= 0),
  add column remaining bj.shares6 generated always as (shares - filled - cancelled) stored,
  add column time_in_force text not null default 'gtc' check (time_in_force in ('gtc', 'gtd', 'ioc', 'fok')),
  add column expires_at timestamptz,
  add column post_only boolean not null default false,
  add column persistence text not null default 'persist' check (persistence in ('persist', 'lapse')),
  add column client_order_id text check (length(client_order_id) between 1 and 64),
  add column stp text not null default 'cancel_resting' check (stp in ('cancel_resting', 'cancel_newest')),
  add column request jsonb,
  add column locked_cash bj.money6 not null default 0 check (locked_cash >= 0),
  add column locked_shares bj.shares6 not null default 0 check (locked_shares >= 0),
  add constraint orders_remaining_check check (remaining >= 0);
-- what the conditional orders already had: a fired order filled what its trade executed
update bj.orders o set side = case o.direction when 'long' then 'sell' else 'buy' end;
update bj.orders o set filled = t.shares, cancelled = o.shares - least(o.shares, t.shares)
  from bj.trades t where t.id = o.trade_id and o.status = 'filled';
update bj.orders o set cancelled = o.shares - o.filled where o.status <> 'open';
alter table bj.orders alter column side set not null;

create unique index orders_client_order_id on bj.orders (user_id, client_order_id)
  where client_order_id is not null;
-- the book: each outcome's resting bids (best first: highest price, then oldest) and asks
create index orders_bids on bj.orders (market_id, outcome, price desc, id)
  where status = 'open' and kind = 'limit' and side = 'buy';
create index orders_asks on bj.orders (market_id, outcome, price, id)
  where status = 'open' and kind = 'limit' and side = 'sell';
create index orders_expiring on bj.orders (expires_at) where status = 'open' and expires_at is not null;
drop index bj.orders_open;
create index orders_triggers on bj.orders (market_id, outcome, falls, trigger_price)
  where status = 'open' and trigger_price is not null;
-- a trader's open orders (api.me, cancelling all of mine), however many they closed before
create index orders_user_open on bj.orders (user_id, id) where status = 'open';
-- an order's fills (every order as clients read it)
create index trades_order on bj.trades (order_id) where order_id is not null;

-- A trade is one side of one fill: against the market maker, or against a resting order (then
-- both sides have a trade, each naming the other). how: 'amm', 'direct' (shares change hands),
-- 'mint' (two buys of complementary outcomes create a pair), 'merge' (two sells retire one);
-- role: 'taker' or 'maker'. (No CHECK constraints: every statement that writes a table
-- prepares all of its checks again, and trades are written by one function, bj.post_fills.)
-- A trade's market and trader are locked by the transaction that writes it (the market first,
-- then the trader), so they exist; the foreign keys checked them again on every trade at a
-- sixth of its time (a key-share lock query per key, measured). admin.check_invariants()
-- verifies the references instead.
alter table bj.trades
  drop constraint trades_market_id_fkey,
  drop constraint trades_user_id_fkey,
  add column how text not null default 'amm',
  add column role text not null default 'taker',
  add column other_trade_id bigint,
  add column price numeric(12, 9);

-- The book by price level: resting shares and orders at each price of each outcome and side,
-- kept by every change of a resting order (a cache of bj.orders, checked by the invariants), so
-- that neither a change nor a reader of the book scans a level's orders.
create table bj.book_levels (
  market_id bigint not null,
  outcome smallint not null,
  side text not null,
  price numeric(12, 9) not null,
  shares bj.shares6 not null default 0,
  orders int not null default 0,
  primary key (market_id, outcome, side, price)
);
alter table bj.book_levels enable row level security;
alter table bj.book_levels force row level security;

-- The book's changes, for streams: each transaction that changes a market's book takes the
-- next number of its gap-free sequence (markets.book_seq) and records every price level it
-- changed, as the level is after it (resting shares and orders; 0 and 0: the level is gone).
create table bj.book_changes (
  market_id bigint not null,
  seq bigint not null,
  outcome smallint not null,
  side text not null,
  price numeric(12, 9) not null,
  shares bj.shares6 not null,
  orders int not null,
  xid xid8 not null default pg_current_xact_id(),
  at timestamptz not null default clock_timestamp(),
  primary key (market_id, seq, outcome, side, price)
);
create index book_changes_xid on bj.book_changes (xid);
create index book_changes_at on bj.book_changes (at);
alter table bj.book_changes enable row level security;
alter table bj.book_changes force row level security;

-- One fill of a taking order against a resting order, as the planner produces it and the
-- poster writes it. (What a taking order buys from or sells to the market maker is one move of
-- its curve, kept in the plan itself.)
create type bj.fill as (
  how text,             -- direct (shares change hands) | mint | merge
  outcome int,          -- the taker's outcome
  shares numeric,
  price numeric,        -- per share, for the taker: the resting price, or its complement
  amount numeric,       -- the taker's money before the fee: paid on a buy, received on a sale
  fee numeric,          -- the taker's fee
  maker_order bigint,   -- the resting order
  maker_user bigint,
  maker_outcome int,    -- the resting order's outcome (the complement's, for mint and merge)
  maker_side text,
  maker_price numeric,  -- the resting order's own price
  maker_amount numeric, -- what the maker pays (a bid) or receives (an ask), before its fee
  maker_fee numeric
);

-- A taking order's plan: what it takes from the market maker (one move of its curve), its
-- fills against resting orders, and what they add up to.
create type bj.take_plan as (
  amm_shares numeric,   -- bought from (or sold to) the market maker
  amm_amount numeric,   -- its cost (or proceeds), rounded for the taker
  amm_fee numeric,
  fills bj.fill[],      -- against resting orders, in the order they executed (null: none)
  shares numeric,       -- filled, all together
  amount numeric,
  fee numeric,
  total numeric,        -- amount + fee on a buy, amount − fee on a sale
  q_after numeric[],    -- the market maker's quantities afterwards
  prices_after numeric(12, 9)[], -- the market's prices afterwards, as clients see them
  pairs_after numeric,  -- minted pairs outstanding afterwards
  unfilled numeric,     -- what the order asked for that no liquidity within its limit offered
  own_cancels bigint[], -- the taker's own resting orders it met (self-trade prevention)
  stopped_by_stp boolean -- it met its own resting order and stops there (stp = cancel_newest)
);

-- What a plan does to the taker's account in the market.
create type bj.take_account as (
  new_position numeric, -- in the outcome traded
  required numeric,     -- the collateral its shorts need afterwards
  delta numeric,        -- how much collateral moves (positive: locked)
  cash numeric,         -- the balance afterwards
  pool numeric          -- the market maker's pool afterwards
);

reset role;
