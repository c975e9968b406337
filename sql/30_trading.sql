-- Trading: markets as clients see them, and the taking path (architecture.md §6): one taking
-- order is one transaction that locks the market row first, plans its fills, locks and checks
-- the trader's account, and posts every fill to the ledger and the caches.
-- Invariants kept here: no balance below zero; every short's maximum payout locked as
-- collateral; the market's pool covers the payout of whichever outcome wins.

-- A market past its close_at reads as closed at once, with no worker needed: as of a time
-- (the change feed reads every market as of one), or now.
-- (Bodies are bound when created, so they need no search_path; without one they are inlined.)
create or replace function bj.market_status_at(p_market bj.markets, p_at timestamptz) returns text
language sql stable
return case when p_market.status = 'open' and p_market.close_at <= p_at
            then 'closed' else p_market.status end;

create or replace function bj.market_status(p_market bj.markets) returns text
language sql stable
return bj.market_status_at(p_market, clock_timestamp());

-- A market's prices at working precision: its market maker's, or, in a book market, the last
-- price each outcome traded at (1/n before any).
create or replace function bj.market_prices(p_market bj.markets) returns numeric[]
language sql stable
return case when p_market.pricing = 'book'
            then coalesce(p_market.last_prices,
                          array_fill(round(1::numeric / cardinality(p_market.outcomes), 9),
                                     array[cardinality(p_market.outcomes)]))
            else bj.curve_prices(p_market.pricing, p_market.q, p_market.liquidity) end;

-- The market as clients see it, its status as of a time.
create or replace function bj.market_json_at(p_market bj.markets, p_at timestamptz) returns jsonb
language sql stable
begin atomic
  select jsonb_build_object(
    'code', p_market.code,
    'title', p_market.title,
    'status', bj.market_status_at(p_market, p_at),
    'pricing', p_market.pricing,
    'liquidity', p_market.liquidity,
    'fee_rate', p_market.fee_rate,
    'close_at', p_market.close_at,
    'resolution', case p_market.status
      when 'resolved' then jsonb_build_object('payouts',
        (select jsonb_object_agg(o.name, o.w) from unnest(p_market.outcomes, p_market.payouts) o(name, w)),
        'settled_at', p_market.settled_at)
      when 'voided' then jsonb_build_object('void', true, 'settled_at', p_market.settled_at)
      end,
    'volume', p_market.volume,
    'version', p_market.version,
    'outcomes', (select jsonb_agg(jsonb_build_object('outcome', o.name, 'price', o.price,
                                                     'shares', o.shares) order by o.i)
                   from unnest(p_market.outcomes, bj.display_prices(bj.market_prices(p_market)),
                               p_market.q) with ordinality o(name, price, shares, i)));
end;

-- The market as clients see it now.
create or replace function bj.market_json(p_market bj.markets) returns jsonb
language sql stable
return bj.market_json_at(p_market, clock_timestamp());

-- Find a market by code, or fail with unknown_market.
create or replace function bj.find_market(p_code text) returns bj.markets
language plpgsql stable as $$
declare
  v_market bj.markets;
begin
  select * into v_market from bj.markets m where m.code = p_code;
  if not found then
    perform bj.raise('BJ010', p_code);
  end if;
  return v_market;
end $$;

-- The index of an outcome by name, or fail with unknown_outcome.
create or replace function bj.outcome_index(p_market bj.markets, p_outcome text) returns int
language plpgsql stable as $$
declare
  v_j int := array_position(p_market.outcomes, p_outcome);
begin
  if v_j is null then
    perform bj.raise('BJ011', format('%s has outcomes %s', p_market.code, array_to_string(p_market.outcomes, ', ')));
  end if;
  return v_j;
end $$;

