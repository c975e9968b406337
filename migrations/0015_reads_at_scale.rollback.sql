set role betjee_owner;

drop index if exists bj.ledger_paid_in;

reset role;

do $$
begin
  execute format('alter database %I reset jit', current_database());
exception when insufficient_privilege then
  null;
end $$;
