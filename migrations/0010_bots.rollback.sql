set role betjee_owner;

-- what sql/ built on these tables and columns goes first (a migrate re-creates what remains)
drop view if exists analytics.leaderboard, analytics.trades cascade;
drop function if exists analytics.paid_in(bigint) cascade;
drop table bj.bot_runs cascade;
drop table bj.bot_markets cascade;
alter table bj.bots drop constraint bots_program_fk;
drop table bj.bot_programs cascade;
drop table bj.bots cascade;
alter table bj.users drop column owner_id cascade, drop column is_bot cascade;

reset role;