---------------------------------------------------------------------------------------------
-- The taking path (architecture.md §6): every order that takes liquidity, a trade, a market
-- order, the marketable part of a limit order, a fired stop, goes through the same four steps.
--   plan   bj.plan_fills: pure; from the market's state (and its book), what executes where and
--          at what price: a list of fills (bj.fill);
--   check  bj.check_take: the taker's account after those fills: position, collateral, cash;
--          refuses what the account or the market maker cannot carry;
--   post   bj.post_fills: one statement that writes every fill: its trades, its double-entry
--          postings, the caches (balances, positions, the market's state);
--   answer the receipt: the terms, and the taker's own account as it is afterwards.
-- The caller holds the market's row lock from before the plan to the end of the transaction.

-- Lock a market by code, or fail with unknown_market. Markets are always locked first.
create or replace function bj.lock_market(p_code text) returns bj.markets
language plpgsql as $$
declare
  v_market bj.markets;
begin
  select * into v_market from bj.markets m where m.code = p_code for update;
  if not found then
    perform bj.raise('BJ010', p_code);
  end if;
  return v_market;
end $$;

-- Refuse unless the market is open. (market_status_at, not market_status: a STABLE SQL
-- function whose body reads clock_timestamp() is never inlined, and is planned again in every
-- transaction that calls it.)
create or replace function bj.require_open(p_market bj.markets) returns void
language plpgsql as $$
begin
  if bj.market_status_at(p_market, clock_timestamp()) <> 'open' then
    perform bj.raise('BJ002', format('%s is %s', p_market.code, bj.market_status(p_market)));
  end if;
end $$;

-- Plan a taking order on outcome j: shares (or a budget, buys only), up to a limit price
-- (null: none). Pure: reads the market's state and changes nothing. The market maker's part is
-- rounded for the taker (costs up, proceeds down), and so is each fill against a resting order;
-- the totals sum them.
create or replace function bj.plan_fills(
  p_market bj.markets, p_j int, p_side text, p_shares numeric, p_spend numeric,
  p_limit numeric default null, p_user bigint default null)
returns bj.take_plan
language plpgsql stable as $$
declare
  v_t record;
  v_plan bj.take_plan;
begin
  v_t := bj.price_trade(p_market.pricing, p_market.q, p_market.liquidity, p_market.fee_rate, p_j,
                        p_side, p_shares, p_spend);
  v_plan.amm_shares := v_t.shares;
  v_plan.amm_amount := v_t.amount;
  v_plan.amm_fee := v_t.fee;
  v_plan.shares := v_t.shares;
  v_plan.amount := v_t.amount;
  v_plan.fee := v_t.fee;
  v_plan.total := v_t.total;
  v_plan.q_after := v_t.q_after;
  v_plan.prices_after := bj.display_prices(v_t.prices_after);
  v_plan.pairs_after := p_market.pairs;
  v_plan.unfilled := 0;
  return v_plan;
end $$;

-- Lock the taker's row and judge their account after a plan: the cooldown (p_cooldown_ms,
-- null for a fired order), the slippage bounds (max_total a buy's, min_total a sale's; a bound
-- equal to the total is met), the new position in outcome j, the collateral its shorts need (the
-- worst payout: max(0, −min over outcomes of the position)) and how much that moves, the cash
-- left, the market maker's pool. Refuses a disabled account (BJ026), a trade within the
-- cooldown (BJ030), a total past its bound (BJ003), a short where the model allows none (BJ005), what the balance cannot cover
-- (BJ001), what the pool could not pay out (BJ006).
create or replace function bj.check_take(
  p_market bj.markets, p_user bigint, p_j int, p_side text, p_plan bj.take_plan,
  p_cooldown_ms numeric, p_now timestamptz, p_max_total numeric, p_min_total numeric)
returns bj.take_account
language plpgsql as $$
declare
  v_held record;
  v_account bj.take_account;
