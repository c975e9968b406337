set role betjee_owner;

drop trigger if exists _100_definition_is_valid on bj.markets;
drop trigger if exists _100_username_is_valid on bj.users;
drop function if exists bj.market_definition_is_valid();
drop function if exists bj.username_is_valid();
alter table bj.markets
  add constraint markets_code_check check (code ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
  add constraint markets_title_check check (length(title) between 1 and 300),
  add constraint markets_status_check check (status in ('open', 'closed', 'resolved', 'voided')),
  add constraint markets_pricing_check check (pricing in ('lmsr', 'sigmoid')),
  add constraint markets_liquidity_check check (liquidity > 0),
  add constraint markets_fee_rate_check check (fee_rate >= 0 and fee_rate < 0.5),
  add constraint markets_outcomes_check check (cardinality(outcomes) between 2 and 64),
  add constraint markets_check check (cardinality(q) = cardinality(outcomes));
alter table bj.users add constraint users_username_check check (username ~ '^[a-z0-9_]{3,32}$');
