select market_id, action, journal, actor, reason, detail, at from bj.settlement_log where false;
select market_id, user_id, amount, repaid, at from bj.debts where false;
