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

-- A market's outcomes as clients see them: [{outcome, price, shares}], in the market's order.
create or replace function bj.outcomes_json(p_names text[], p_prices numeric[], p_shares numeric[])
returns jsonb
language plpgsql immutable as $$
declare
  v_out jsonb[] := '{}'::jsonb[];
begin
  for i in 1 .. cardinality(p_names) loop
    v_out[i] := jsonb_build_object('outcome', p_names[i], 'price', p_prices[i], 'shares', p_shares[i]);
  end loop;
  return to_jsonb(v_out);
end $$;

-- One number per outcome as an object keyed by the outcomes' names ({"YES": 0.3, "NO": 0.7}).
create or replace function bj.outcomes_object(p_names text[], p_values numeric[]) returns jsonb
language plpgsql immutable as $$
declare
  v_out jsonb := '{}'::jsonb;
begin
  for i in 1 .. cardinality(p_names) loop
    v_out := v_out || jsonb_build_object(p_names[i], p_values[i]);
  end loop;
  return v_out;
end $$;

-- The market as clients see it, its status as of a time. One expression with no subquery, so
-- that a query rendering many markets inlines it (a list of markets is then one plan, not one
-- function call per row: 2.4 times faster).
create or replace function bj.market_json_at(p_market bj.markets, p_at timestamptz) returns jsonb
language sql stable
return jsonb_build_object(
    'code', p_market.code,
    'title', p_market.title,
    'status', bj.market_status_at(p_market, p_at),
    'pricing', p_market.pricing,
    'liquidity', p_market.liquidity,
    'fee_rate', p_market.fee_rate,
    'close_at', p_market.close_at,
    'resolution', case p_market.status
      when 'resolved' then jsonb_build_object('payouts', bj.outcomes_object(p_market.outcomes, p_market.payouts),
                                              'settled_at', p_market.settled_at)
      when 'voided' then jsonb_build_object('void', true, 'settled_at', p_market.settled_at)
      end,
    'volume', p_market.volume,
    'version', p_market.version,
    'tick', p_market.tick,
    'maker_fee_rate', p_market.maker_fee_rate,
    'phase', p_market.phase,
    'book_seq', p_market.book_seq,
    'outcomes', bj.outcomes_json(p_market.outcomes, bj.display_prices(bj.market_prices(p_market)),
                                 p_market.q));

-- The market as clients see it now. (Not inlined: its body reads the clock, which a STABLE
-- function may not inline; a query rendering many markets calls bj.market_json_at with one time.)
create or replace function bj.market_json(p_market bj.markets) returns jsonb
language sql stable
return bj.market_json_at(p_market, clock_timestamp());

-- A page of markets as clients see them, in the order they were created (by id): those after
-- the market with id p_after, with status p_status (null: any) as of p_at, at most p_max_rows.
-- (Markets created while a client pages through come last.)
create or replace function bj.markets_page(p_status text, p_after bigint, p_max_rows int,
                                           p_at timestamptz) returns jsonb
language plpgsql stable as $$
begin
  return coalesce((
    select jsonb_agg(p.market order by p.id)
      from (select m.id, bj.market_json_at(m, p_at) as market from bj.markets m
             where m.id > p_after
               and (p_status is null or bj.market_status_at(m, p_at) = p_status)
             order by m.id
             limit p_max_rows) p), '[]');
end $$;

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

-- Queue for a market's writes: the transaction-scoped advisory lock (bj.markets' oid, the
-- market's id) that every writer of a market takes before its row (architecture.md §16).
create or replace function bj.queue_market(p_id bigint) returns void
language sql as $$ select pg_advisory_xact_lock('bj.markets'::regclass::oid::int, p_id::int) $$;

-- Lock a market by code, or fail with unknown_market. Markets are always locked first.
-- A writer queues on the market's advisory lock (bj.queue_market) before it touches the row, so
-- the writers waiting for a busy market wait off its row (architecture.md §16). p_held: this
-- transaction holds the row already (a batch locks its markets first: bj.place_orders), and
-- reads it without locking it again.
drop function if exists bj.lock_market(text);
create or replace function bj.lock_market(p_code text, p_held boolean default false) returns bj.markets
language plpgsql as $$
declare
  v_id bigint;
  v_market bj.markets;
begin
  -- the market's id, and its queue (one statement)
  select m.id into v_id from bj.markets m cross join lateral bj.queue_market(m.id) q where m.code = p_code;
  if not found then
    perform bj.raise('BJ010', p_code);
  end if;
  if p_held then
    select * into v_market from bj.markets m where m.id = v_id;
  else
    -- locked by writing it as it is: a row locked by SELECT … FOR UPDATE and then written keeps
    -- a lock of its writer's on the new version, which the next subtransaction of a batch to
    -- write it must record in a multixact (architecture.md §16)
    update bj.markets m set version = m.version where m.id = v_id returning * into v_market;
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

