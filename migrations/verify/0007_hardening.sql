select key, failures, window_start, blocked_until from bj.throttle where false;
select 1 / (not has_function_privilege('analyst', 'pg_catalog.pg_logical_emit_message(boolean, text, text)', 'execute'))::int;
select 1 / has_function_privilege('authenticator', 'pg_catalog.pg_logical_emit_message(boolean, text, text)', 'execute')::int;
select 1 / (not has_function_privilege('analyst', 'pg_catalog.pg_advisory_lock(bigint)', 'execute'))::int;
select 1 / has_function_privilege('betjee_owner', 'pg_catalog.pg_advisory_xact_lock(bigint)', 'execute')::int;
