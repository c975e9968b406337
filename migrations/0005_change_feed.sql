-- The change feed reads the markets themselves: each market row records the transaction that
-- last changed it (set with every version bump), and a cursor is the snapshot an answer was
-- read in. The per-change outbox goes: it cost every trade a row, and a market that never
-- stopped trading could wait in it for a quiet moment that never came.
-- depends: 0004_settlement

set role betjee_owner;

-- functions whose standard-SQL bodies are bound to the markets row type would block the new
-- column: they go, with what is built on them, and sql/ re-creates it all
drop function if exists bj.market_status(bj.markets) cascade;
drop function if exists bj.market_json(bj.markets) cascade;

alter table bj.markets add column changed_xid xid8 not null default pg_current_xact_id();
drop table bj.market_events;

-- the cursor changes type (a snapshot, no longer one transaction id): the functions that read
-- it go, and sql/ re-creates them
drop function if exists bj.changes(xid8, xid8) cascade;
drop function if exists bj.parse_cursor(text) cascade;
