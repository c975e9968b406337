select 1 / count(*) from pg_trigger where tgrelid = 'bj.markets'::regclass and tgname = '_100_definition_is_valid';
select 1 / count(*) from pg_trigger where tgrelid = 'bj.users'::regclass and tgname = '_100_username_is_valid';
select 1 / (count(*) = 0)::int from pg_constraint
 where conrelid in ('bj.markets'::regclass, 'bj.users'::regclass) and contype = 'c' and conname <> 'users_balance_check';
