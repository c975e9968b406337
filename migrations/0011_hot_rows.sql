-- A market's definition and a trader's name are checked after the row is written, not before
-- (architecture.md §16): a BEFORE UPDATE row trigger makes PostgreSQL lock the row again for
-- the trigger, even when its columns are not written, and in a batch (one subtransaction per
-- order) each such lock on a row an earlier order wrote records both orders in a multixact,
-- which every later read of the row's versions resolves. AFTER triggers check the same rules
-- in the same statement, with the same error.
-- depends: 0010_bots

set role betjee_owner;

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
