set role betjee_owner;

drop trigger _100_definition_is_valid on bj.markets;
create trigger _100_definition_is_valid
  before insert or update of code, title, status, pricing, liquidity, fee_rate, outcomes, tick,
                             maker_fee_rate, phase
  on bj.markets for each row execute function bj.market_definition_is_valid();

drop trigger _100_username_is_valid on bj.users;
create trigger _100_username_is_valid
  before insert or update of username on bj.users
  for each row execute function bj.username_is_valid();

reset role;
