set role betjee_owner;

-- (the functions of sql/95_invariants.sql that read the checkpoint go with it)
drop procedure if exists admin.checkpoint_invariants();
drop function if exists admin.invariants_checkpoint();
drop function if exists admin.check_invariants_full();
drop function if exists admin.check_invariants();
drop function if exists bj.invariants_since(bj.checkpoint);
drop function if exists bj.invariant_violations(bj.users[], bj.positions[], bj.collateral[], bj.markets[], bj.orders[], bj.trades[], bj.ledger_balances[]);
drop function if exists bj.invariant_scope(bigint, bigint, bigint);
drop function if exists bj.account_keys(text);
drop table if exists bj.checkpoint_balances cascade;
drop table if exists bj.checkpoint cascade;

reset role;
