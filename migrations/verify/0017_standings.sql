select user_id, rank, balance, locked, positions_value, net_worth, profit from bj.standings where false;
select one, at from bj.standings_refreshed where false;
