-- both definition checks fire AFTER the row is written (tgtype bit 1: BEFORE)
select 1 / (count(*) = 2)::int from pg_trigger
 where tgrelid in ('bj.markets'::regclass, 'bj.users'::regclass)
   and tgname in ('_100_definition_is_valid', '_100_username_is_valid') and tgtype & 2 = 0;
