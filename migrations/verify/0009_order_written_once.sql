select 1 / (not exists (select 1 from pg_constraint where conname = 'trades_order_fk'))::int;
