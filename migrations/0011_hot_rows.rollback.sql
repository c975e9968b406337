set role betjee_owner;

alter table bj.orders add constraint orders_user_id_fkey foreign key (user_id) references bj.users (id),
  add constraint orders_market_id_fkey foreign key (market_id) references bj.markets (id);
alter table bj.positions add constraint positions_user_id_fkey foreign key (user_id) references bj.users (id),
  add constraint positions_market_id_fkey foreign key (market_id) references bj.markets (id);
alter table bj.collateral add constraint collateral_user_id_fkey foreign key (user_id) references bj.users (id),
  add constraint collateral_market_id_fkey foreign key (market_id) references bj.markets (id);
alter table bj.markets add constraint markets_pricing_fkey foreign key (pricing) references bj.pricing_models (name);

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