begin
  -- the trader's row, locked, with their holdings in this market
  select u.balance, u.disabled_at, u.last_trade_at, h.position, h.others,
         coalesce((select c.amount from bj.collateral c
                    where c.user_id = u.id and c.market_id = p_market.id), 0) as locked
    into v_held
    from bj.users u
    cross join lateral (
      select coalesce(max(p.shares) filter (where p.outcome = p_j), 0) as position,
             coalesce(min(p.shares) filter (where p.outcome <> p_j), 0) as others
        from bj.positions p where p.user_id = u.id and p.market_id = p_market.id) h
   where u.id = p_user
     for update of u;
  if not found or v_held.disabled_at is not null then
    perform bj.raise('BJ026');
  end if;
  if p_cooldown_ms > 0 and v_held.last_trade_at > p_now - make_interval(secs => p_cooldown_ms / 1000) then
    perform bj.raise('BJ030', format('next trade allowed after %s',
      v_held.last_trade_at + make_interval(secs => p_cooldown_ms / 1000)));
  end if;
  if p_side = 'buy' and p_plan.total > p_max_total then
    perform bj.raise('BJ003', format('total %s exceeds max_total %s', p_plan.total::numeric(24, 6), p_max_total));
  elsif p_side = 'sell' and p_plan.total < p_min_total then
    perform bj.raise('BJ003', format('total %s is below min_total %s', p_plan.total::numeric(24, 6), p_min_total));
  end if;
  v_account.new_position := v_held.position + case p_side when 'buy' then p_plan.shares else -p_plan.shares end;
  if v_account.new_position < 0 and not (select m.shorts from bj.pricing_models m where m.name = p_market.pricing) then
    perform bj.raise('BJ005', format('you hold %s shares of %s', v_held.position, p_market.outcomes[p_j]));
  end if;
  v_account.required := greatest(0, -least(v_account.new_position, v_held.others));
  v_account.delta := v_account.required - v_held.locked;
  v_account.cash := v_held.balance + case p_side when 'buy' then -p_plan.total else p_plan.total end
                    - v_account.delta;
  if v_account.cash < 0 then
    perform bj.raise('BJ001', format('needs %s, available %s',
      (case p_side when 'buy' then p_plan.total else -p_plan.total end + v_account.delta)::numeric(24, 6),
      v_held.balance));
  end if;
  v_account.pool := p_market.pool
                    + case p_side when 'buy' then p_plan.amm_amount else -p_plan.amm_amount end;
  if v_account.pool < bj.array_max(p_plan.q_after) + p_plan.pairs_after then
    perform bj.raise('BJ006', 'the market''s pool would not cover its payout');
  end if;
  return v_account;
end $$;

