set role betjee_owner;

-- what sql/ built on the new columns goes (a migrate re-creates it)
drop function if exists bj.market_prices(bj.markets) cascade;
drop function if exists admin.check_invariants() cascade;
drop function if exists bj.account_json(bigint) cascade;
drop function if exists bj.market_status_at(bj.markets, timestamptz) cascade;
drop function if exists bj.market_json_at(bj.markets, timestamptz) cascade;
drop function if exists bj.order_json(bj.orders) cascade;
drop function if exists bj.trade_json(bj.trades) cascade;
drop view if exists analytics.fills, analytics.orders, analytics.trades cascade;

drop table if exists bj.book_changes;
drop table if exists bj.book_levels;
drop type if exists bj.take_account cascade;
drop type if exists bj.take_plan cascade;
drop type if exists bj.fill cascade;
alter table bj.trades drop column if exists how, drop column if exists role,
  drop column if exists other_trade_id, drop column if exists price,
  add constraint trades_market_id_fkey foreign key (market_id) references bj.markets (id),
  add constraint trades_user_id_fkey foreign key (user_id) references bj.users (id);

update bj.trades set order_id = null where order_id in (select id from bj.orders where kind in ('limit', 'market'));
delete from bj.orders where kind in ('limit', 'market');
drop index if exists bj.orders_triggers;
create index orders_open on bj.orders (market_id, outcome, falls, trigger_price) where status = 'open';
drop index if exists bj.orders_expiring;
drop index if exists bj.orders_user_open;
drop index if exists bj.trades_order;
drop index if exists bj.orders_asks;
drop index if exists bj.orders_bids;
drop index if exists bj.orders_client_order_id;
alter table bj.orders
  drop constraint orders_remaining_check,
  drop column remaining, drop column side, drop column price, drop column filled,
  drop column cancelled, drop column time_in_force, drop column expires_at, drop column post_only,
  drop column persistence, drop column client_order_id, drop column stp, drop column request,
  drop column locked_cash, drop column locked_shares,
  alter column direction set not null,
  alter column trigger_price set not null,
  drop constraint orders_kind_check,
  add constraint orders_kind_check check (kind in ('stop_loss', 'take_profit')),
  drop constraint orders_status_check,
  add constraint orders_status_check check (status in ('open', 'filled', 'cancelled'));

drop trigger _100_definition_is_valid on bj.markets;
create trigger _100_definition_is_valid
  before insert or update of code, title, status, pricing, liquidity, fee_rate, outcomes
  on bj.markets for each row execute function bj.market_definition_is_valid();
alter table bj.markets
  drop constraint markets_pricing_fkey,
  drop column tick, drop column maker_fee_rate, drop column phase, drop column pairs,
  drop column book_seq, drop column resting, drop column last_prices;
drop table bj.pricing_models;

reset role;