-- Plan a taking order on outcome j: shares (or a budget, buys only), up to a limit price (null:
-- none). Pure: reads the market's state and its book, and changes nothing.
--
-- Routing (architecture.md §13): at each step the order takes from whichever is cheaper, the
-- best resting order (price-time priority; ties go to it) or the market maker, which it buys
-- from (or sells to) only up to the price of the next resting order or its own limit (the
-- closed form bj.curve_shares_to). A fill against a resting order executes at that order's
-- price. So after any order the book is not crossed and no resting order is marketable against
-- the market maker. The market maker's part is one move of its curve, priced at the end as one
-- trade (rounded once, for the taker); each book fill is rounded for the taker (costs up,
-- proceeds down) and, cumulatively over the resting order's fills, for its maker, whose
-- rounding favours the house too (bj.maker_amounts). The taker's own resting orders are
-- cancelled when met (stp = cancel_resting) or stop the order (cancel_newest); expired ones
-- are cancelled when met.
create or replace function bj.plan_fills(
  p_market bj.markets, p_j int, p_side text, p_shares numeric, p_spend numeric,
  p_limit numeric default null, p_user bigint default null, p_stp text default 'cancel_resting')
returns bj.take_plan
language plpgsql stable as $$
declare
  v_plan bj.take_plan;
  v_t record;
  v_maker boolean;
  v_buy boolean := p_side = 'buy';
  v_q numeric[] := p_market.q;
  v_amm numeric := 0;          -- shares taken from the market maker so far
  v_left numeric := p_shares;  -- shares still wanted (a shares order)
  v_book_spent numeric := 0;   -- what the book fills cost the taker so far, fees included
  v_seen bigint[] := '{}';
  v_c record;
  v_p numeric;                 -- the market maker's price of j now
  v_target numeric;
  v_cap numeric;
  v_s numeric;
  v_fill bj.fill;
  v_m record;
  v_prices numeric[];
begin
  perform bj.check_quantity(p_side, p_shares, p_spend);
  -- a plain trade on an empty book: the market maker's curve alone (a market without one has
  -- no liquidity then: bj.no_curve refuses, BJ016)
  if p_market.resting = 0 and p_limit is null then
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
  end if;

  v_maker := (select m.market_maker from bj.pricing_models m where m.name = p_market.pricing);
  v_plan.fills := '{}';
  v_plan.own_cancels := '{}';
  v_plan.stopped_by_stp := false;
  v_plan.pairs_after := p_market.pairs;
  loop
    exit when v_left is not null and v_left <= 0;
    -- the best resting order
    v_c := bj.book_candidate(p_market, p_j, p_side, v_seen);
    if v_c.id is not null and p_limit is not null
       and (v_buy and v_c.eff_price > p_limit or not v_buy and v_c.eff_price < p_limit) then
      v_c := bj.book_candidate(p_market, p_j, p_side, null);  -- beyond the limit: as if none
    end if;
    v_p := case when v_maker then (bj.curve_prices(p_market.pricing, v_q, p_market.liquidity))[p_j] end;
    -- the market maker, up to the next resting order's price or the limit
    v_s := 0;
    if v_maker and (v_c.id is null or v_buy and v_p < v_c.eff_price or not v_buy and v_p > v_c.eff_price) then
      v_target := case when v_buy then least(v_c.eff_price, p_limit) else greatest(v_c.eff_price, p_limit) end;
      v_cap := case when v_target is null then 1e9
                    else greatest(0, bj.floor6((case when v_buy then 1 else -1 end)
                           * bj.curve_shares_to(p_market.pricing, v_q, p_market.liquidity, p_j, v_target))) end;
      if p_spend is not null then
        -- what the rest of the budget buys from the market maker, as one move with what it
        -- already took: the most shares whose total (and the book's) stays within the budget
        v_cap := least(v_cap, (bj.price_trade(p_market.pricing, p_market.q, p_market.liquidity,
                                               p_market.fee_rate, p_j, 'buy', null,
                                               p_spend - v_book_spent, p_quiet => true)).shares - v_amm);
      end if;
      v_s := least(coalesce(v_left, 1e9), v_cap);
      if v_s > 0 then
        v_amm := v_amm + v_s;
        v_q[p_j] := v_q[p_j] + case when v_buy then v_s else -v_s end;
        if v_left is not null then
          v_left := v_left - v_s;
        end if;
        continue;
      end if;
    end if;
    exit when v_c.id is null;  -- nothing more within the limit
    if v_c.expired or v_c.user_id = p_user then
      -- met at its price: an expired order is cancelled; so is the taker's own (self-trade
      -- prevention), unless the taker's order is the one to stop
      if not v_c.expired and p_stp = 'cancel_newest' then
        v_plan.stopped_by_stp := true;
        exit;
      end if;
      v_plan.own_cancels := v_plan.own_cancels || v_c.id;
      v_seen := v_seen || v_c.id;
      continue;
    end if;
    -- the resting order: as much of it as the order still wants (or its budget pays for)
    v_s := least(coalesce(v_left, 1e9), v_c.remaining);
    if p_spend is not null then
      v_s := least(v_s, bj.shares_within(v_c.eff_price, p_market.fee_rate, p_spend - v_book_spent
                    - case when v_amm > 0 then (bj.price_trade(p_market.pricing, p_market.q, p_market.liquidity,
                                                                p_market.fee_rate, p_j, 'buy', v_amm, null)).total
                           else 0 end));
      exit when v_s <= 0;
    end if;
    v_fill.how := v_c.how;
    v_fill.outcome := p_j;
    v_fill.shares := v_s;
    v_fill.price := v_c.eff_price;
    v_fill.amount := case when v_buy then bj.ceil6(v_c.eff_price * v_s) else bj.floor6(v_c.eff_price * v_s) end;
    v_fill.fee := bj.ceil6(v_fill.amount * p_market.fee_rate);
    v_fill.maker_order := v_c.id;
    v_fill.maker_user := v_c.user_id;
    v_fill.maker_outcome := v_c.outcome;
    v_fill.maker_side := v_c.side;
    v_fill.maker_price := v_c.price;
    v_m := bj.maker_amounts(v_c.side, v_c.price, v_c.filled, v_s, p_market.maker_fee_rate);
    v_fill.maker_amount := v_m.amount;
    v_fill.maker_fee := v_m.fee;
    v_plan.fills := v_plan.fills || v_fill;
    v_book_spent := v_book_spent + v_fill.amount + v_fill.fee;
    v_plan.pairs_after := v_plan.pairs_after + case v_c.how when 'mint' then v_s when 'merge' then -v_s else 0 end;
    v_seen := v_seen || v_c.id;
    if v_left is not null then
      v_left := v_left - v_s;
    end if;
  end loop;

  -- the market maker's part, priced as one move of its curve
  v_plan.amm_shares := v_amm;
  v_plan.amm_amount := 0;
  v_plan.amm_fee := 0;
  v_plan.q_after := p_market.q;
  if v_amm > 0 then
    v_t := bj.price_trade(p_market.pricing, p_market.q, p_market.liquidity, p_market.fee_rate, p_j,
                          p_side, v_amm, null);
    v_plan.amm_amount := v_t.amount;
    v_plan.amm_fee := v_t.fee;
    v_plan.q_after := v_t.q_after;
  end if;
  select coalesce(sum(f.shares), 0) + v_amm, coalesce(sum(f.amount), 0) + v_plan.amm_amount,
         coalesce(sum(f.fee), 0) + v_plan.amm_fee
    into v_plan.shares, v_plan.amount, v_plan.fee
    from unnest(v_plan.fills) f;
  v_plan.total := case when v_buy then v_plan.amount + v_plan.fee else v_plan.amount - v_plan.fee end;
  v_plan.unfilled := coalesce(v_left, 0);
  -- the prices after: the market maker's, or in a book market where its last fill traded
  -- (in a binary one, the other outcome at the complement)
  if v_maker then
    v_prices := bj.curve_prices(p_market.pricing, v_plan.q_after, p_market.liquidity);
  else
    v_prices := bj.market_prices(p_market);
    if cardinality(v_plan.fills) > 0 then
      v_prices[p_j] := v_plan.fills[cardinality(v_plan.fills)].price;
      if cardinality(v_prices) = 2 then
        v_prices[3 - p_j] := 1 - v_prices[p_j];
      end if;
    end if;
  end if;
  v_plan.prices_after := bj.display_prices(v_prices);
  if v_plan.fills = '{}' then
    v_plan.fills := null;
  end if;
  return v_plan;
