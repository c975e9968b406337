-- A checkpoint of the ledger, so that admin.check_invariants() replays only what was posted
-- after it (sql/95_invariants.sql): the balance of every account over the postings 1..ledger_id,
-- written by admin.checkpoint_invariants() in the transaction in which the full replay found
-- every invariant holding. One checkpoint at a time: a new one replaces the old.
-- depends: 0015_reads_at_scale

set role betjee_owner;

-- the watermarks (one row): no posting with an id up to ledger_id can still appear (they were
-- read under a lock that waited for every transaction posting to the ledger), and the trades and
-- orders above trade_id and order_id are new since
create table bj.checkpoint (
  one boolean primary key default true check (one),
  ledger_id bigint not null,
  trade_id bigint not null,
  order_id bigint not null,
  taken_at timestamptz not null,    -- when the watermarks were read
  verified_at timestamptz not null  -- when the full replay found every invariant holding
);

-- every account's balance per asset, replayed over the postings 1..ledger_id
create table bj.checkpoint_balances (
  account text not null,
  asset text not null,
  balance numeric not null,
  primary key (account, asset)
);

alter table bj.checkpoint enable row level security;
alter table bj.checkpoint force row level security;
alter table bj.checkpoint_balances enable row level security;
alter table bj.checkpoint_balances force row level security;

reset role;
