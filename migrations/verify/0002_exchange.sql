select id, journal, kind, asset, credit, debit, amount from bj.ledger where false;
select id, code, q, pool from bj.markets where false;
select user_id, market_id, outcome, shares from bj.positions where false;
select 1 / count(*) from pg_trigger where tgrelid = 'bj.ledger'::regclass and tgname = '_100_no_truncate';
