-- The outbox as 0002 made it, with one event per market at its current version.
set role betjee_owner;

create table bj.market_events (
  id bigint generated always as identity primary key,
  market_id bigint not null references bj.markets (id),
  version bigint not null,
  xid xid8 not null default pg_current_xact_id(),
  at timestamptz not null default clock_timestamp()
);
create index market_events_xid on bj.market_events (xid);
alter table bj.market_events enable row level security;
alter table bj.market_events force row level security;
insert into bj.market_events (market_id, version, xid)
select m.id, m.version, m.changed_xid from bj.markets m;

-- repeatable code in sql/ that reads the column or the snapshot cursor goes with it; the next
-- migrate re-creates it
drop function if exists bj.changes(pg_snapshot, pg_snapshot) cascade;
drop function if exists bj.parse_cursor(text) cascade;
drop function if exists bj.changes(text, text) cascade;
drop function if exists bj.read_cursor(text) cascade;
alter table bj.markets drop column changed_xid cascade;
