-- The invariants: one row per violated invariant; no rows means all hold.
--   admin.check_invariants_full()  replays the whole ledger and compares it with every cache;
--   admin.check_invariants()       the same checks from the newest checkpoint: the checkpoint's
--                                  balances plus the postings after it, for what they touched;
--                                  the full replay when there is no checkpoint;
--   admin.checkpoint_invariants()  (a procedure) runs the full replay and, when it finds nothing,
--                                  writes the checkpoint (pg_cron calls it every hour: scripts/db.py).
-- Every check is written once, in bj.invariant_violations, over a scope: everything, or what
-- can have changed since the checkpoint. Each invariant is broken on purpose, alone, against
-- the full replay in pgtap/95_invariants.sql, and after a checkpoint in pgtap/96_checkpoint.sql.
--
-- The trade-off: the incremental check re-reads the rows that postings after the checkpoint
-- touched. A cache edited by hand without a posting (an UPDATE of a balance, a position or a
-- pool) in a row that nothing has posted to since is caught by the full replay, not by it; so
-- are an order closed since without a posting or a fill (a stop cancelled before it fired) and
-- a hand edit of a trade below the watermark. The full replay runs after every test and before
-- every checkpoint is written.

---------------------------------------------------------------------------------------------
-- The numbers in an account's name ('pos:7:3:1' → {7,3,1}, 'house' → {}): the keys of the rows
-- that cache it. The names are spelled in sql/20_ledger.sql; a caller confirms the kind by
-- spelling the name again from the keys (`account = bj.cash_account(k[1])`).
create or replace function bj.account_keys(p_account text) returns bigint[]
language sql immutable parallel safe
return (string_to_array(p_account, ':'))[2:]::bigint[];

