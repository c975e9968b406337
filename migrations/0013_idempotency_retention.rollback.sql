set role betjee_owner;

drop index bj.idempotency_expiring;

reset role;
