-- The leaderboard as of its last refresh (admin.refresh_leaderboard): ranking every trader by
-- net worth reads every position, too much for each page view once there are many.
-- depends: 0015_reads_at_scale

set role betjee_owner;

create table bj.standings (
  user_id bigint primary key,
  rank bigint not null,
  balance numeric not null,
  locked numeric not null,
  positions_value numeric not null,
  net_worth numeric not null,
  profit numeric not null
);
create index standings_rank on bj.standings (rank);
alter table bj.standings enable row level security;
alter table bj.standings force row level security;

-- when it was last refreshed (one row)
create table bj.standings_refreshed (
  one boolean primary key default true check (one),
  at timestamptz not null
);
alter table bj.standings_refreshed enable row level security;
alter table bj.standings_refreshed force row level security;

reset role;