---------------------------------------------------------------------------------------------
-- What can have changed since the checkpoint whose watermarks are given, as the rows to check
-- (read in the caller's snapshot) and the balances to check them against. The rows that cache
-- the accounts the postings after the checkpoint touched: traders' cash; every position and
-- the collateral of a (trader, market) pair whose shares or collateral moved; markets whose
-- pool or shares moved. The trades above the watermark or posted since (a trade is posted in
-- the transaction that writes it, so one that committed after the checkpoint with an id below
-- the watermark is named here), each with the trade it is paired with; the orders open, new,
-- whose escrow moved or filled by those trades. And every account of all these replayed: its
-- balance at the checkpoint plus the postings after it.
-- (One row, returned as a set: so it is inlined where it is called, planned for the watermarks.)
create or replace function bj.invariant_scope(p_ledger_id bigint, p_trade_id bigint, p_order_id bigint)
returns table (users bj.users[], positions bj.positions[], collateral bj.collateral[], markets bj.markets[],
               orders bj.orders[], trades bj.trades[], balances bj.ledger_balances[])
language sql stable
begin atomic
  with moved as (select l.asset, l.debit, l.credit, l.amount, l.trade_id from bj.ledger l where l.id > p_ledger_id),
  touched as (select a.account, bj.account_keys(a.account) as k
                from (select m.debit from moved m union select m.credit from moved m) a(account)),
  pairs as (select distinct t.k[1] as user_id, t.k[2] as market_id from touched t
             where t.account in (bj.position_account(t.k[1], t.k[2], t.k[3]::int), bj.collateral_account(t.k[1], t.k[2]))),
  positions as (select p.* from pairs k join bj.positions p on p.user_id = k.user_id and p.market_id = k.market_id),
  collateral as (select c.* from pairs k join bj.collateral c on c.user_id = k.user_id and c.market_id = k.market_id),
  markets as (select m.* from bj.markets m
               where m.id in (select t.k[1] from touched t
                               where t.account in (bj.pool_account(t.k[1]), bj.maker_account(t.k[1], t.k[2]::int),
                                                   bj.mint_account(t.k[1], t.k[2]::int)))),
  new_trades as (select t.* from bj.trades t where t.id > p_trade_id),
  late_trades as (select t.* from bj.trades t
                   where t.id in (select m.trade_id from moved m where m.trade_id <= p_trade_id)),
  trades as (select * from new_trades
             union all
             select * from late_trades
             union all
             select t.* from bj.trades t
              where t.id <= p_trade_id
                and t.id in (select x.other_trade_id from new_trades x
                             union select x.other_trade_id from late_trades x)
                and t.id not in (select x.id from late_trades x)),
  orders as (select o.* from bj.orders o
              where o.id in (select o.id from bj.orders o where o.status = 'open'
                             union select o.id from bj.orders o where o.id > p_order_id
                             union select t.k[1] from touched t where t.account = bj.order_account(t.k[1])
                             union select t.order_id from trades t where t.order_id is not null)),
  replayed as (select t.account from touched t
               union select bj.position_account(p.user_id, p.market_id, p.outcome) from positions p
               union select bj.collateral_account(k.user_id, k.market_id) from pairs k
               union select bj.pool_account(m.id) from markets m
               union select a.account from markets m
                            cross join unnest(m.outcomes) with ordinality o(name, i)
                            cross join lateral (values (bj.maker_account(m.id, o.i::int)),
                                                       (bj.mint_account(m.id, o.i::int))) a(account)
               union select bj.order_account(o.id) from orders o),
  balances as (select x.asset, x.account, sum(x.amount) as balance
                 from (select c.asset, c.account, c.balance as amount from bj.checkpoint_balances c
                        where c.account in (select r.account from replayed r)
                       union all
                       select m.asset, m.debit, m.amount from moved m
                       union all
                       select m.asset, m.credit, -m.amount from moved m) x
                group by x.asset, x.account)
  select array(select u from bj.users u
                where u.id in (select t.k[1] from touched t where t.account = bj.cash_account(t.k[1]))),
         array(select p::bj.positions from positions p),
         array(select c::bj.collateral from collateral c),
         array(select m::bj.markets from markets m),
         array(select o::bj.orders from orders o),
         array(select t::bj.trades from trades t),
         array(select b::bj.ledger_balances from balances b);
end;

---------------------------------------------------------------------------------------------
-- Every check, over a scope: without one (no arguments), everything, each cache against the
-- whole ledger replayed; with one (bj.invariant_scope's row), its rows against its balances,
-- and the checks that read no ledger on whatever they need (every market, every open order).
-- Inlined into its callers (SQL, stable, no SET clause), so a scope given as constants leaves
-- the other branch out of the plan, and the planner knows how many rows each part of it holds.
create or replace function bj.invariant_violations(
  p_users bj.users[] default null, p_positions bj.positions[] default null,
  p_collateral bj.collateral[] default null, p_markets bj.markets[] default null,
  p_orders bj.orders[] default null, p_trades bj.trades[] default null,
  p_balances bj.ledger_balances[] default null)
returns table (invariant text, subject text, expected numeric, actual numeric)
language sql stable
begin atomic
  with
  ---- the rows checked, and the balance of every account replayed: all of them, or the scope's
  users_checked as not materialized (
    select u.* from bj.users u where p_balances is null
    union all
    select u.* from unnest(p_users) u where p_balances is not null),
  positions_checked as not materialized (
    select p.* from bj.positions p where p_balances is null
    union all
    select p.* from unnest(p_positions) p where p_balances is not null),
  collateral_checked as not materialized (
    select c.* from bj.collateral c where p_balances is null
    union all
    select c.* from unnest(p_collateral) c where p_balances is not null),
  -- (the markets compared with the ledger; the checks that read no ledger read every market)
  markets_checked as not materialized (
    select m.* from bj.markets m where p_balances is null
    union all
    select m.* from unnest(p_markets) m where p_balances is not null),
  trades_checked as not materialized (
    select t.* from bj.trades t where p_balances is null
    union all
    select t.* from unnest(p_trades) t where p_balances is not null),
  orders_checked as not materialized (
    select o.* from bj.orders o where p_balances is null
    union all
    select o.* from unnest(p_orders) o where p_balances is not null),
  bal as (
    select * from bj.ledger_balances where p_balances is null
    union all
    select b.* from unnest(p_balances) b where p_balances is not null),
  ---- the checks
  checks as (
    -- (the ledger balances by construction: each row moves one positive amount from one account
    -- to another, so every asset sums to zero over all accounts; there is nothing to replay)
    -- no balance below zero, and each equals the replay of its cash account
    select 'balance is not negative' as invariant, u.username as subject, 0::numeric as expected,
           u.balance::numeric as actual
      from users_checked u where u.balance < 0
    union all
    select 'balance equals ledger', u.username, coalesce(b.balance, 0), u.balance
      from users_checked u left join bal b on b.asset = 'coin' and b.account = bj.cash_account(u.id)
     where u.balance <> coalesce(b.balance, 0)
    union all
    -- positions equal the replay of the position accounts
    select 'position equals ledger', bj.position_account(p.user_id, p.market_id, p.outcome),
           coalesce(b.balance, 0), p.shares
      from positions_checked p
      left join bal b on b.account = bj.position_account(p.user_id, p.market_id, p.outcome)
     where p.shares <> coalesce(b.balance, 0)
    union all
    select 'ledger position has a row', b.account, b.balance, 0
      from bal b where b.account like 'pos:%' and b.balance <> 0
       and not exists (select 1 from positions_checked p
                        where b.account = bj.position_account(p.user_id, p.market_id, p.outcome))
    union all
    -- collateral equals its replay and what the trader's shorts need: max(0, −min_i pos_i)
    select 'collateral equals ledger', bj.collateral_account(c.user_id, c.market_id),
           coalesce(b.balance, 0), c.amount
      from collateral_checked c
      left join bal b on b.asset = 'coin' and b.account = bj.collateral_account(c.user_id, c.market_id)
     where c.amount <> coalesce(b.balance, 0)
    union all
    select 'collateral matches shorts', bj.collateral_account(k.user_id, k.market_id), k.required, k.locked
      from (select coalesce(p.user_id, c.user_id) as user_id, coalesce(p.market_id, c.market_id) as market_id,
                   greatest(0, -min(p.shares)) as required, coalesce(max(c.amount), 0) as locked
              from positions_checked p
              full join collateral_checked c on c.user_id = p.user_id and c.market_id = p.market_id
             group by 1, 2) k
     where k.required <> k.locked
    union all
    -- each market's pool equals its replay, its quantities equal the shares the maker issued
    -- (all retired once settled), and an unsettled pool covers whichever outcome wins
    select 'pool equals ledger', m.code, coalesce(b.balance, 0), m.pool
      from markets_checked m left join bal b on b.asset = 'coin' and b.account = bj.pool_account(m.id)
     where m.pool <> coalesce(b.balance, 0)
    union all
    -- (a settled market's shares all came back to the maker, the minted pairs' too)
    select 'market quantity equals ledger', format('%s/%s', m.code, m.outcomes[o.i]),
           case when m.status in ('resolved', 'voided') then -m.pairs else o.q end,
           -coalesce(b.balance, 0)
      from markets_checked m
      cross join lateral unnest(m.q) with ordinality o(q, i)
      left join bal b on b.account = bj.maker_account(m.id, o.i::int)
     where -coalesce(b.balance, 0) <> case when m.status in ('resolved', 'voided') then -m.pairs else o.q end
    union all
    -- the pairs minted (less those merged) are what the mint accounts put out, per outcome
    select 'minted pairs equal ledger', format('%s/%s', m.code, m.outcomes[o.i]), m.pairs,
           -coalesce(b.balance, 0)
      from markets_checked m
      cross join generate_series(1, cardinality(m.outcomes)) o(i)
      left join bal b on b.account = bj.mint_account(m.id, o.i)
     where -coalesce(b.balance, 0) <> m.pairs
    union all
    -- the pool pays whichever outcome wins: the market maker's shares and every minted pair
    select 'market is solvent', m.code, (select max(x) from unnest(m.q) x) + m.pairs, m.pool
      from bj.markets m
     where m.status in ('open', 'closed') and m.pool < (select max(x) from unnest(m.q) x) + m.pairs
    union all
    -- every order's escrow is what it says it locks (nothing, once it is closed)
    select 'escrow equals ledger', format('order %s %s', o.id, x.what), x.locked, coalesce(b.balance, 0)
      from orders_checked o
      cross join lateral (values ('coin', 'coins', o.locked_cash),
                                 (bj.share_asset(o.market_id, o.outcome), 'shares', o.locked_shares)) x(asset, what, locked)
      left join bal b on b.account = bj.order_account(o.id) and b.asset = x.asset
     where coalesce(b.balance, 0) <> x.locked
        or o.status <> 'open' and x.locked <> 0
    union all
    select 'escrow equals ledger', b.account || ' ' || b.asset, 0, b.balance
      from bal b
     where b.account like 'order:%' and b.balance <> 0
       and not exists (select 1 from orders_checked o where bj.order_account(o.id) = b.account)
    union all
    -- an order's fills are its trades; a closed order has nothing left, an open one something
    select 'order fills add up', 'order ' || o.id, coalesce(t.shares, 0), o.filled
      from orders_checked o
      left join lateral (select sum(t.shares) as shares from bj.trades t
                          where t.order_id = o.id and t.user_id = o.user_id) t on true
     where o.filled <> coalesce(t.shares, 0)
        or o.status in ('filled', 'cancelled') and o.remaining <> 0
        or o.status = 'filled' and o.filled = 0
        or o.status = 'open' and o.remaining <= 0
    union all
    -- the book's levels are its resting orders, summed by price
    select 'book levels add up', format('%s/%s %s %s', m.code, m.outcomes[x.outcome], x.side, x.price),
           coalesce(x.want_shares, 0), coalesce(x.have_shares, 0)
      from (select coalesce(o.market_id, l.market_id) as market_id, coalesce(o.outcome, l.outcome) as outcome,
                   coalesce(o.side, l.side) as side, coalesce(o.price, l.price) as price,
                   o.shares as want_shares, o.orders as want_orders, l.shares as have_shares, l.orders as have_orders
              from (select o.market_id, o.outcome, o.side, o.price, sum(o.remaining) as shares, count(*) as orders
                      from bj.orders o where o.status = 'open' and o.kind = 'limit'
                     group by 1, 2, 3, 4) o
              full join (select * from bj.book_levels l where l.orders <> 0 or l.shares <> 0) l
                on (l.market_id, l.outcome, l.side, l.price) = (o.market_id, o.outcome, o.side, o.price)) x
      join bj.markets m on m.id = x.market_id
     where x.want_shares is distinct from x.have_shares or x.want_orders is distinct from x.have_orders
    union all
    -- every fill against a resting order executed at that order's price (or its complement)
    select 'fill at the resting price', 'trade ' || t.id, o.price,
           case t.how when 'direct' then mt.price else 1 - mt.price end
      from trades_checked t
      join bj.trades mt on mt.id = t.other_trade_id and mt.role = 'maker'
      join bj.orders o on o.id = mt.order_id
     where t.role = 'taker' and (mt.price <> o.price
            or t.price <> case t.how when 'direct' then o.price else 1 - o.price end)
    union all
    -- the book is never crossed: per outcome, the best bid below the best ask, and in a binary
    -- market the two outcomes' best bids below 1 and best asks above it together
    select 'book is not crossed', format('%s/%s', m.code, m.outcomes[b.outcome]), b.ask, b.bid
      from bj.markets m
      join lateral (select o.outcome, max(o.price) filter (where o.side = 'buy') as bid,
                           min(o.price) filter (where o.side = 'sell') as ask
                      from bj.orders o
                     where o.market_id = m.id and o.status = 'open' and o.kind = 'limit'
                     group by o.outcome) b on true
     where b.bid >= b.ask
    union all
    select 'book is not crossed', m.code || ' (the two outcomes together)', 1, x.total
      from bj.markets m
      join lateral (select side, sum(best) as total, count(*) as n
                      from (select o.side, o.outcome,
                                   case o.side when 'buy' then max(o.price) else min(o.price) end as best
                              from bj.orders o
                             where o.market_id = m.id and o.status = 'open' and o.kind = 'limit'
                             group by o.side, o.outcome) s
                     group by side) x on true
     where cardinality(m.outcomes) = 2 and x.n = 2
       and (x.side = 'buy' and x.total >= 1 or x.side = 'sell' and x.total <= 1)
    union all
    -- and no resting order is marketable against the market maker: a millionth of a share more
    -- from it would cost more than a bid pays (or bring less than an ask asks)
    select 'no resting order is marketable against the market maker', 'order ' || o.id, o.price,
           (bj.curve_prices(m.pricing, x.q, m.liquidity))[o.outcome]
      from bj.orders o
      join bj.markets m on m.id = o.market_id
      join bj.pricing_models pm on pm.name = m.pricing and pm.market_maker
      cross join lateral (select array_agg(case when i = o.outcome
                                                then q + case o.side when 'buy' then 0.000001 else -0.000001 end
                                                else q end order by i) as q
                            from unnest(m.q) with ordinality u(q, i)) x
     where o.status = 'open' and o.kind = 'limit' and m.status = 'open'
       -- (the case keeps the curve from being asked of a market without one, in any plan)
       and case when not pm.market_maker then false
                when o.side = 'buy' then (bj.curve_prices(m.pricing, x.q, m.liquidity))[o.outcome] <= o.price
                else (bj.curve_prices(m.pricing, x.q, m.liquidity))[o.outcome] >= o.price end
    union all
    -- every position, collateral row and order names a market and a trader that exist, and every
    -- market a pricing model (no foreign key checks them on the hot path: architecture.md §16)
    select 'row names its market and trader', r.subject, 1, 0
      from (select 'position ' || p.user_id || ':' || p.market_id || ':' || p.outcome, p.market_id, p.user_id
              from positions_checked p
            union all
            select 'collateral ' || c.user_id || ':' || c.market_id, c.market_id, c.user_id from collateral_checked c
            union all
            select 'order ' || o.id, o.market_id, o.user_id from orders_checked o) r(subject, market_id, user_id)
      left join bj.markets m on m.id = r.market_id
      left join bj.users u on u.id = r.user_id
     where m.id is null or u.id is null
    union all
    select 'market names its pricing model', m.code, 1, 0
      from bj.markets m where not exists (select 1 from bj.pricing_models p where p.name = m.pricing)
    union all
    -- every trade names a market and a trader that exist (no foreign key checks it on the hot path)
    select 'trade names its market and trader', 'trade ' || t.id, 1, 0
      from trades_checked t
      left join bj.markets m on m.id = t.market_id
      left join bj.users u on u.id = t.user_id
     where m.id is null or u.id is null
    union all
    -- every trade that names an order names one that exists (its row is written after its
    -- trades: bj.submit_order), and every fill of a resting order names it
    select 'trade names its order', 'trade ' || t.id, 1, 0
      from trades_checked t
     where t.order_id is not null and not exists (select 1 from bj.orders o where o.id = t.order_id)
        or t.role = 'maker' and t.order_id is null
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

---------------------------------------------------------------------------------------------
-- The full replay: every cache against the whole ledger. (JIT off: migration 0015.)
create or replace function admin.check_invariants_full()
returns table (invariant text, subject text, expected numeric, actual numeric)
language sql stable security definer set search_path = '' set jit = off
begin atomic
  select * from bj.invariant_violations();
end;
grant execute on function admin.check_invariants_full() to service_role;

-- From the newest checkpoint, what can have changed since (the full replay without one).
-- Stable: its statements (and bj.invariants_since's) read one snapshot, so the scope is read
-- with the checkpoint it starts from, whenever a new one commits.
create or replace function admin.check_invariants()
returns table (invariant text, subject text, expected numeric, actual numeric)
language plpgsql stable security definer set search_path = '' set jit = off as $$
declare
  v_checkpoint bj.checkpoint;
begin
  select * into v_checkpoint from bj.checkpoint c;
  if not found then
    return query select * from bj.invariant_violations();
  else
    return query select * from bj.invariants_since(v_checkpoint);
  end if;
end $$;
grant execute on function admin.check_invariants() to service_role;

-- The incremental check: the scope since the checkpoint, then the checks over it, each by
-- EXECUTE, so that it is planned with the watermarks and the scope as constants, and every
-- table read by key: the scope is thousands of rows of tables of millions, which the planner,
-- costing each page read by key as a disk seek, would otherwise rather read whole (its cost
-- then grows with the tables, not with what was posted since the checkpoint).
create or replace function bj.invariants_since(p_checkpoint bj.checkpoint)
returns table (invariant text, subject text, expected numeric, actual numeric)
language plpgsql stable set enable_seqscan = off set random_page_cost = 1.1 as $$
declare
  v_scope record;
begin
  execute 'select * from bj.invariant_scope($1, $2, $3)' into v_scope
    using p_checkpoint.ledger_id, p_checkpoint.trade_id, p_checkpoint.order_id;
  return query execute 'select * from bj.invariant_violations($1, $2, $3, $4, $5, $6, $7)'
    using v_scope.users, v_scope.positions, v_scope.collateral, v_scope.markets, v_scope.orders,
          v_scope.trades, v_scope.balances;
end $$;

-- The checkpoint the incremental check starts from, and how many postings came after it.
create or replace function admin.invariants_checkpoint()
returns table (ledger_id bigint, trade_id bigint, order_id bigint, taken_at timestamptz,
               verified_at timestamptz, postings_since bigint)
language sql stable security definer set search_path = '' set jit = off
begin atomic
  select c.ledger_id, c.trade_id, c.order_id, c.taken_at, c.verified_at,
         (select count(*) from bj.ledger l where l.id > c.ledger_id)
    from bj.checkpoint c;
end;
grant execute on function admin.invariants_checkpoint() to service_role;

---------------------------------------------------------------------------------------------
-- Write a new checkpoint, in one transaction:
-- 1. The watermarks. Ledger ids come from a sequence, so a transaction still running can hold
--    ids below the highest one committed: "every posting up to N" is only final once no
--    transaction that posted can still commit. LOCK TABLE … IN SHARE MODE waits for every
--    transaction that has inserted into the ledger (each holds ROW EXCLUSIVE on it from the
--    start of its INSERT, before it draws an id) and lets no new one start; N = max(id) read
--    under it is final. The lock is taken in a subtransaction that is then rolled back, which
--    releases it at once (trades wait for it only that long: no COMMIT, so this runs as one
--    SECURITY DEFINER procedure), and the next statements, each with a new snapshot (READ
--    COMMITTED), see every posting up to N.
--    Hence READ COMMITTED only: a REPEATABLE READ snapshot taken before the lock would miss
--    postings the lock waited for. The lock is tried for 100 ms at a time, so that a long
--    transaction on the ledger never holds trades up behind it for longer.
--    A transaction that wrote a trade or an order, but not yet its postings, can still commit
--    below the trade or order watermark; its postings come after N and name it (the
--    incremental check reads the trades and orders they name).
-- 2. The full replay; any violation refuses the checkpoint (BJ060) and nothing is written.
-- 3. The balances of the postings up to N, computed whole; only the rows that changed are
--    written. The previous checkpoint is replaced.
-- Checkpoints are made one at a time (a second waits for the first). A procedure (`call
-- admin.checkpoint_invariants()`) that commits nothing itself: it writes in its caller's
-- transaction; admin.invariants_checkpoint() shows what it wrote.
create or replace procedure admin.checkpoint_invariants()
language plpgsql security definer set search_path = '' set jit = off as $$
declare
  v_ledger_id bigint;
  v_trade_id bigint;
  v_order_id bigint;
  v_taken_at timestamptz;
  v_found text;
begin
  if current_setting('transaction_isolation') <> 'read committed' then
    perform bj.raise('BJ060', 'a checkpoint is made in a READ COMMITTED transaction, not '
                              || current_setting('transaction_isolation'));
  end if;
  lock table bj.checkpoint in exclusive mode;

  for v_try in 1 .. 20 loop
    begin
      perform set_config('lock_timeout', '100ms', true);
      lock table bj.ledger in share mode;
      select coalesce(max(l.id), 0) into v_ledger_id from bj.ledger l;
      select coalesce(max(t.id), 0) into v_trade_id from bj.trades t;
      select coalesce(max(o.id), 0) into v_order_id from bj.orders o;
      v_taken_at := clock_timestamp();
      -- (rolls the block back: the lock, and the lock_timeout, go with it)
      raise exception using errcode = 'P0001', message = 'watermarks read';
    exception
      when raise_exception then
        exit;
      when lock_not_available then
        perform pg_sleep(0.1 * v_try);
    end;
  end loop;
  if v_taken_at is null then
    perform bj.raise('BJ060', 'the ledger stayed busy (20 tries): try again');
  end if;

  select string_agg(format('%s: %s (%s, not %s)', v.invariant, v.subject, v.actual, v.expected), '; ')
    into v_found
    from (select * from bj.invariant_violations() limit 20) v;
  if v_found is not null then
    perform bj.raise('BJ060', 'the full replay finds ' || v_found);
  end if;

  merge into bj.checkpoint_balances c
  using (select x.asset, x.account, sum(x.amount) as balance
           from (select l.asset, l.debit as account, l.amount from bj.ledger l where l.id <= v_ledger_id
                 union all
                 select l.asset, l.credit, -l.amount from bj.ledger l where l.id <= v_ledger_id) x
          group by x.asset, x.account) s
     on c.account = s.account and c.asset = s.asset
   when matched and c.balance <> s.balance then update set balance = s.balance
   when not matched then insert (account, asset, balance) values (s.account, s.asset, s.balance);
  insert into bj.checkpoint as c (ledger_id, trade_id, order_id, taken_at, verified_at)
  values (v_ledger_id, v_trade_id, v_order_id, v_taken_at, clock_timestamp())
  on conflict (one) do update
    set ledger_id = excluded.ledger_id, trade_id = excluded.trade_id, order_id = excluded.order_id,
        taken_at = excluded.taken_at, verified_at = excluded.verified_at;

  raise notice 'checkpoint of the invariants at ledger id %, trade id %, order id %', v_ledger_id, v_trade_id, v_order_id;
end $$;
grant execute on procedure admin.checkpoint_invariants() to service_role;
