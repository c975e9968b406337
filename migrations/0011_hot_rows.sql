-- Nothing the trade path writes locks a market's or a trader's row behind its back
-- (architecture.md §16). In a batch (one subtransaction per order), a lock on a row that an
-- earlier order of the batch wrote records both orders in a multixact, which every later read
-- of the row's versions resolves; two such locks were implicit:
-- 1. A BEFORE UPDATE row trigger makes PostgreSQL lock the row for the trigger, even when its
--    columns are not written. The definition checks of markets and users become AFTER triggers:
--    the same rules, in the same statement, with the same error.
-- 2. A foreign key check locks the row it finds (FOR KEY SHARE), on every insert, and on every
--    update of a row its own transaction wrote. The keys from the rows each order writes
--    (orders, positions, collateral) to markets and users, and from markets to their pricing
--    model, go; admin.check_invariants checks them ('row names its market and trader', 'market
--    names its pricing model'), as it already did a trade's. Markets and users are never
--    deleted; pricing models are data that only migrations change.
-- depends: 0010_bots

set role betjee_owner;

alter table bj.orders drop constraint orders_user_id_fkey, drop constraint orders_market_id_fkey;
alter table bj.positions drop constraint positions_user_id_fkey, drop constraint positions_market_id_fkey;
alter table bj.collateral drop constraint collateral_user_id_fkey, drop constraint collateral_market_id_fkey;
alter table bj.markets drop constraint markets_pricing_fkey;

drop trigger _100_definition_is_valid on bj.markets;
create trigger _100_definition_is_valid
  after insert or update of code, title, status, pricing, liquidity, fee_rate, outcomes, tick,
                            maker_fee_rate, phase
  on bj.markets for each row execute function bj.market_definition_is_valid();

drop trigger _100_username_is_valid on bj.users;
create trigger _100_username_is_valid
  after insert or update of username on bj.users
  for each row execute function bj.username_is_valid();

reset role;
