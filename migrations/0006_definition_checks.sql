-- A market's definition and a trader's name are checked when they are written, no longer on
-- every trade. A CHECK constraint is parsed, planned and compiled again by every statement
-- that writes its table, and a trade writes the market row and the trader's row: the eight
-- checks on columns that trades never touch cost a trade about a tenth of its time. They
-- become BEFORE triggers on exactly those columns (INSERT, or UPDATE OF them), with the same
-- names and SQLSTATE (23514). The money backstops stay CHECKs: balance >= 0, and the
-- trade, ledger and collateral amounts.
-- depends: 0005_change_feed

set role betjee_owner;

alter table bj.markets
  drop constraint markets_code_check, drop constraint markets_title_check,
  drop constraint markets_status_check, drop constraint markets_pricing_check,
  drop constraint markets_liquidity_check, drop constraint markets_fee_rate_check,
  drop constraint markets_outcomes_check, drop constraint markets_check;
alter table bj.users drop constraint users_username_check;

create function bj.market_definition_is_valid() returns trigger
language plpgsql set search_path = '' as $$
declare
  v_failed text;
begin
  v_failed := case
    when not new.code ~ '^[a-z0-9][a-z0-9_-]{0,39}$' then 'markets_code_check'
    when not length(new.title) between 1 and 300 then 'markets_title_check'
    when not new.status in ('open', 'closed', 'resolved', 'voided') then 'markets_status_check'
    when not new.pricing in ('lmsr', 'sigmoid') then 'markets_pricing_check'
    when not new.liquidity > 0 then 'markets_liquidity_check'
    when not (new.fee_rate >= 0 and new.fee_rate < 0.5) then 'markets_fee_rate_check'
    when not cardinality(new.outcomes) between 2 and 64 then 'markets_outcomes_check'
    when not cardinality(new.q) = cardinality(new.outcomes) then 'markets_check'
  end;
  if v_failed is not null then
    raise exception 'new row for relation "markets" violates check constraint "%"', v_failed
      using errcode = 'check_violation', constraint = v_failed, table = 'markets', schema = 'bj';
  end if;
  return new;
end $$;
create trigger _100_definition_is_valid
  before insert or update of code, title, status, pricing, liquidity, fee_rate, outcomes
  on bj.markets for each row execute function bj.market_definition_is_valid();

create function bj.username_is_valid() returns trigger
language plpgsql set search_path = '' as $$
begin
  if not new.username ~ '^[a-z0-9_]{3,32}$' then
    raise exception 'new row for relation "users" violates check constraint "users_username_check"'
      using errcode = 'check_violation', constraint = 'users_username_check', table = 'users', schema = 'bj';
  end if;
  return new;
end $$;
create trigger _100_username_is_valid
  before insert or update of username on bj.users
  for each row execute function bj.username_is_valid();
