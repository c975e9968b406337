-- both definition checks fire AFTER the row is written (tgtype bit 1: BEFORE)
select 1 / (count(*) = 2)::int from pg_trigger
 where tgrelid in ('bj.markets'::regclass, 'bj.users'::regclass)
   and tgname in ('_100_definition_is_valid', '_100_username_is_valid') and tgtype & 2 = 0;
-- and no foreign key from the rows a trade writes to markets or users, nor from markets
select 1 / (count(*) = 0)::int from pg_constraint
 where contype = 'f' and conrelid in ('bj.orders'::regclass, 'bj.positions'::regclass, 'bj.collateral'::regclass)
   and confrelid in ('bj.markets'::regclass, 'bj.users'::regclass)
    or contype = 'f' and conrelid = 'bj.markets'::regclass;