end $$;

-- Lock every trader a plan involves besides the market maker: the makers of its fills, the
-- owners of the resting orders it cancels (the taker's own, met under self-trade prevention,
-- and expired ones), and the taker; in id order, all at once, as everywhere. Before the own
-- cancels are written, and before the taker's account is judged (it counts the escrow they
-- give back). With p_wait false (a fired order: its transaction holds other traders' rows
-- already) it never waits: a busy trader raises lock_not_available (55P03).
create or replace function bj.lock_traders(p_plan bj.take_plan, p_user bigint, p_wait boolean default true)
returns void
language plpgsql as $$
begin
  if p_plan.fills is null and coalesce(cardinality(p_plan.own_cancels), 0) = 0 then
    return;
  elsif p_wait then
    perform 1 from bj.users u
     where u.id = any (array(select f.maker_user from unnest(p_plan.fills) f)
                       || array(select o.user_id from bj.orders o where o.id = any (p_plan.own_cancels))
                       || p_user)
     order by u.id for no key update;
  else
    perform 1 from bj.users u
     where u.id = any (array(select f.maker_user from unnest(p_plan.fills) f)
                       || array(select o.user_id from bj.orders o where o.id = any (p_plan.own_cancels))
                       || p_user)
     order by u.id for no key update nowait;
  end if;
end $$;

-- Lock the taker's row and judge their account after a plan: the cooldown (p_cooldown_ms,
-- null for a fired order), the slippage bounds (max_total a buy's, min_total a sale's; a bound
-- equal to the total is met), the new position in outcome j, the collateral its shorts need (the
-- worst payout: max(0, −min over outcomes of the position)) and how much that moves, the cash
-- left, the market maker's pool. Refuses a disabled account (BJ026), a trade within the
-- cooldown (BJ030), a total past its bound (BJ003), a short where the model allows none (BJ005), what the balance cannot cover
-- (BJ001), what the pool could not pay out (BJ006). p_lock false: the transaction holds the
-- trader's row already (an earlier order of its batch), and does not lock it again
-- (architecture.md §16).
drop function if exists bj.check_take(bj.markets, bigint, int, text, bj.take_plan, numeric, timestamptz, numeric, numeric);
create or replace function bj.check_take(
  p_market bj.markets, p_user bigint, p_j int, p_side text, p_plan bj.take_plan,
  p_cooldown_ms numeric, p_now timestamptz, p_max_total numeric, p_min_total numeric,
  p_lock boolean default true)
