-- Bots: a trader's strategy in BetJeeScript (docs/bots.md), run as an account of its own that
-- is labelled a bot and owned by its creator; the markets each watches, with the version it saw
-- last; and every run, with what it saw and did.
-- depends: 0009_order_written_once

set role betjee_owner;

-- (a bot has an owner, a person none: bj.create_bot writes both; no CHECK on users, whose rules
-- live in one place, its trigger)
alter table bj.users add column is_bot boolean not null default false,
  add column owner_id bigint references bj.users (id);

create table bj.bots (
  id bigint generated always as identity primary key,
  user_id bigint not null unique references bj.users (id),   -- the bot's own account
  owner_id bigint not null references bj.users (id),
  program_id bigint,                                          -- its program now (bj.bot_programs)
  status text not null default 'active' check (status in ('active', 'paused', 'deleted')),
  cooldown_ms int not null default 0 check (cooldown_ms >= 0),
  last_run_at timestamptz,
  runs bigint not null default 0,
  created_at timestamptz not null default clock_timestamp(),
  updated_at timestamptz not null default clock_timestamp()
);
create index bots_owner on bj.bots (owner_id, id);
-- the runner's order: the bot that waited longest first
create index bots_waiting on bj.bots (last_run_at nulls first, id) where status = 'active';

-- Every program a bot has had: the source and its audited tree (a run names the one it ran).
create table bj.bot_programs (
  id bigint generated always as identity primary key,
  bot_id bigint not null references bj.bots (id),
  source text not null check (octet_length(source) <= 8192),
  tree jsonb not null,
  created_at timestamptz not null default clock_timestamp()
);
alter table bj.bots add constraint bots_program_fk foreign key (program_id) references bj.bot_programs (id);

-- The markets a bot watches, and the version of each it last ran against: a bot is due when a
-- market it watches has a later version.
create table bj.bot_markets (
  bot_id bigint not null references bj.bots (id),
  market_id bigint not null references bj.markets (id),
  seen_version bigint not null default 0,
  primary key (bot_id, market_id)
);
create index bot_markets_market on bj.bot_markets (market_id);

create table bj.bot_runs (
  id bigint generated always as identity primary key,
  bot_id bigint not null references bj.bots (id),
  program_id bigint not null references bj.bot_programs (id),
  at timestamptz not null default clock_timestamp(),
  market_id bigint references bj.markets (id),              -- the change it ran for
  market_version bigint,
  inputs jsonb not null,                                     -- what its built-ins read
  actions jsonb not null,                                    -- each with its result or error
  logs jsonb not null,
  error text,                                                -- the evaluation's, if it failed
  took_us int not null
);
create index bot_runs_bot on bj.bot_runs (bot_id, id);

alter table bj.bots enable row level security;
alter table bj.bots force row level security;
alter table bj.bot_markets enable row level security;
alter table bj.bot_markets force row level security;
alter table bj.bot_programs enable row level security;
alter table bj.bot_programs force row level security;
alter table bj.bot_runs enable row level security;
alter table bj.bot_runs force row level security;

reset role;
