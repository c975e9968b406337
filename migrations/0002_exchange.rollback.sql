-- Repeatable code in sql/ that depends on these tables goes with them (CASCADE); the next
-- migrate re-creates it.
drop table if exists bj.market_events, bj.idempotency, bj.ledger, bj.trades, bj.collateral,
  bj.positions, bj.markets, bj.secrets, bj.credentials, bj.users, bj.settings cascade;
drop function if exists bj.ledger_is_append_only() cascade;
drop sequence if exists bj.journal_seq;
drop domain if exists bj.shares6 cascade;
drop domain if exists bj.money6 cascade;
