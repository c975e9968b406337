-- admin.check_invariants(): one row per violated invariant; no rows means all hold.
-- It replays the whole ledger and compares it with every cached balance. Each invariant is
-- broken on purpose, alone, in pgtap/95_invariants.sql, to show that this names it.

create or replace function admin.check_invariants()
returns table (invariant text, subject text, expected numeric, actual numeric)
language sql stable security definer set search_path = '' set jit = off  -- (migration 0015)
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
    -- collateral equals its replay and what the trader's shorts need: max(0, −min_i pos_i)
    select 'collateral equals ledger', bj.collateral_account(c.user_id, c.market_id),
           coalesce(b.balance, 0), c.amount
      from bj.collateral c
      left join bal b on b.asset = 'coin' and b.account = bj.collateral_account(c.user_id, c.market_id)
     where c.amount <> coalesce(b.balance, 0)
    union all
    select 'collateral matches shorts', bj.collateral_account(k.user_id, k.market_id), k.required, k.locked
      from (select coalesce(p.user_id, c.user_id) as user_id, coalesce(p.market_id, c.market_id) as market_id,
                   greatest(0, -min(p.shares)) as required, coalesce(max(c.amount), 0) as locked
              from bj.positions p
              full join bj.collateral c on c.user_id = p.user_id and c.market_id = p.market_id
             group by 1, 2) k
     where k.required <> k.locked
    union all
    -- each market's pool equals its replay, its quantities equal the shares the maker issued
    -- (all retired once settled), and an unsettled pool covers whichever outcome wins
    select 'pool equals ledger', m.code, coalesce(b.balance, 0), m.pool
      from bj.markets m left join bal b on b.asset = 'coin' and b.account = bj.pool_account(m.id)
     where m.pool <> coalesce(b.balance, 0)
    union all
    -- (a settled market's shares all came back to the maker, the minted pairs' too)
    select 'market quantity equals ledger', format('%s/%s', m.code, m.outcomes[o.i]),
           case when m.status in ('resolved', 'voided') then -m.pairs else o.q end,
           -coalesce(b.balance, 0)
      from bj.markets m
      cross join lateral unnest(m.q) with ordinality o(q, i)
      left join bal b on b.account = bj.maker_account(m.id, o.i::int)
     where -coalesce(b.balance, 0) <> case when m.status in ('resolved', 'voided') then -m.pairs else o.q end
    union all
    -- the pairs minted (less those merged) are what the mint accounts put out, per outcome
    select 'minted pairs equal ledger', format('%s/%s', m.code, m.outcomes[o.i]), m.pairs,
           -coalesce(b.balance, 0)
      from bj.markets m
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
      from bj.orders o
      cross join lateral (values ('coin', 'coins', o.locked_cash),
                                 (bj.share_asset(o.market_id, o.outcome), 'shares', o.locked_shares)) x(asset, what, locked)
      left join bal b on b.account = bj.order_account(o.id) and b.asset = x.asset
     where coalesce(b.balance, 0) <> x.locked
        or o.status <> 'open' and x.locked <> 0
    union all
    select 'escrow equals ledger', b.account || ' ' || b.asset, 0, b.balance
      from bal b
     where b.account like 'order:%' and b.balance <> 0
       and not exists (select 1 from bj.orders o where bj.order_account(o.id) = b.account)
    union all
    -- an order's fills are its trades; a closed order has nothing left, an open one something
    select 'order fills add up', 'order ' || o.id, coalesce(t.shares, 0), o.filled
      from bj.orders o
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
      from bj.trades t
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
              from bj.positions p
            union all
            select 'collateral ' || c.user_id || ':' || c.market_id, c.market_id, c.user_id from bj.collateral c
            union all
            select 'order ' || o.id, o.market_id, o.user_id from bj.orders o) r(subject, market_id, user_id)
     where not exists (select 1 from bj.markets m where m.id = r.market_id)
        or not exists (select 1 from bj.users u where u.id = r.user_id)
    union all
    select 'market names its pricing model', m.code, 1, 0
      from bj.markets m where not exists (select 1 from bj.pricing_models p where p.name = m.pricing)
    union all
    -- every trade names a market and a trader that exist (no foreign key checks it on the hot path)
    select 'trade names its market and trader', 'trade ' || t.id, 1, 0
      from bj.trades t
     where not exists (select 1 from bj.markets m where m.id = t.market_id)
        or not exists (select 1 from bj.users u where u.id = t.user_id)
    union all
    -- every trade that names an order names one that exists (its row is written after its
    -- trades: bj.submit_order), and every fill of a resting order names it
    select 'trade names its order', 'trade ' || t.id, 1, 0
      from bj.trades t
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
grant execute on function admin.check_invariants() to service_role;