returns bj.take_account
language plpgsql as $$
declare
  v_held record;
  v_account bj.take_account;
begin
  -- the trader's row, locked (with every other trader involved, by bj.lock_traders, when the
  -- plan meets resting orders), with their holdings in this market
  if p_lock then  -- (written as it is, to lock it: as bj.lock_market does a market)
    update bj.users u set balance = u.balance where u.id = p_user;
  end if;
  select u.balance, u.disabled_at, u.last_trade_at, h.position, h.others,
         coalesce((select c.amount from bj.collateral c
                    where c.user_id = u.id and c.market_id = p_market.id), 0) as locked
    into v_held
    from bj.users u
    cross join lateral (
      select coalesce(max(p.shares) filter (where p.outcome = p_j), 0) as position,
             coalesce(min(p.shares) filter (where p.outcome <> p_j), 0) as others
        from bj.positions p where p.user_id = u.id and p.market_id = p_market.id) h
   where u.id = p_user;
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
  -- the pool: what the market maker takes or pays, and 1 per pair minted (or merged)
  v_account.pool := p_market.pool
                    + case p_side when 'buy' then p_plan.amm_amount else -p_plan.amm_amount end
                    + p_plan.pairs_after - p_market.pairs;
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
  v_book_trade bigint;
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
  ), held as (
    -- the position: updated, or inserted if the trader has none (never ON CONFLICT, whose lock
    -- on a row an earlier order of a batch wrote costs every later read: architecture.md §16;
    -- the trader's lock keeps anyone else from inserting it meanwhile)
    update bj.positions p
       set shares = p_account.new_position,
           cost_basis = p.cost_basis + case p_side when 'buy' then p_plan.total else -p_plan.total end
     where p.user_id = p_user and p.market_id = p_market.id and p.outcome = p_j
    returning 1
  ), position as (
    insert into bj.positions (user_id, market_id, outcome, shares, cost_basis)
    select p_user, p_market.id, p_j, p_account.new_position,
           case p_side when 'buy' then p_plan.total else -p_plan.total end
     where not exists (select 1 from held)
  ), market as (
    update bj.markets m
       set q = p_plan.q_after, pool = p_account.pool, volume = m.volume + p_plan.amount,
           pairs = p_plan.pairs_after, version = m.version + 1, changed_xid = pg_current_xact_id(),
           last_prices = case when p_plan.fills is null then m.last_prices else p_plan.prices_after end
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
  if p_plan.fills is not null then
    v_book_trade := bj.post_book_fills(p_journal, p_market, p_user, p_j, p_side, p_plan, p_root, p_order);
    trade_id := coalesce(trade_id, v_book_trade);
  end if;
  -- only a short moves collateral: the rest never pay for this statement
  if p_account.delta <> 0 then
    insert into bj.collateral as c (user_id, market_id, amount)
    values (p_user, p_market.id, p_account.required)
    on conflict (user_id, market_id) do update set amount = excluded.amount;
  end if;
end $$;

-- A trader's collateral in a market set to what their shorts need now: the worst payout,
-- max(0, -min_i position_i), posted between their cash and collateral:U:M. For a trader whose
-- positions moved outside a trade of their own: a maker's fill, an ask's shares coming back
-- (bj.close_order). The trader's row is locked by the caller.
create or replace function bj.settle_collateral(p_journal bigint, p_user bigint, p_market bigint)
returns void
language plpgsql as $$
declare
  v_req numeric;
  v_locked numeric;
begin
  select greatest(0, -least(0, min(p.shares))),
         coalesce((select c.amount from bj.collateral c where c.user_id = p_user and c.market_id = p_market), 0)
    into v_req, v_locked
    from bj.positions p where p.user_id = p_user and p.market_id = p_market;
  if v_req = v_locked then
    return;
  end if;
  perform bj.post(p_journal, 'collateral', 'coin', bj.cash_account(p_user),
                  bj.collateral_account(p_user, p_market), v_req - v_locked, p_user, p_market);
  update bj.users u set balance = u.balance - (v_req - v_locked) where u.id = p_user;
  insert into bj.collateral as c (user_id, market_id, amount) values (p_user, p_market, v_req)
  on conflict (user_id, market_id) do update set amount = excluded.amount;
end $$;

-- Write the fills of a checked plan against resting orders (bj.post_fills' part for the book),
-- each as two trades (the taker's and the maker's, naming each other) and its double-entry
-- postings, then each maker's account: balance, position, collateral, and their order's fill
-- state and escrow. The taker's balance and position are written by bj.post_fills.
--   direct  shares change hands: the ask's escrowed shares first, then (a short) the maker's
--           position; coins from the buyer (a bid pays from its escrow) to the seller
--   mint    a buy of j and a bid for the other outcome k pay for a new pair: 1 per share goes
--           to the pool, the pair's shares come from mint:M (pairs outstanding grow)
--   merge   a sale of j and an ask for k return a pair: the pool pays 1 per share out
-- What each side's rounding leaves over goes to the fees (the house's favour).
create or replace function bj.post_book_fills(
  p_journal bigint, p_market bj.markets, p_user bigint, p_j int, p_side text, p_plan bj.take_plan,
  p_root bigint, p_order bigint)
returns bigint
language plpgsql as $$
declare
  v_f bj.fill;
  v_o bj.orders;
  v_taker_trade bigint;
  v_maker_trade bigint;
  v_first bigint;
  v_from_escrow numeric;  -- shares an ask delivers from its escrow (the rest is a short)
  v_short numeric;
  v_cash numeric;         -- what the maker's cash gains in this fill
  v_k int;
  v_makers bigint[] := '{}';
  v_m bigint;
  v_buy boolean := p_side = 'buy';
  asset_j text := bj.share_asset(p_market.id, p_j);
  taker_cash text := bj.cash_account(p_user);
  pool text := bj.pool_account(p_market.id);
begin
  foreach v_f in array p_plan.fills loop
    select * into v_o from bj.orders o where o.id = v_f.maker_order for no key update;
    v_k := v_f.maker_outcome;
    v_taker_trade := nextval('bj.trades_id_seq');
    v_maker_trade := nextval('bj.trades_id_seq');
    v_first := coalesce(v_first, v_taker_trade);
    insert into bj.trades (id, market_id, user_id, outcome, side, shares, amount, fee, total,
                           prices_after, root_trade_id, order_id, how, role, other_trade_id, price)
    overriding system value values
      (v_taker_trade, p_market.id, p_user, p_j, p_side, v_f.shares, v_f.amount, v_f.fee,
       case when v_buy then v_f.amount + v_f.fee else v_f.amount - v_f.fee end,
       p_plan.prices_after, p_root, p_order, v_f.how, 'taker', v_maker_trade, v_f.price),
      (v_maker_trade, p_market.id, v_f.maker_user, v_k, v_f.maker_side, v_f.shares, v_f.maker_amount,
       v_f.maker_fee, case v_f.maker_side when 'buy' then v_f.maker_amount + v_f.maker_fee
                                          else v_f.maker_amount - v_f.maker_fee end,
       p_plan.prices_after, p_root, v_o.id, v_f.how, 'maker', v_taker_trade, v_f.maker_price);

    -- shares
    v_from_escrow := 0;
    v_short := 0;
    if v_f.maker_side = 'sell' then
      v_from_escrow := least(v_f.shares, v_o.locked_shares);
      v_short := v_f.shares - v_from_escrow;
    end if;
    if v_f.how = 'direct' and v_buy then
      perform bj.post(p_journal, 'fill', asset_j, bj.order_account(v_o.id),
                      bj.position_account(p_user, p_market.id, p_j), v_from_escrow, p_user, p_market.id, v_taker_trade);
      perform bj.post(p_journal, 'fill', asset_j, bj.position_account(v_o.user_id, p_market.id, p_j),
                      bj.position_account(p_user, p_market.id, p_j), v_short, p_user, p_market.id, v_taker_trade);
    elsif v_f.how = 'direct' then
      perform bj.post(p_journal, 'fill', asset_j, bj.position_account(p_user, p_market.id, p_j),
                      bj.position_account(v_o.user_id, p_market.id, p_j), v_f.shares, p_user, p_market.id, v_taker_trade);
    elsif v_f.how = 'mint' then
      perform bj.post(p_journal, 'mint', asset_j, bj.mint_account(p_market.id, p_j),
                      bj.position_account(p_user, p_market.id, p_j), v_f.shares, p_user, p_market.id, v_taker_trade);
      perform bj.post(p_journal, 'mint', bj.share_asset(p_market.id, v_k), bj.mint_account(p_market.id, v_k),
                      bj.position_account(v_o.user_id, p_market.id, v_k), v_f.shares, v_o.user_id, p_market.id, v_maker_trade);
    else  -- merge
      perform bj.post(p_journal, 'merge', asset_j, bj.position_account(p_user, p_market.id, p_j),
                      bj.mint_account(p_market.id, p_j), v_f.shares, p_user, p_market.id, v_taker_trade);
      perform bj.post(p_journal, 'merge', bj.share_asset(p_market.id, v_k), bj.order_account(v_o.id),
                      bj.mint_account(p_market.id, v_k), v_from_escrow, v_o.user_id, p_market.id, v_maker_trade);
      perform bj.post(p_journal, 'merge', bj.share_asset(p_market.id, v_k),
                      bj.position_account(v_o.user_id, p_market.id, v_k),
                      bj.mint_account(p_market.id, v_k), v_short, v_o.user_id, p_market.id, v_maker_trade);
    end if;

    -- coins
    v_cash := 0;
    if v_f.how = 'direct' and v_buy then
      -- the taker pays the maker's proceeds, the rounding and its fee; the maker pays its fee
      perform bj.post(p_journal, 'fill', 'coin', taker_cash, bj.cash_account(v_o.user_id), v_f.maker_amount, p_user, p_market.id, v_taker_trade);
      perform bj.post(p_journal, 'fee', 'coin', taker_cash, 'fees', v_f.amount - v_f.maker_amount + v_f.fee, p_user, p_market.id, v_taker_trade);
      v_cash := v_f.maker_amount;
    elsif v_f.how = 'direct' then
      -- the bid's escrow pays the taker's proceeds, the rounding and the maker's fee
      perform bj.post(p_journal, 'fill', 'coin', bj.order_account(v_o.id), taker_cash, v_f.amount, p_user, p_market.id, v_taker_trade);
      perform bj.post(p_journal, 'fee', 'coin', bj.order_account(v_o.id), 'fees',
                      v_f.maker_amount - v_f.amount + v_f.maker_fee, v_o.user_id, p_market.id, v_maker_trade);
      perform bj.post(p_journal, 'fee', 'coin', taker_cash, 'fees', v_f.fee, p_user, p_market.id, v_taker_trade);
    elsif v_f.how = 'mint' then
      -- both pay into the pool, which keeps 1 per pair; the rounding over it and both fees
      perform bj.post(p_journal, 'mint', 'coin', taker_cash, pool, v_f.amount, p_user, p_market.id, v_taker_trade);
      perform bj.post(p_journal, 'mint', 'coin', bj.order_account(v_o.id), pool, v_f.maker_amount, v_o.user_id, p_market.id, v_maker_trade);
      perform bj.post(p_journal, 'fee', 'coin', pool, 'fees', v_f.amount + v_f.maker_amount - v_f.shares, null, p_market.id, v_taker_trade);
      perform bj.post(p_journal, 'fee', 'coin', taker_cash, 'fees', v_f.fee, p_user, p_market.id, v_taker_trade);
      perform bj.post(p_journal, 'fee', 'coin', bj.order_account(v_o.id), 'fees', v_f.maker_fee, v_o.user_id, p_market.id, v_maker_trade);
    else  -- merge: the pool pays 1 per pair out, to both sellers; the rounding stays a fee
      perform bj.post(p_journal, 'merge', 'coin', pool, taker_cash, v_f.amount, p_user, p_market.id, v_taker_trade);
      perform bj.post(p_journal, 'merge', 'coin', pool, bj.cash_account(v_o.user_id), v_f.maker_amount, v_o.user_id, p_market.id, v_maker_trade);
      perform bj.post(p_journal, 'fee', 'coin', pool, 'fees', v_f.shares - v_f.amount - v_f.maker_amount, null, p_market.id, v_taker_trade);
      perform bj.post(p_journal, 'fee', 'coin', taker_cash, 'fees', v_f.fee, p_user, p_market.id, v_taker_trade);
      v_cash := v_f.maker_amount;
    end if;
    if v_f.maker_side = 'sell' then
      -- an ask's proceeds pay its fee; a short's escrowed collateral comes back to the maker's
      -- cash (its collateral is worked out again below)
      perform bj.post(p_journal, 'fee', 'coin', bj.cash_account(v_o.user_id), 'fees', v_f.maker_fee, v_o.user_id, p_market.id, v_maker_trade);
      perform bj.post(p_journal, 'fill', 'coin', bj.order_account(v_o.id), bj.cash_account(v_o.user_id), v_short, v_o.user_id, p_market.id, v_maker_trade);
      v_cash := v_cash - v_f.maker_fee + v_short;
    end if;

    -- the maker's caches: balance, position, the order's fill state and escrow
    update bj.users u set balance = u.balance + v_cash where u.id = v_o.user_id;
    insert into bj.positions as p (user_id, market_id, outcome, shares, cost_basis)
    values (v_o.user_id, p_market.id, v_k,
            case when v_f.maker_side = 'buy' then v_f.shares else -v_short end,
            case v_f.maker_side when 'buy' then v_f.maker_amount + v_f.maker_fee
                                else -(v_f.maker_amount - v_f.maker_fee) end)
    on conflict (user_id, market_id, outcome) do update
       set shares = p.shares + excluded.shares, cost_basis = p.cost_basis + excluded.cost_basis;
    update bj.orders o
       set filled = o.filled + v_f.shares,
           locked_shares = o.locked_shares - v_from_escrow,
           locked_cash = o.locked_cash - case v_f.maker_side when 'buy' then v_f.maker_amount + v_f.maker_fee
                                                             else v_short end
     where o.id = v_o.id returning * into v_o;
    perform bj.touch_level(p_market.id, v_o.outcome, v_o.side, v_o.price, -v_f.shares, 0);
    if v_o.remaining = 0 then
      perform bj.close_order(p_journal, v_o, 'filled', null);  -- (and it leaves the level)
    end if;
    if not v_o.user_id = any (v_makers) then
      v_makers := v_makers || v_o.user_id;
    end if;
  end loop;

  -- each maker's collateral: the worst payout of their shorts in this market now
  foreach v_m in array v_makers loop
    perform bj.settle_collateral(p_journal, v_m, p_market.id);
  end loop;
  return v_first;
end $$;

-- The terms of a trade in the market's current state, as a receipt-shaped quote: the plan
-- api.trade would execute, to the last digit. With p_tolerance (a fraction, 0 to 0.5), also the
-- slippage guard to send with the trade: max_total for a buy (the total, that much more,
-- rounded up), min_total for a sale (that much less, rounded down).
drop function if exists bj.quote(text, text, text, numeric, numeric);
drop function if exists bj.quote(text, text, text, numeric, numeric, bigint);
create or replace function bj.quote(p_market text, p_outcome text, p_side text, p_shares numeric,
                                    p_spend numeric, p_user bigint default null,
                                    p_tolerance numeric default null) returns jsonb
language plpgsql stable as $$
declare
  v_market bj.markets := bj.find_market(p_market);
  v_j int := bj.outcome_index(v_market, p_outcome);
  v_plan bj.take_plan;
  v_quote jsonb;
begin
  if p_tolerance is not null and p_tolerance not between 0 and 0.5 then
    perform bj.raise('BJ021', 'tolerance must lie between 0 and 0.5');
  end if;
  perform bj.require_open(v_market);
  v_plan := bj.plan_fills(v_market, v_j, p_side, p_shares, p_spend, null, p_user);
  if v_plan.shares = 0 then
    perform bj.raise('BJ016', format('%s %s has no liquidity to %s against', v_market.code, p_outcome, p_side));
  end if;
  v_quote := jsonb_build_object(
    'market', v_market.code, 'outcome', p_outcome, 'side', p_side,
    'shares', v_plan.shares::numeric(24, 6), 'amount', v_plan.amount::numeric(24, 6),
    'fee', v_plan.fee::numeric(24, 6), 'total', v_plan.total::numeric(24, 6),
    'avg_price', round(v_plan.total / v_plan.shares, 9),
    'price_before', (bj.display_prices(bj.market_prices(v_market)))[v_j],
    'price_after', v_plan.prices_after[v_j]);
  if p_tolerance is not null then
    v_quote := v_quote || case p_side
      when 'buy' then jsonb_build_object('max_total', bj.ceil6(v_plan.total * (1 + p_tolerance))::numeric(24, 6))
      else jsonb_build_object('min_total', bj.floor6(v_plan.total * (1 - p_tolerance))::numeric(24, 6)) end;
  end if;
  return v_quote;
end $$;

-- Execute one trade for a trader and return its receipt. p_root and p_order are set when a
-- conditional order fires it; such a trade skips the trader's cooldown, as does a bot's action
-- (p_cooldown false: a bot's runs have a cooldown of their own). With p_cascade (a root trade),
-- the orders its prices cross fire before it returns, listed in `triggered`.
drop function if exists bj.execute_trade(bigint, text, text, text, numeric, numeric, numeric, numeric, bigint, bigint, boolean);
create or replace function bj.execute_trade(
  p_user bigint, p_market text, p_outcome text, p_side text, p_shares numeric, p_spend numeric,
  p_max_total numeric default null, p_min_total numeric default null,
  p_root bigint default null, p_order bigint default null, p_cascade boolean default false,
  p_cooldown boolean default true)
returns jsonb
language plpgsql as $$
declare
  v_market bj.markets;
  v_j int;
  v_plan bj.take_plan;
  v_account bj.take_account;
  v_posted record;
  v_journal bigint;
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
  if p_root is null and p_cooldown then
    v_cooldown := bj.setting('trade_cooldown_ms')::numeric;
  end if;

  -- plan, under the market's lock (markets are always locked first)
  v_market := bj.lock_market(p_market);
  v_j := bj.outcome_index(v_market, p_outcome);
  perform bj.require_open(v_market);
  v_plan := bj.plan_fills(v_market, v_j, p_side, p_shares, p_spend, null, p_user);
  if v_plan.shares = 0 then
    perform bj.raise('BJ016', format('%s %s has no liquidity to %s against', v_market.code, p_outcome, p_side));
  end if;

  -- lock the traders; cancel the resting orders met that cannot fill (the trader's own, expired
  -- ones), giving back their escrow; check the trader's row, cooldown, the slippage bounds and
  -- the account after that
  v_journal := nextval('bj.journal_seq');
  perform bj.lock_traders(v_plan, p_user, p_root is null);
  perform bj.cancel_met(v_journal, v_plan, 'a trade');
  v_now := clock_timestamp();
  v_account := bj.check_take(v_market, p_user, v_j, p_side, v_plan, v_cooldown, v_now,
                             p_max_total, p_min_total);

  -- post
  v_posted := bj.post_fills(v_journal, v_market, p_user, v_j, p_side, v_plan, v_account, p_root,
                            p_order, v_now, p_cascade);

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
-- cursor. A cursor is the snapshot an answer was read in (as bj.cursor_snapshot names it, on a
-- standby too) and the time its statuses were read as of (`xmin:xmax:xip@microseconds since
-- 1970`). A market changed if its row's last change is not in the cursor's snapshot, or if its
-- close_at passed after the cursor's time (it reads as closed with no row change). Each change
-- is handed out by the first answer that sees it and by no later one: no gap, no repeat, and a
-- market that never stops trading still comes in every answer. With p_until (a later cursor:
-- the stream's catch-up), only the changes up to it whose state now is the one it saw: what
-- changed after it belongs to the answers that follow it.
-- Without a cursor, the first answer: a cursor and, read in its snapshot, the first page of
-- markets (api.list_markets' first page; `more` says whether others follow): a client reads
-- the rest with api.list_markets after it, and every market that changes meanwhile comes again,
-- at a newer version, in the answer to that cursor.
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
  v_snapshot := coalesce(v_until.snapshot, bj.cursor_snapshot());
  v_at := coalesce(v_until.at, v_now);
  if p_since is null then
    if p_until is not null then
      perform bj.raise('BJ021', 'a catch-up starts from a cursor: since is required');
    end if;
    return jsonb_build_object(
      'cursor', format('%s@%s', v_snapshot, bj.cursor_time(v_at)),
      'markets', bj.markets_page(null, 0, 50, v_now),
      'book', '[]'::jsonb,
      'more', exists (select from bj.markets m offset 50));
  end if;
  return jsonb_build_object(
    'cursor', coalesce(p_until, format('%s@%s', v_snapshot, bj.cursor_time(v_at))),
    'markets', coalesce((
      select jsonb_agg(bj.market_json_at(m, v_now) order by m.id) from bj.markets m
       where (p_until is null or pg_visible_in_snapshot(m.changed_xid, v_snapshot))
         and (not pg_visible_in_snapshot(m.changed_xid, v_since.snapshot)
              or m.status = 'open' and m.close_at > v_since.at and m.close_at <= v_at)
         -- catch-up: a market closing after the later cursor's time is the live answers'
         and (m.status = 'open' and m.close_at > v_at and m.close_at <= v_now) is not true), '[]'),
    -- each change of a book the cursor had not seen, as its levels are after it (a client
    -- holding api.book at seq s applies those numbered above s)
    'book', coalesce((
      select jsonb_agg(jsonb_build_object('market', m.code, 'seq', c.seq, 'levels', c.levels)
                       order by c.market_id, c.seq)
        from (select c.market_id, c.seq,
                     jsonb_agg(jsonb_build_object('outcome', m.outcomes[c.outcome], 'side', c.side,
                                                  'price', c.price, 'shares', c.shares, 'orders', c.orders)
                               order by c.outcome, c.side, c.price) as levels
                from bj.book_changes c join bj.markets m on m.id = c.market_id
               where not pg_visible_in_snapshot(c.xid, v_since.snapshot)
                 and (p_until is null or pg_visible_in_snapshot(c.xid, v_snapshot))
               group by c.market_id, c.seq) c
        join bj.markets m on m.id = c.market_id), '[]'));
end $$;

-- The snapshot an answer's cursor names: one that counts as seen only transactions whose
-- changes that answer saw, or that never commit (architecture.md §17). On a primary, the
-- answer's own snapshot, as pg_current_snapshot() gives it. A snapshot taken on a hot standby
-- lists none of the primary's transactions in progress: the standby, unable to tell them from
-- subtransactions, keeps them all in the snapshot's subtransaction list, which
-- pg_current_snapshot() leaves out. Its `xmin:xmax:` would count every transaction from xmin on
-- as ended, and one of them committing later would be handed out by no answer. Its bounds are
-- sound: xmin is the oldest id the standby holds in progress (an id below one the WAL has shown
-- counts as in progress until its commit or abort is replayed), and nothing from xmax on is
-- seen. So there the cursor names as in progress every id from xmin to xmax but those that
-- last changed a market or a book in this snapshot (each committed in it, its changes in this
-- answer or an earlier one), at most p_max_open of them; past that it ends (its xmax) at the
-- first it cannot name, and a later answer may repeat a market at the version it had, but
-- misses none. (On a primary, only a transaction that wrote before it read sees a snapshot of
-- that shape, its own id the xmin; the same reading holds for it.)
create or replace function bj.cursor_snapshot(p_max_open int default 100) returns pg_snapshot
language plpgsql stable as $$
declare
  v_now pg_snapshot := pg_current_snapshot();
  v_xmin bigint := pg_snapshot_xmin(v_now)::text::bigint;
  v_xmax bigint := pg_snapshot_xmax(v_now)::text::bigint;
  v_open bigint[];
begin
  if v_xmin = v_xmax or exists (select from pg_snapshot_xip(v_now)) then
    return v_now;
  end if;
  with seen as (
    select m.changed_xid::text::bigint as xid from bj.markets m
     where m.changed_xid >= pg_snapshot_xmin(v_now)
    union
    select c.xid::text::bigint from bj.book_changes c where c.xid >= pg_snapshot_xmin(v_now))
  select array_agg(o.xid order by o.xid) into v_open
    from (select x.xid
            from generate_series(v_xmin, least(v_xmax, v_xmin + p_max_open + 1
                                                      + (select count(*) from seen)) - 1) x(xid)
           where x.xid not in (select seen.xid from seen)
           order by x.xid limit p_max_open + 1) o;
  if cardinality(v_open) > p_max_open then
    v_xmax := v_open[p_max_open + 1];
    v_open := v_open[1:p_max_open];
  end if;
  return format('%s:%s:%s', v_xmin, v_xmax, array_to_string(v_open, ','))::pg_snapshot;
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
