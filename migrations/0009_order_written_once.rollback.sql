set role betjee_owner;

alter table bj.orders drop constraint orders_status_check,
  add constraint orders_status_check check (status in ('pending', 'open', 'filled', 'cancelled'));
alter table bj.trades add constraint trades_order_fk foreign key (order_id) references bj.orders (id);

reset role;
