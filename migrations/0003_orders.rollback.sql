alter table bj.trades drop constraint if exists trades_order_fk;
drop table if exists bj.orders cascade;
