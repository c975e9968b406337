drop table if exists bj.debts cascade;
drop table if exists bj.settlement_log cascade;