-- Write a checked plan: its trades, the double-entry postings of every fill, the caches
-- (balances, positions, collateral, the market's state). The market maker's part, the taker's
-- account and the market are one statement (all a trade against the market maker needs).
-- Returns the taker's first trade and, with p_probe, whether the prices after cross an open
-- conditional order (one probe of the trigger index per outcome and direction).
create or replace function bj.post_fills(
  p_journal bigint, p_market bj.markets, p_user bigint, p_j int, p_side text, p_plan bj.take_plan,
  p_account bj.take_account, p_root bigint, p_order bigint, p_now timestamptz, p_probe boolean,
  out trade_id bigint, out crossed boolean)
language plpgsql as $$
declare
  v_amm_total numeric := case p_side when 'buy' then p_plan.amm_amount + p_plan.amm_fee
                                    else p_plan.amm_amount - p_plan.amm_fee end;
begin
  with trade as (
    insert into bj.trades (market_id, user_id, outcome, side, shares, amount, fee, total,
                           prices_after, root_trade_id, order_id)
    select p_market.id, p_user, p_j, p_side, p_plan.amm_shares, p_plan.amm_amount, p_plan.amm_fee,
           v_amm_total, p_plan.prices_after, p_root, p_order
     where p_plan.amm_shares > 0
    returning id
  ), postings as (
    insert into bj.ledger (journal, kind, asset, credit, debit, amount, user_id, market_id, trade_id)
    select p_journal, l.kind, l.asset, l.credit, l.debit, l.amount, p_user, p_market.id,
           (select t.id from trade t)
      from (values
        -- from the market maker, a buy: cash pays the pool and the fee; the maker issues shares
        ('trade', 'coin', bj.cash_account(p_user), bj.pool_account(p_market.id), p_plan.amm_amount,
         p_side = 'buy'),
        ('fee', 'coin', bj.cash_account(p_user), 'fees', p_plan.amm_fee, p_side = 'buy'),
        ('trade', bj.share_asset(p_market.id, p_j), bj.maker_account(p_market.id, p_j),
                  bj.position_account(p_user, p_market.id, p_j), p_plan.amm_shares, p_side = 'buy'),
        -- a sale: the pool pays the trader and the fee; the shares return to the maker
        ('trade', 'coin', bj.pool_account(p_market.id), bj.cash_account(p_user), v_amm_total,
         p_side = 'sell'),
        ('fee', 'coin', bj.pool_account(p_market.id), 'fees', p_plan.amm_fee, p_side = 'sell'),
        ('trade', bj.share_asset(p_market.id, p_j), bj.position_account(p_user, p_market.id, p_j),
                  bj.maker_account(p_market.id, p_j), p_plan.amm_shares, p_side = 'sell'),
        -- collateral follows the worst payout of the trader's shorts
        ('collateral', 'coin', bj.cash_account(p_user), bj.collateral_account(p_user, p_market.id),
         p_account.delta, p_account.delta > 0),
        ('collateral', 'coin', bj.collateral_account(p_user, p_market.id), bj.cash_account(p_user),
         -p_account.delta, p_account.delta < 0)
      ) l(kind, asset, credit, debit, amount, applies)
     where l.applies and l.amount > 0
  ), trader as (
    update bj.users u set balance = p_account.cash,
                          last_trade_at = case when p_root is null then p_now else u.last_trade_at end
     where u.id = p_user
  ), position as (
    insert into bj.positions as p (user_id, market_id, outcome, shares, cost_basis)
    values (p_user, p_market.id, p_j, p_account.new_position,
            case p_side when 'buy' then p_plan.total else -p_plan.total end)
    on conflict (user_id, market_id, outcome) do update
       set shares = excluded.shares, cost_basis = p.cost_basis + excluded.cost_basis
  ), market as (
    update bj.markets m
       set q = p_plan.q_after, pool = p_account.pool, volume = m.volume + p_plan.amount,
           pairs = p_plan.pairs_after, version = m.version + 1, changed_xid = pg_current_xact_id()
     where m.id = p_market.id
  )
  select (select t.id from trade t),
         p_probe and exists (
           select 1 from unnest(p_plan.prices_after) with ordinality pr(price, i)
            where exists (select 1 from bj.orders o
                           where o.market_id = p_market.id and o.outcome = pr.i and o.status = 'open'
                             and o.trigger_price is not null and o.falls and o.trigger_price >= pr.price)
               or exists (select 1 from bj.orders o
                           where o.market_id = p_market.id and o.outcome = pr.i and o.status = 'open'
                             and o.trigger_price is not null and not o.falls and o.trigger_price <= pr.price))
    into trade_id, crossed;
  -- only a short moves collateral: the rest never pay for this statement
  if p_account.delta <> 0 then
    insert into bj.collateral as c (user_id, market_id, amount)
    values (p_user, p_market.id, p_account.required)
    on conflict (user_id, market_id) do update set amount = excluded.amount;
  end if;
end $$;

-- The terms of a trade in the market's current state, as a receipt-shaped quote: the plan
-- api.trade would execute, to the last digit.
create or replace function bj.quote(p_market text, p_outcome text, p_side text, p_shares numeric,
                                    p_spend numeric) returns jsonb
language plpgsql stable as $$
declare
  v_market bj.markets := bj.find_market(p_market);
  v_j int := bj.outcome_index(v_market, p_outcome);
  v_plan bj.take_plan;
begin
  perform bj.require_open(v_market);
  v_plan := bj.plan_fills(v_market, v_j, p_side, p_shares, p_spend);
  return jsonb_build_object(
    'market', v_market.code, 'outcome', p_outcome, 'side', p_side,
    'shares', v_plan.shares::numeric(24, 6), 'amount', v_plan.amount::numeric(24, 6),
    'fee', v_plan.fee::numeric(24, 6), 'total', v_plan.total::numeric(24, 6),
    'avg_price', round(v_plan.total / v_plan.shares, 9),
    'price_before', (bj.display_prices(bj.market_prices(v_market)))[v_j],
    'price_after', v_plan.prices_after[v_j]);
end $$;

-- Execute one trade for a trader and return its receipt. p_root and p_order are set when a
-- conditional order fires it; such a trade skips the trader's cooldown. With p_cascade (a root
-- trade), the orders its prices cross fire before it returns, listed in `triggered`.
create or replace function bj.execute_trade(
  p_user bigint, p_market text, p_outcome text, p_side text, p_shares numeric, p_spend numeric,
  p_max_total numeric default null, p_min_total numeric default null,
  p_root bigint default null, p_order bigint default null, p_cascade boolean default false)
