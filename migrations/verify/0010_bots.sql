select id, user_id, owner_id, program_id, status, cooldown_ms, last_run_at, runs from bj.bots where false;
select bot_id, market_id, seen_version from bj.bot_markets where false;
select id, source, tree, created_at from bj.bot_programs where false;
select id, bot_id, program_id, at, market_id, market_version, inputs, actions, logs, error, took_us from bj.bot_runs where false;
select is_bot, owner_id from bj.users where false;
