select 1 / (to_regclass('bj.ledger_paid_in') is not null)::int;
