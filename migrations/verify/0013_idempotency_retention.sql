select 1 / (to_regclass('bj.idempotency_expiring') is not null)::int;
