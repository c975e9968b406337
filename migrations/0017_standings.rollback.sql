drop table if exists bj.standings_refreshed cascade;
drop table if exists bj.standings cascade;
