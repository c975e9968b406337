select one, ledger_id, trade_id, order_id, taken_at, verified_at from bj.checkpoint where false;
select account, asset, balance from bj.checkpoint_balances where false;
