-- An order's row is written once, when its fate is known (bj.submit_order): its trades, written
-- first, name it before it exists within the transaction, so no foreign key checks the name;
-- admin.check_invariants does ('trade names its order'), as it does a trade's market and trader.
-- depends: 0008_order_book

set role betjee_owner;

alter table bj.trades drop constraint trades_order_fk;
-- (and no order is ever seen being placed: the status it had for that goes)
alter table bj.orders drop constraint orders_status_check,
  add constraint orders_status_check check (status in ('open', 'filled', 'cancelled'));

reset role;
