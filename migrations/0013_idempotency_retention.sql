-- Trades' idempotency keys are kept for a window (setting idempotency_keep_h) and then forgotten
-- by admin.prune_idempotency, oldest first: the index it reads them by.
-- depends: 0012_statement_statistics

set role betjee_owner;

create index idempotency_expiring on bj.idempotency (created_at) where key not like 'order:%';

reset role;
