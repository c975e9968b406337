-- admin.check_invariants(): one row per violated invariant; no rows means all hold.
-- It replays the whole ledger and compares it with every cached balance. Each invariant is
-- broken on purpose, alone, in pgtap/95_invariants.sql, to show that this names it.

create or replace function admin.check_invariants()
returns table (invariant text, subject text, expected numeric, actual numeric)
language sql stable security definer set search_path = ''
begin atomic
  with bal as (select * from bj.ledger_balances),
  checks as (
    -- (the ledger balances by construction: each row moves one positive amount from one account
    -- to another, so every asset sums to zero over all accounts; there is nothing to replay)
    -- no balance below zero, and each equals the replay of its cash account
    select 'balance is not negative' as invariant, u.username as subject, 0::numeric as expected,
           u.balance::numeric as actual
      from bj.users u where u.balance < 0
    union all
    select 'balance equals ledger', u.username, coalesce(b.balance, 0), u.balance
      from bj.users u left join bal b on b.asset = 'coin' and b.account = bj.cash_account(u.id)
     where u.balance <> coalesce(b.balance, 0)
    union all
    -- positions equal the replay of the position accounts
    select 'position equals ledger', bj.position_account(p.user_id, p.market_id, p.outcome),
           coalesce(b.balance, 0), p.shares
      from bj.positions p
      left join bal b on b.account = bj.position_account(p.user_id, p.market_id, p.outcome)
     where p.shares <> coalesce(b.balance, 0)
    union all
    select 'ledger position has a row', b.account, b.balance, 0
      from bal b where b.account like 'pos:%' and b.balance <> 0
       and not exists (select 1 from bj.positions p
                        where b.account = bj.position_account(p.user_id, p.market_id, p.outcome))
    union all
    -- collateral equals its replay and covers every short: max(0, −min_i pos_i)
    select 'collateral equals ledger', bj.collateral_account(c.user_id, c.market_id),
           coalesce(b.balance, 0), c.amount
      from bj.collateral c
      left join bal b on b.asset = 'coin' and b.account = bj.collateral_account(c.user_id, c.market_id)
     where c.amount <> coalesce(b.balance, 0)
    union all
    select 'collateral covers shorts', bj.collateral_account(p.user_id, p.market_id),
           greatest(0, -min(p.shares)), coalesce(max(c.amount), 0)
      from bj.positions p
      left join bj.collateral c on c.user_id = p.user_id and c.market_id = p.market_id
     group by p.user_id, p.market_id
    having coalesce(max(c.amount), 0) < greatest(0, -min(p.shares))
    union all
    -- each market's pool equals its replay, its quantities equal the shares the maker issued
    -- (all retired once settled), and an unsettled pool covers whichever outcome wins
    select 'pool equals ledger', m.code, coalesce(b.balance, 0), m.pool
      from bj.markets m left join bal b on b.asset = 'coin' and b.account = bj.pool_account(m.id)
     where m.pool <> coalesce(b.balance, 0)
    union all
    select 'market quantity equals ledger', format('%s/%s', m.code, m.outcomes[o.i]),
           case when m.status in ('resolved', 'voided') then 0 else o.q end,
           -coalesce(b.balance, 0)
      from bj.markets m
      cross join lateral unnest(m.q) with ordinality o(q, i)
      left join bal b on b.account = bj.maker_account(m.id, o.i::int)
     where -coalesce(b.balance, 0) <> case when m.status in ('resolved', 'voided') then 0 else o.q end
    union all
    select 'market is solvent', m.code, (select max(x) from unnest(m.q) x), m.pool
      from bj.markets m
     where m.status in ('open', 'closed') and m.pool < (select max(x) from unnest(m.q) x)
    union all
    -- every trade names a market and a trader that exist (no foreign key checks it on the hot path)
    select 'trade names its market and trader', 'trade ' || t.id, 1, 0
      from bj.trades t
     where not exists (select 1 from bj.markets m where m.id = t.market_id)
        or not exists (select 1 from bj.users u where u.id = t.user_id)
    union all
    -- one quantity per outcome (trades write q without the definition trigger seeing it)
    select 'market has a quantity per outcome', m.code, cardinality(m.outcomes), cardinality(m.q)
      from bj.markets m where cardinality(m.q) <> cardinality(m.outcomes)
    union all
    -- the ledger's guards are in place
    select 'ledger is guarded', t.name, 1, count(g.tgname)
      from (values ('_100_append_only'), ('_100_no_truncate')) t(name)
      left join pg_trigger g on g.tgrelid = 'bj.ledger'::regclass and g.tgname = t.name and g.tgenabled <> 'D'
     group by t.name having count(g.tgname) <> 1
  )
  select * from checks order by 1, 2;
end;
grant execute on function admin.check_invariants() to service_role;