returns jsonb
language plpgsql as $$
declare
  v_market bj.markets;
  v_j int;
  v_plan bj.take_plan;
  v_account bj.take_account;
  v_posted record;
  v_now timestamptz;
  v_cooldown numeric;
  v_receipt jsonb;
  v_fired jsonb;
begin
  if p_max_total is not null and p_side = 'sell' or p_min_total is not null and p_side = 'buy' then
    perform bj.raise('BJ021', 'max_total bounds a buy, min_total a sell');
  end if;
  -- a bound that is not a finite number would bound nothing (NaN compares above every number)
  if not (coalesce(p_max_total, 0) between 0 and 1e15 and coalesce(p_min_total, 0) between 0 and 1e15) then
    perform bj.raise('BJ021', 'max_total and min_total must be finite numbers, at least 0');
  end if;
  -- read before any lock: the less a trade does while it holds the market, the more trades
  -- one market takes
  if p_root is null then
    v_cooldown := bj.setting('trade_cooldown_ms')::numeric;
  end if;

  -- plan, under the market's lock (markets are always locked first)
  select * into v_market from bj.markets m where m.code = p_market for update;
  if not found then
    perform bj.raise('BJ010', p_market);
  end if;
  v_j := bj.outcome_index(v_market, p_outcome);
  perform bj.require_open(v_market);
  v_plan := bj.plan_fills(v_market, v_j, p_side, p_shares, p_spend);

  -- check: the trader's row, cooldown, the slippage bounds and the account
  v_now := clock_timestamp();
  v_account := bj.check_take(v_market, p_user, v_j, p_side, v_plan, v_cooldown, v_now,
                             p_max_total, p_min_total);

  -- post
  v_posted := bj.post_fills(nextval('bj.journal_seq'), v_market, p_user, v_j, p_side, v_plan,
                            v_account, p_root, p_order, v_now, p_cascade);

  -- answer; a root trade that crosses conditional orders fires them first
  v_receipt := jsonb_build_object(
    'trade_id', v_posted.trade_id, 'market', v_market.code, 'outcome', p_outcome, 'side', p_side,
    'shares', v_plan.shares::numeric(24, 6), 'amount', v_plan.amount::numeric(24, 6),
    'fee', v_plan.fee::numeric(24, 6), 'total', v_plan.total::numeric(24, 6),
    'avg_price', round(v_plan.total / v_plan.shares, 9),
    'price_after', v_plan.prices_after[v_j], 'prices_after', to_jsonb(v_plan.prices_after),
    'balance', v_account.cash::numeric(24, 6), 'locked', v_account.required::numeric(24, 6),
    'position', v_account.new_position::numeric(24, 6), 'root_trade_id', p_root, 'order_id', p_order,
    'triggered', '[]'::jsonb);
  if v_posted.crossed then
    v_fired := bj.run_cascade(v_posted.trade_id, v_market.code, to_jsonb(v_plan.prices_after));
    v_receipt := v_receipt || jsonb_build_object('triggered', v_fired);
    -- the cascade may have fired the trader's own orders: their account as it is now
    if jsonb_array_length(v_fired) > 0 then
      v_receipt := v_receipt || (
        select jsonb_build_object('balance', u.balance::numeric(24, 6),
                 'locked', coalesce((select c.amount from bj.collateral c
                                      where c.user_id = p_user and c.market_id = v_market.id), 0)::numeric(24, 6),
                 'position', coalesce((select p.shares from bj.positions p
                                        where p.user_id = p_user and p.market_id = v_market.id
                                          and p.outcome = v_j), 0)::numeric(24, 6))
          from bj.users u where u.id = p_user);
    end if;
  end if;
  return v_receipt;
end $$;

-- A trade that a conditional order fired, as the receipt of the trade that fired it lists it:
-- public facts only (any trader sees them in the market's history), nothing of its owner.
create or replace function bj.fired_json(p_receipt jsonb) returns jsonb
language sql immutable
return jsonb_build_object('order_id', p_receipt -> 'order_id', 'trade_id', p_receipt -> 'trade_id',
  'market', p_receipt -> 'market', 'outcome', p_receipt -> 'outcome', 'side', p_receipt -> 'side',
  'shares', p_receipt -> 'shares', 'avg_price', p_receipt -> 'avg_price',
  'price_after', p_receipt -> 'price_after');

-- A trade with an idempotency key: the first call executes and stores its receipt; a retry
-- with the same arguments returns that receipt, one with other arguments is refused.
-- Concurrent calls with one key queue on the key's unique index: exactly one executes.
create or replace function bj.trade(
  p_user bigint, p_market text, p_outcome text, p_side text, p_shares numeric, p_spend numeric,
  p_max_total numeric, p_min_total numeric, p_key text)
returns jsonb
language plpgsql as $$
declare
  v_request jsonb;
  v_stored bj.idempotency;
  v_receipt jsonb;
begin
  if length(p_key) not between 1 and 200 then
    perform bj.raise('BJ021', 'idempotency_key must be 1 to 200 characters');
  end if;
  if p_key is not null then
    v_request := jsonb_build_object('market', p_market, 'outcome', p_outcome, 'side', p_side,
      'shares', p_shares, 'spend', p_spend, 'max_total', p_max_total, 'min_total', p_min_total);
    insert into bj.idempotency (user_id, key, request) values (p_user, p_key, v_request)
    on conflict do nothing;
    if not found then
      select * into v_stored from bj.idempotency i where i.user_id = p_user and i.key = p_key;
      if v_stored.request <> v_request then
        perform bj.raise('BJ004', format('key %s was first used for %s', p_key, v_stored.request));
      end if;
      return v_stored.response || jsonb_build_object('replayed', true);
    end if;
  end if;
  v_receipt := bj.execute_trade(p_user, p_market, p_outcome, p_side, p_shares, p_spend,
                                p_max_total, p_min_total, p_cascade => true);
  if p_key is not null then
    update bj.idempotency i set response = v_receipt where i.user_id = p_user and i.key = p_key;
  end if;
  return v_receipt;
end $$;

-- A trade as its trader sees it later (api.my_trades).
create or replace function bj.trade_json(p_trade bj.trades) returns jsonb
language sql stable
begin atomic
  select jsonb_build_object('trade_id', p_trade.id, 'market', m.code,
           'outcome', m.outcomes[p_trade.outcome], 'side', p_trade.side, 'shares', p_trade.shares,
           'amount', p_trade.amount, 'fee', p_trade.fee, 'total', p_trade.total,
           'avg_price', round(p_trade.total / p_trade.shares, 9),
           'price_after', p_trade.prices_after[p_trade.outcome],
           'root_trade_id', p_trade.root_trade_id, 'order_id', p_trade.order_id,
           'at', p_trade.created_at)
    from bj.markets m where m.id = p_trade.market_id;
end;


-- What changed after a cursor: the state now of every market that changed since, and the next
-- cursor. A cursor is the snapshot an answer was read in and the time its statuses were read
-- as of (`xmin:xmax:xip@microseconds since 1970`). A market changed if its row's last change is
-- not in the cursor's snapshot, or if its close_at passed after the cursor's time (it reads as
-- closed with no row change). Each change is handed out by the first answer that sees it and by
-- no later one: no gap, no repeat, and a market that never stops trading still comes in every
-- answer. With p_until (a later cursor: the stream's catch-up), only the changes up to it whose
-- state now is the one it saw: what changed after it belongs to the answers that follow it.
create or replace function bj.changes(p_since text, p_until text default null)
returns jsonb
language plpgsql stable as $$
declare
  v_since record;
  v_until record;
  v_now timestamptz := clock_timestamp();
  v_snapshot pg_snapshot;
  v_at timestamptz;
begin
  select * into v_since from bj.read_cursor(p_since);
  select * into v_until from bj.read_cursor(p_until);
  v_snapshot := coalesce(v_until.snapshot, pg_current_snapshot());
  v_at := coalesce(v_until.at, v_now);
  return jsonb_build_object(
    'cursor', coalesce(p_until, format('%s@%s', v_snapshot, bj.cursor_time(v_at))),
    'markets', coalesce((
      select jsonb_agg(bj.market_json_at(m, v_now) order by m.id) from bj.markets m
       where (p_until is null or pg_visible_in_snapshot(m.changed_xid, v_snapshot))
         and (p_since is null
              or not pg_visible_in_snapshot(m.changed_xid, v_since.snapshot)
              or m.status = 'open' and m.close_at > v_since.at and m.close_at <= v_at)
         -- catch-up: a market closing after the later cursor's time is the live answers'
         and (m.status = 'open' and m.close_at > v_at and m.close_at <= v_now) is not true), '[]'));
end $$;

-- A time in a cursor: whole microseconds since 1970, exact both ways.
create or replace function bj.cursor_time(p_at timestamptz) returns bigint
language sql immutable
return extract(epoch from p_at) * 1000000;

-- A client's cursor, or bad input: its snapshot and its time. A cursor without a time (as
-- earlier versions handed out) is as of the beginning of time: a market that closed by its
-- close_at comes once more. A bare transaction id (the cursor before that: all below it had
-- ended) reads as the snapshot that sees exactly those.
create or replace function bj.read_cursor(p_cursor text, out snapshot pg_snapshot, out at timestamptz)
language plpgsql immutable as $$
declare
  v_parts text[] := regexp_match(p_cursor,
    '^([0-9]{1,19}(:[0-9]{1,19}:([0-9]{1,19}(,[0-9]{1,19})*)?)?)(@([0-9]{1,17}))?$');
begin
  if p_cursor is null then
    return;
  end if;
  if v_parts is not null then
    begin
      snapshot := case when v_parts[2] is null then format('%1$s:%1$s:', v_parts[1])
                       else v_parts[1] end::pg_snapshot;
      -- (in two parts, each exact in the float an interval is multiplied by)
      at := coalesce(timestamptz 'epoch' + v_parts[6]::bigint / 1000000 * interval '1 second'
                                         + v_parts[6]::bigint % 1000000 * interval '1 microsecond',
                     '-infinity');
      return;
    exception when invalid_text_representation or datetime_field_overflow then
      -- well formed but impossible (xmin after xmax, a time out of range): reported below
    end;
  end if;
  perform bj.raise('BJ021', 'a cursor is the value api.changes returned');
end $$;

-- earlier signatures of the feed (cursors without their time)
drop function if exists bj.changes(pg_snapshot, pg_snapshot);
drop function if exists bj.parse_cursor(text);
