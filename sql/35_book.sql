-- The order book (architecture.md §13): limit orders resting on each outcome of a market, in
-- price-time priority; placing, resting with escrow, cancelling; the betting form (back/lay at
-- decimal odds); batches; the book as clients read it. Matching itself is the taking path's
-- (sql/30_trading.sql: bj.plan_fills routes, bj.post_book_fills writes).
-- Invariants kept here: every coin and share a resting order locks is in its escrow account
-- (order:O) and in its locked_cash / locked_shares; filled + remaining + cancelled = shares;
-- cancelling or closing an order returns exactly what it still locks.

---------------------------------------------------------------------------------------------
-- Prices, ticks and odds

-- Refuse a limit price that is not strictly between 0 and 1, or not on the market's tick.
create or replace function bj.check_price(p_market bj.markets, p_price numeric, p_name text default 'price')
returns void
language plpgsql immutable as $$
begin
  if p_price is null or not (p_price > 0 and p_price < 1) or p_price % p_market.tick <> 0 then
    perform bj.raise('BJ021', format('%s must lie strictly between 0 and 1, on the market''s tick of %s',
                                     p_name, p_market.tick::float8));
  end if;
end $$;

-- The betting exchanges' ladder of decimal odds: its step at odds o (null off its range).
create or replace function bj.ladder_step(p_odds numeric) returns numeric
language sql immutable parallel safe
return case when p_odds >= 1.01 and p_odds < 2 then 0.01
            when p_odds >= 2 and p_odds < 3 then 0.02
            when p_odds >= 3 and p_odds < 4 then 0.05
            when p_odds >= 4 and p_odds < 6 then 0.1
            when p_odds >= 6 and p_odds < 10 then 0.2
            when p_odds >= 10 and p_odds < 20 then 0.5
            when p_odds >= 20 and p_odds < 30 then 1
            when p_odds >= 30 and p_odds < 50 then 2
            when p_odds >= 50 and p_odds < 100 then 5
            when p_odds >= 100 and p_odds <= 1000 then 10 end;

-- Whether odds lie on the ladder.
create or replace function bj.on_ladder(p_odds numeric) returns boolean
language sql immutable parallel safe
return bj.ladder_step(p_odds) is not null
       and (p_odds - case when p_odds < 2 then 1.01 when p_odds < 3 then 2 when p_odds < 4 then 3
                          when p_odds < 6 then 4 when p_odds < 10 then 6 when p_odds < 20 then 10
                          when p_odds < 30 then 20 when p_odds < 50 then 30 when p_odds < 100 then 50
                          else 100 end) % bj.ladder_step(p_odds) = 0;

-- A price read as odds, snapped to the ladder: down for what backers are offered (odds no
-- better than the price gives), up for what layers are offered.
create or replace function bj.odds_of(p_price numeric, p_down boolean) returns numeric
language plpgsql immutable as $$
declare
  v_odds numeric := least(greatest(1 / p_price, 1.01), 1000);
  v_step numeric := bj.ladder_step(v_odds);
  v_base numeric := case when v_odds < 2 then 1.01 when v_odds < 3 then 2 when v_odds < 4 then 3
                         when v_odds < 6 then 4 when v_odds < 10 then 6 when v_odds < 20 then 10
                         when v_odds < 30 then 20 when v_odds < 50 then 30 when v_odds < 100 then 50
                         else 100 end;
begin
  if p_down then
    return v_base + floor((v_odds - v_base) / v_step) * v_step;
  end if;
  return least(1000, v_base + ceil((v_odds - v_base) / v_step) * v_step);
end $$;

---------------------------------------------------------------------------------------------
-- The book as the router reads it

-- The best resting order a taking order on outcome j can fill against, in price-time order:
-- for a buy, the lowest asks of j and, in a binary market, the highest bids for the other
-- outcome k (filled together by minting a pair: for j they are worth 1 − bid); for a sale, the
-- highest bids for j and the lowest asks of k (merging a pair). Skips the orders in p_skip.
-- An expired order comes too, flagged (the router cancels it and goes on).
create or replace function bj.book_candidate(p_market bj.markets, p_j int, p_side text, p_skip bigint[],
  out id bigint, out user_id bigint, out outcome int, out side text, out price numeric,
  out remaining numeric, out filled numeric, out expired boolean, out how text,
  out eff_price numeric)
language plpgsql stable as $$
declare
  v_k int := case when cardinality(p_market.outcomes) = 2 then 3 - p_j end;
begin
  expired := false;
  if p_market.resting = 0 or p_skip is null then  -- an empty book (or asked for none)
    return;
  end if;
  if p_side = 'buy' then
    select c.id, c.user_id, c.outcome, c.side, c.price, c.remaining, c.filled,
           c.expires_at <= clock_timestamp(), c.how, c.eff
      into id, user_id, outcome, side, price, remaining, filled, expired, how, eff_price
      from ((select o.*, 'direct' as how, o.price as eff from bj.orders o
              where o.market_id = p_market.id and o.outcome = p_j and o.side = 'sell'
                and o.status = 'open' and o.kind = 'limit' and o.id <> all (p_skip)
              order by o.price, o.id limit 1)
            union all
            (select o.*, 'mint', 1 - o.price from bj.orders o
              where v_k is not null and o.market_id = p_market.id and o.outcome = v_k and o.side = 'buy'
                and o.status = 'open' and o.kind = 'limit' and o.id <> all (p_skip)
              order by o.price desc, o.id limit 1)) c
     order by c.eff, c.id limit 1;
  else
    select c.id, c.user_id, c.outcome, c.side, c.price, c.remaining, c.filled,
           c.expires_at <= clock_timestamp(), c.how, c.eff
      into id, user_id, outcome, side, price, remaining, filled, expired, how, eff_price
      from ((select o.*, 'direct' as how, o.price as eff from bj.orders o
              where o.market_id = p_market.id and o.outcome = p_j and o.side = 'buy'
                and o.status = 'open' and o.kind = 'limit' and o.id <> all (p_skip)
              order by o.price desc, o.id limit 1)
            union all
            (select o.*, 'merge', 1 - o.price from bj.orders o
              where v_k is not null and o.market_id = p_market.id and o.outcome = v_k and o.side = 'sell'
                and o.status = 'open' and o.kind = 'limit' and o.id <> all (p_skip)
              order by o.price, o.id limit 1)) c
     order by c.eff desc, c.id limit 1;
  end if;
  expired := coalesce(expired, false);
end $$;

---------------------------------------------------------------------------------------------
-- The book's changes (for streams): a gap-free sequence per market, one number per transaction

-- Change a price level by a resting order's change (p_shares resting shares, p_orders orders;
-- negative: they left it), and record the level as it is after, under this transaction's
-- number in the market's book sequence (taken at its first change of that market's book,
-- under the market's lock, and kept in a transaction-local setting).
drop function if exists bj.touch_level(bigint, int, text, numeric);
create or replace function bj.touch_level(p_market bigint, p_outcome int, p_side text, p_price numeric,
                                          p_shares numeric, p_orders int)
returns void
language plpgsql as $$
declare
  v_seq bigint := nullif(current_setting('bj.book_seq_' || p_market, true), '')::bigint;
  v_shares numeric;
  v_orders int;
begin
  if v_seq is null then
    update bj.markets m set book_seq = m.book_seq + 1, version = m.version + 1,
                            changed_xid = pg_current_xact_id()
     where m.id = p_market returning m.book_seq into v_seq;
    perform set_config('bj.book_seq_' || p_market, v_seq::text, true);
  end if;
  insert into bj.book_levels as l (market_id, outcome, side, price, shares, orders)
  values (p_market, p_outcome, p_side, p_price, p_shares, p_orders)
  on conflict (market_id, outcome, side, price)
  do update set shares = l.shares + excluded.shares, orders = l.orders + excluded.orders
  returning l.shares, l.orders into v_shares, v_orders;
  insert into bj.book_changes as c (market_id, seq, outcome, side, price, shares, orders)
  values (p_market, v_seq, p_outcome, p_side, p_price, v_shares, v_orders)
  on conflict (market_id, seq, outcome, side, price)
  do update set shares = excluded.shares, orders = excluded.orders;
end $$;

---------------------------------------------------------------------------------------------
-- Escrow

-- What a resting order must lock: a bid its cost and its maker fee, rounded up; an ask the
-- shares it sells out of the position held (p_held), and beyond it a short's full collateral,
-- 1 per share (its proceeds come when it fills).
create or replace function bj.escrow_for(p_market bj.markets, p_side text, p_price numeric,
                                         p_shares numeric, p_held numeric,
                                         out cash numeric, out shares numeric)
language plpgsql immutable as $$
declare
  v_cost numeric;
begin
  if p_side = 'buy' then
    v_cost := bj.ceil6(p_price * p_shares);
    cash := v_cost + bj.ceil6(v_cost * p_market.maker_fee_rate);
    shares := 0;
  else
    shares := least(p_shares, greatest(p_held, 0));
    cash := p_shares - shares;
  end if;
end $$;

-- Rest what remains of an order on the book: lock its escrow (coins from the trader's cash,
-- shares from their position, each a posting to order:O) and count it in the market's book.
-- Answers what it locked; the caller writes the order's row with it (bj.submit_order). The
-- trader's and the market's rows are locked by the caller.
drop function if exists bj.rest_order(bigint, bj.markets, bj.orders);
create or replace function bj.rest_order(p_journal bigint, p_market bj.markets, p_order bigint,
                                         p_user bigint, p_j int, p_side text, p_price numeric,
                                         p_remaining numeric, out cash numeric, out shares numeric)
language plpgsql as $$
declare
  v_held numeric;
  v_balance numeric;
  v_escrow record;
begin
  select coalesce((select p.shares from bj.positions p
                    where p.user_id = p_user and p.market_id = p_market.id and p.outcome = p_j), 0),
         u.balance
    into v_held, v_balance
    from bj.users u where u.id = p_user;
  v_escrow := bj.escrow_for(p_market, p_side, p_price, p_remaining, v_held);
  if v_escrow.shares < p_remaining and p_side = 'sell'
     and not (select m.shorts from bj.pricing_models m where m.name = p_market.pricing) then
    perform bj.raise('BJ005', format('you hold %s shares of %s, and this market allows no short sales',
                                     v_held, p_market.outcomes[p_j]));
  end if;
  if v_escrow.cash > v_balance then
    perform bj.raise('BJ001', format('resting this order locks %s, available %s',
                                     v_escrow.cash::numeric(24, 6), v_balance));
  end if;
  perform bj.post(p_journal, 'escrow', 'coin', bj.cash_account(p_user),
                  bj.order_account(p_order), v_escrow.cash, p_user, p_market.id);
  perform bj.post(p_journal, 'escrow', bj.share_asset(p_market.id, p_j),
                  bj.position_account(p_user, p_market.id, p_j),
                  bj.order_account(p_order), v_escrow.shares, p_user, p_market.id);
  update bj.users u set balance = u.balance - v_escrow.cash where u.id = p_user;
  if v_escrow.shares > 0 then
    update bj.positions p set shares = p.shares - v_escrow.shares
     where p.user_id = p_user and p.market_id = p_market.id and p.outcome = p_j;
  end if;
  update bj.markets m set resting = m.resting + 1 where m.id = p_market.id;
  perform bj.touch_level(p_market.id, p_j, p_side, p_price, p_remaining, 1);
  cash := v_escrow.cash;
  shares := v_escrow.shares;
end $$;

-- Close an order: 'filled' (nothing remains) or 'cancelled' (with its reason: what remains will
-- never execute). Whatever it still locks goes back to its trader (coins to cash, shares to the
-- position, and with them any collateral those shares make needless), and a resting order
-- leaves the market's book. The order's and its trader's rows
-- are locked by the caller, and so is the market's if it rested.
create or replace function bj.close_order(p_journal bigint, p_order bj.orders, p_status text,
                                          p_reason text)
returns bj.orders
language plpgsql as $$
declare
  v_order bj.orders;
begin
  perform bj.post(p_journal, 'release', 'coin', bj.order_account(p_order.id),
                  bj.cash_account(p_order.user_id), p_order.locked_cash, p_order.user_id, p_order.market_id);
  perform bj.post(p_journal, 'release', bj.share_asset(p_order.market_id, p_order.outcome),
                  bj.order_account(p_order.id),
                  bj.position_account(p_order.user_id, p_order.market_id, p_order.outcome),
                  p_order.locked_shares, p_order.user_id, p_order.market_id);
  if p_order.locked_cash > 0 then
    update bj.users u set balance = u.balance + p_order.locked_cash where u.id = p_order.user_id;
  end if;
  if p_order.locked_shares > 0 then
    insert into bj.positions as p (user_id, market_id, outcome, shares)
    values (p_order.user_id, p_order.market_id, p_order.outcome, p_order.locked_shares)
    on conflict (user_id, market_id, outcome) do update set shares = p.shares + excluded.shares;
    -- shares back may cover a short taken while they were locked: its collateral comes free
    perform bj.settle_collateral(p_journal, p_order.user_id, p_order.market_id);
  end if;
  update bj.orders o
     set status = p_status, reason = p_reason, cancelled = o.shares - o.filled,
         locked_cash = 0, locked_shares = 0, done_at = clock_timestamp()
   where o.id = p_order.id returning * into v_order;
  if p_order.status = 'open' and p_order.kind = 'limit' then  -- it rested on the book
    update bj.markets m set resting = m.resting - 1 where m.id = p_order.market_id;
    perform bj.touch_level(p_order.market_id, p_order.outcome, p_order.side, p_order.price,
                           -p_order.remaining, -1);
  end if;
  return v_order;
end $$;

-- Cancel the resting orders a plan met and cannot fill against: the taker's own (self-trade
-- prevention, stp cancel_resting) and expired ones. Their traders' rows are locked already
-- (bj.lock_traders).
create or replace function bj.cancel_met(p_journal bigint, p_plan bj.take_plan, p_by text)
returns void
language plpgsql as $$
declare
  v_other bj.orders;
begin
  if coalesce(cardinality(p_plan.own_cancels), 0) = 0 then
    return;
  end if;
  for v_other in select * from bj.orders o where o.id = any (p_plan.own_cancels) order by o.id for no key update loop
    perform bj.close_order(p_journal, v_other, 'cancelled',
      case when v_other.expires_at <= clock_timestamp() then 'expired'
           else 'self-trade prevention: met by ' || p_by end);
  end loop;
end $$;

---------------------------------------------------------------------------------------------
-- Orders as clients see them

-- An order: its terms, its state (filled + remaining + cancelled = shares), what it locks, and
-- its fills ({trade_id, price, shares, counterparty}: 'book' or 'amm'), oldest first.
create or replace function bj.order_json(p_order bj.orders) returns jsonb
language plpgsql stable as $$
begin
  return (select jsonb_strip_nulls(jsonb_build_object(
           'order_id', p_order.id, 'client_order_id', p_order.client_order_id, 'market', m.code,
           'outcome', m.outcomes[p_order.outcome], 'kind', p_order.kind, 'side', p_order.side,
           'price', p_order.price, 'shares', p_order.shares, 'filled', p_order.filled,
           'remaining', case when p_order.status = 'open' then p_order.remaining else 0 end,
           'cancelled', p_order.cancelled, 'status', p_order.status, 'reason', p_order.reason,
           'time_in_force', p_order.time_in_force, 'expires_at', p_order.expires_at,
           'post_only', p_order.post_only, 'persistence', p_order.persistence, 'stp', p_order.stp,
           'direction', p_order.direction, 'trigger_price', p_order.trigger_price,
           'trade_id', p_order.trade_id,
           'locked', jsonb_build_object('cash', p_order.locked_cash, 'shares', p_order.locked_shares),
           'created_at', p_order.created_at, 'done_at', p_order.done_at))
         || jsonb_build_object('fills', coalesce((
              select jsonb_agg(jsonb_build_object(
                       'trade_id', t.id, 'price', coalesce(t.price, round(t.amount / t.shares, 9)),
                       'shares', t.shares, 'counterparty', case t.how when 'amm' then 'amm' else 'book' end)
                       order by t.id)
                from bj.trades t where t.order_id = p_order.id and t.user_id = p_order.user_id), '[]'))
    from bj.markets m where m.id = p_order.market_id);
end $$;

---------------------------------------------------------------------------------------------
-- Placing

-- Submit an order on a locked, open market: take what is marketable (bj.plan_fills and the
-- taking path's check and post), then rest what remains (gtc, gtd) with its escrow, or cancel it
-- (ioc, fok, market orders). The order's row is written once, at the end, with its fate (so the
-- router never meets it, and an order that takes and goes costs one insert): its trades, written
-- before it, name the id it is given first. p_cooldown_ms: the trader's cooldown, checked if the
-- order takes (null: not checked, as for a batch's later orders or a fired stop). p_root: the
-- trade that fired it, if any; p_existing: the fired stop-limit whose row it becomes.
-- p_held: the transaction holds the trader's row already (an earlier order of its batch).
-- Returns the order's row; the caller answers with bj.order_json.
drop function if exists bj.submit_order(bigint, bj.markets, int, text, text, numeric, numeric, text, timestamptz,
                                         boolean, text, text, text, jsonb, numeric, bigint, bigint);
create or replace function bj.submit_order(
  p_user bigint, p_market bj.markets, p_j int, p_side text, p_kind text, p_shares numeric,
  p_price numeric, p_tif text, p_expires_at timestamptz, p_post_only boolean, p_persistence text,
  p_client_order_id text, p_stp text, p_request jsonb, p_cooldown_ms numeric, p_root bigint,
  p_existing bigint default null, p_held boolean default false)
returns bj.orders
language plpgsql as $$
declare
  v_id bigint := coalesce(p_existing, nextval('bj.orders_id_seq'));
  v_order bj.orders;
  v_plan bj.take_plan;
  v_account bj.take_account;
  v_trade bigint;
  v_crossed boolean := false;
  v_journal bigint := nextval('bj.journal_seq');
  v_status text := 'cancelled';
  v_reason text;
  v_locked_cash numeric := 0;
  v_locked_shares numeric := 0;
  v_fired jsonb;
begin
  -- take what is marketable, up to the order's price (a market order: any)
  v_plan := bj.plan_fills(p_market, p_j, p_side, p_shares, null, p_price, p_user, p_stp);
  if p_post_only and v_plan.shares > 0 then
    perform bj.raise('BJ014', format('it would fill %s shares now', v_plan.shares::numeric(24, 6)));
  end if;
  if p_tif = 'fok' and v_plan.shares < p_shares then
    perform bj.raise('BJ015', format('%s of %s shares fill now', v_plan.shares::numeric(24, 6), p_shares));
  end if;
  perform bj.lock_traders(v_plan, p_user, p_root is null);
  perform bj.cancel_met(v_journal, v_plan, 'order ' || v_id);
  v_account := bj.check_take(p_market, p_user, p_j, p_side, v_plan,
                             case when v_plan.shares > 0 then p_cooldown_ms end, clock_timestamp(),
                             null, null, p_lock => not p_held);
  if v_plan.shares > 0 then
    select p.trade_id, p.crossed into v_trade, v_crossed
      from bj.post_fills(v_journal, p_market, p_user, p_j, p_side, v_plan, v_account,
                         p_root, v_id, clock_timestamp(), p_root is null) p;
  end if;

  -- what remains rests (gtc, gtd) or is cancelled
  if v_plan.shares = p_shares then
    v_status := 'filled';
  elsif v_plan.stopped_by_stp then
    v_reason := 'self-trade prevention: it met its trader''s resting order';
  elsif p_kind = 'limit' and p_tif in ('gtc', 'gtd') then
    select * into p_market from bj.markets m where m.id = p_market.id;
    select e.cash, e.shares into v_locked_cash, v_locked_shares
      from bj.rest_order(v_journal, p_market, v_id, p_user, p_j, p_side, p_price, p_shares - v_plan.shares) e;
    v_status := 'open';
  else
    v_reason := case when p_kind = 'market' then 'no more liquidity' else 'immediate or cancel' end;
  end if;
  if p_existing is null then
    insert into bj.orders (id, user_id, market_id, outcome, kind, side, shares, price, time_in_force,
                           expires_at, post_only, persistence, client_order_id, stp, request, status,
                           reason, filled, cancelled, locked_cash, locked_shares, done_at)
    overriding system value
    values (v_id, p_user, p_market.id, p_j, p_kind, p_side, p_shares, p_price, p_tif, p_expires_at,
            p_post_only, p_persistence, p_client_order_id, p_stp, p_request, v_status, v_reason,
            v_plan.shares, case v_status when 'cancelled' then p_shares - v_plan.shares else 0 end,
            v_locked_cash, v_locked_shares,
            case when v_status <> 'open' then clock_timestamp() end)
    returning * into v_order;
  else  -- a fired stop-limit becomes the limit order it names (what it does not cover is cancelled)
    update bj.orders o
       set kind = 'limit', price = p_price, status = v_status, reason = v_reason, filled = v_plan.shares,
           cancelled = case v_status when 'open' then o.cancelled else o.shares - v_plan.shares end,
           locked_cash = v_locked_cash, locked_shares = v_locked_shares,
           done_at = case when v_status <> 'open' then clock_timestamp() end
     where o.id = v_id returning * into v_order;
  end if;

  -- a root order whose fills cross conditional orders fires them
  if v_crossed then
    v_fired := bj.run_cascade(v_trade, p_market.code, to_jsonb(v_plan.prices_after));
  end if;
  return v_order;
end $$;

-- Place an order of any kind (the contract's api.place_order): a limit or market order, in the
-- price form (side buy/sell, shares, price) or the betting form (side back/lay, odds, stake:
-- back at odds o with stake s buys s·o shares at 1/o, lay sells them, its liability s·(o − 1);
-- the price snaps to the market's tick in the bettor's favour), or a conditional order
-- (bj.place_conditional). A client_order_id makes it idempotent like a trade's key: a retry
-- with the same terms returns the order as it is now, other terms are refused (BJ004).
-- p_held_market, p_held_trader: the transaction holds the market's row, the trader's row, already
-- (bj.place_orders locks its markets first, and its first order the trader).
drop function if exists bj.place_order(bigint, text, text, text, text, numeric, numeric, numeric, numeric, text,
                                        timestamptz, boolean, text, text, text, numeric, numeric, numeric);
create or replace function bj.place_order(
  p_user bigint, p_market text, p_outcome text, p_side text, p_kind text, p_shares numeric,
  p_price numeric, p_odds numeric, p_stake numeric, p_tif text, p_expires_at timestamptz,
  p_post_only boolean, p_persistence text, p_client_order_id text, p_stp text,
  p_trigger_price numeric, p_limit_price numeric, p_cooldown_ms numeric,
  p_held_market boolean default false, p_held_trader boolean default false)
returns jsonb
language plpgsql as $$
declare
  v_kind text := coalesce(p_kind, 'limit');
  v_side text := p_side;
  v_shares numeric := p_shares;
  v_price numeric := p_price;
  v_tif text := coalesce(p_tif, case p_kind when 'market' then 'ioc' else 'gtc' end);  -- a market order never rests
  v_request jsonb;
  v_stored bj.idempotency;
  v_market bj.markets;
  v_j int;
  v_order bj.orders;
  v_answer jsonb;
begin
  if v_kind not in ('limit', 'market', 'stop_loss', 'take_profit') then
    perform bj.raise('BJ021', 'kind must be limit, market, stop_loss or take_profit');
  end if;
  if p_client_order_id is not null and length(p_client_order_id) not between 1 and 64 then
    perform bj.raise('BJ021', 'client_order_id must be 1 to 64 characters');
  end if;
  -- the same client_order_id: the same order, once
  if p_client_order_id is not null then
    v_request := jsonb_build_object('market', p_market, 'outcome', p_outcome, 'side', p_side,
      'kind', v_kind, 'shares', p_shares, 'price', p_price, 'odds', p_odds, 'stake', p_stake,
      'time_in_force', v_tif, 'expires_at', p_expires_at, 'post_only', coalesce(p_post_only, false),
      'persistence', coalesce(p_persistence, 'persist'), 'stp', coalesce(p_stp, 'cancel_resting'),
      'trigger_price', p_trigger_price, 'limit_price', p_limit_price);
    insert into bj.idempotency (user_id, key, request) values (p_user, 'order:' || p_client_order_id, v_request)
    on conflict do nothing;
    if not found then
      select * into v_stored from bj.idempotency i
       where i.user_id = p_user and i.key = 'order:' || p_client_order_id;
      if v_stored.request <> v_request then
        perform bj.raise('BJ004', format('client_order_id %s was first used for %s', p_client_order_id, v_stored.request));
      end if;
      select * into v_order from bj.orders o
       where o.user_id = p_user and o.client_order_id = p_client_order_id;
      return bj.order_json(v_order) || jsonb_build_object('replayed', true);
    end if;
  end if;

  if v_kind in ('stop_loss', 'take_profit') then
    v_answer := bj.place_conditional(p_user, p_market, p_outcome, v_side, v_kind, p_shares,
                                     p_trigger_price, p_limit_price, p_client_order_id);
  else
    -- the betting form: back / lay at decimal odds with a stake
    if v_side in ('back', 'lay') then
      if p_shares is not null or p_price is not null then
        perform bj.raise('BJ021', 'the betting form takes odds and stake, not shares and price');
      end if;
      if p_odds is null or not bj.on_ladder(p_odds) then
        perform bj.raise('BJ021', 'odds must lie on the ladder: 1.01-2 by 0.01, 2-3 by 0.02, 3-4 by 0.05, '
                                  '4-6 by 0.1, 6-10 by 0.2, 10-20 by 0.5, 20-30 by 1, 30-50 by 2, 50-100 by 5, 100-1000 by 10');
      end if;
      if p_stake is null or p_stake <= 0 or p_stake > 1000000000 or p_stake <> round(p_stake, 6) then
        perform bj.raise('BJ020', 'stake must be positive, at most 1e9, with at most 6 decimals');
      end if;
      v_shares := bj.floor6(p_stake * p_odds);
    elsif p_odds is not null or p_stake is not null then
      perform bj.raise('BJ021', 'odds and stake go with side back or lay');
    end if;
    if v_side is null or v_side not in ('buy', 'sell', 'back', 'lay') then
      perform bj.raise('BJ021', 'side must be buy, sell, back or lay');
    end if;
    if v_shares is null or v_shares <= 0 or v_shares > 1000000000 or v_shares <> round(v_shares, 6) then
      perform bj.raise('BJ020', 'shares must be positive, at most 1e9, with at most 6 decimals');
    end if;
    if v_tif not in ('gtc', 'gtd', 'ioc', 'fok') then
      perform bj.raise('BJ021', 'time_in_force must be gtc, gtd, ioc or fok');
    end if;
    if (v_tif = 'gtd') <> (p_expires_at is not null) then
      perform bj.raise('BJ021', 'expires_at goes with time_in_force gtd, and only with it');
    end if;
    if p_expires_at <= clock_timestamp() then
      perform bj.raise('BJ021', 'expires_at must lie in the future');
    end if;
    if coalesce(p_persistence, 'persist') not in ('persist', 'lapse') then
      perform bj.raise('BJ021', 'persistence must be persist or lapse');
    end if;
    if coalesce(p_stp, 'cancel_resting') not in ('cancel_resting', 'cancel_newest') then
      perform bj.raise('BJ021', 'stp must be cancel_resting or cancel_newest');
    end if;
    if v_kind = 'market' and (p_price is not null or v_side in ('back', 'lay') or v_tif in ('gtc', 'gtd')
                              or p_post_only) then
      perform bj.raise('BJ021', 'a market order takes shares only, and is ioc or fok');
    end if;
    if coalesce(p_post_only, false) and v_tif in ('ioc', 'fok') then
      perform bj.raise('BJ021', 'a post-only order rests: gtc or gtd');
    end if;
    if p_trigger_price is not null or p_limit_price is not null then
      perform bj.raise('BJ021', 'trigger_price and limit_price go with stop_loss and take_profit');
    end if;

    v_market := bj.lock_market(p_market, p_held_market);
    v_j := bj.outcome_index(v_market, p_outcome);
    perform bj.require_open(v_market);
    if v_side = 'back' then
      v_side := 'buy';
      v_price := greatest(v_market.tick, floor(1 / p_odds / v_market.tick) * v_market.tick);
    elsif v_side = 'lay' then
      v_side := 'sell';
      v_price := least(1 - v_market.tick, ceil(1 / p_odds / v_market.tick) * v_market.tick);
    end if;
    if v_kind = 'limit' then
      perform bj.check_price(v_market, v_price);
    end if;
    v_order := bj.submit_order(p_user, v_market, v_j, v_side, v_kind, v_shares, v_price,
                               v_tif,
                               p_expires_at, coalesce(p_post_only, false), coalesce(p_persistence, 'persist'),
                               p_client_order_id, coalesce(p_stp, 'cancel_resting'),
                               jsonb_build_object('odds', p_odds, 'stake', p_stake), p_cooldown_ms, null,
                               p_held => p_held_trader);
    v_answer := bj.order_json(v_order);
    if p_odds is not null then
      v_answer := v_answer || jsonb_build_object('odds', p_odds, 'stake', p_stake,
        'liability', case p_side when 'back' then p_stake else bj.ceil6(p_stake * (p_odds - 1)) end);
    end if;
  end if;
  if p_client_order_id is not null then
    update bj.idempotency i set response = v_answer
     where i.user_id = p_user and i.key = 'order:' || p_client_order_id;
  end if;
  return v_answer;
end $$;

-- A batch (api.place_orders): up to 20 orders in one transaction, each in its own
-- subtransaction, answered in order: the order's JSON, or its error {code, message, details,
-- hint} (a refused order changes nothing and never stops the others). The batch queues for its
-- markets and locks their rows first, in id order (bj.queue_market); the trader's row is locked
-- by the first order placed; the later orders lock neither again (architecture.md §16). The
-- trader's cooldown is checked once, for the batch. The first order
-- locks the traders it meets as a single order does; a later one, holding the earlier ones'
-- traders already, waits at most 100 ms for the others it meets (so two batches, or a batch and
-- a trade, never wait on each other in a cycle): past that it fails alone, as busy (55P03).
create or replace function bj.place_orders(p_user bigint, p_orders jsonb) returns jsonb
language plpgsql as $$
declare
  v_item jsonb;
  v_out jsonb := '[]';
  v_code text;
  v_message text;
  v_detail text;
  v_hint text;
  v_first boolean := true;
  v_answer jsonb;
  v_market bigint;
  v_trader_held boolean := false;
begin
  if jsonb_typeof(p_orders) is distinct from 'array' or jsonb_array_length(p_orders) not between 1 and 20 then
    perform bj.raise('BJ021', 'orders must be an array of 1 to 20 orders');
  end if;
  if exists (select 1 from jsonb_array_elements(p_orders) e where jsonb_typeof(e) <> 'object'
               or exists (select 1 from jsonb_object_keys(e) k
                           where k not in ('market', 'outcome', 'side', 'kind', 'shares', 'price', 'odds',
                                           'stake', 'time_in_force', 'expires_at', 'post_only',
                                           'persistence', 'client_order_id', 'stp', 'trigger_price',
                                           'limit_price'))) then
    perform bj.raise('BJ021', 'each order is an object of place_order''s arguments');
  end if;
  -- the batch's markets, queued for and locked in id order at the top level, by writing each row
  -- as it is, so that the orders (subtransactions) write them without locking them again
  -- (architecture.md §16)
  for v_market in select m.id from bj.markets m
                   where m.code = any (array(select e ->> 'market' from jsonb_array_elements(p_orders) e))
                   order by m.id loop
    perform bj.queue_market(v_market);
    update bj.markets m set version = m.version where m.id = v_market;
  end loop;
  for v_item in select e from jsonb_array_elements(p_orders) e loop
    begin
      v_answer := bj.place_order(p_user, v_item ->> 'market', v_item ->> 'outcome',
        v_item ->> 'side', v_item ->> 'kind', (v_item ->> 'shares')::numeric, (v_item ->> 'price')::numeric,
        (v_item ->> 'odds')::numeric, (v_item ->> 'stake')::numeric, v_item ->> 'time_in_force',
        (v_item ->> 'expires_at')::timestamptz, (v_item ->> 'post_only')::boolean,
        v_item ->> 'persistence', v_item ->> 'client_order_id', v_item ->> 'stp',
        (v_item ->> 'trigger_price')::numeric, (v_item ->> 'limit_price')::numeric,
        case when v_first then bj.setting('trade_cooldown_ms')::numeric end,
        p_held_market => true, p_held_trader => v_trader_held);
      v_out := v_out || jsonb_build_array(v_answer);
      -- a limit or market order placed (not a replay) locked its trader's row (bj.check_take):
      -- the later orders do not lock it again
      v_trader_held := v_trader_held or not v_answer ? 'replayed'
                       and coalesce(v_item ->> 'kind', 'limit') in ('limit', 'market');
      if v_first then
        v_first := false;
        perform set_config('lock_timeout', '100ms', true);
      end if;
    exception when others then
      get stacked diagnostics v_code = returned_sqlstate, v_message = message_text,
                              v_detail = pg_exception_detail, v_hint = pg_exception_hint;
      if v_code like '40%' or v_code like '53%' or v_code like '57%' or v_code like '08%' then
        raise;  -- not the order's fault: the batch fails, to be retried whole
      elsif v_code = '55P03' then
        v_message := 'a trader this order meets is busy';
        v_detail := null;
        v_hint := 'place it again';
      end if;
      v_out := v_out || jsonb_build_array(jsonb_build_object('code', v_code, 'message', v_message,
                 'details', nullif(v_detail, ''), 'hint', nullif(v_hint, '')));
    end;
  end loop;
  return v_out;
end $$;

---------------------------------------------------------------------------------------------
-- Cancelling

drop function if exists bj.cancel_order(bigint, bigint);
-- Cancel one of the trader's own open orders, by id or by client_order_id: what it still
-- locks comes back. Another trader's order is answered as unknown, as a missing one is.
create or replace function bj.cancel_order(p_user bigint, p_order bigint, p_client_order_id text default null)
returns jsonb
language plpgsql as $$
declare
  v_order bj.orders;
begin
  if (p_order is null) = (p_client_order_id is null) then
    perform bj.raise('BJ021', 'give order_id or client_order_id');
  end if;
  -- the market first, as everywhere
  perform 1 from bj.markets m
   where m.id = (select o.market_id from bj.orders o
                  where o.user_id = p_user and (o.id = p_order or o.client_order_id = p_client_order_id))
     for no key update;
  select * into v_order from bj.orders o
   where o.user_id = p_user and (o.id = p_order or o.client_order_id = p_client_order_id)
     for no key update;
  if not found then
    perform bj.raise('BJ012', format('order %s', coalesce(p_order::text, p_client_order_id)));
  end if;
  if v_order.status <> 'open' then
    perform bj.raise('BJ007', format('order %s is %s', v_order.id, v_order.status));
  end if;
  perform 1 from bj.users u where u.id = p_user for no key update;
  v_order := bj.close_order(nextval('bj.journal_seq'), v_order, 'cancelled', 'cancelled by the trader');
  return bj.order_json(v_order);
end $$;

-- Cancel several of the trader's open orders: every one, one market's, or a list of ids (at
-- most 100). Answers each cancelled order's id.
create or replace function bj.cancel_orders(p_user bigint, p_market text, p_ids bigint[]) returns jsonb
language plpgsql as $$
declare
  v_market bj.markets;
  v_order bj.orders;
  v_journal bigint := nextval('bj.journal_seq');
  v_done bigint[] := '{}';
begin
  if cardinality(p_ids) > 100 then
    perform bj.raise('BJ021', 'at most 100 order ids');
  end if;
  if p_market is not null then
    v_market := bj.find_market(p_market);
  end if;
  perform 1 from bj.markets m
   where m.id = any (array(select o.market_id from bj.orders o
                            where o.user_id = p_user and o.status = 'open'
                              and (v_market.id is null or o.market_id = v_market.id)
                              and (p_ids is null or o.id = any (p_ids))))
   order by m.id for no key update;
  perform 1 from bj.users u where u.id = p_user for no key update;
  for v_order in select * from bj.orders o
                  where o.user_id = p_user and o.status = 'open'
                    and (v_market.id is null or o.market_id = v_market.id)
                    and (p_ids is null or o.id = any (p_ids))
                  order by o.id for no key update loop
    perform bj.close_order(v_journal, v_order, 'cancelled', 'cancelled by the trader');
    v_done := v_done || v_order.id;
  end loop;
  return jsonb_build_object('cancelled', to_jsonb(v_done));
end $$;

---------------------------------------------------------------------------------------------
-- Reading the book

-- A market's book: for each outcome, its bids and asks aggregated by price (best first, at
-- most p_depth levels each; in a binary market the other outcome's orders count at their
-- complement, as they fill), and, where there is a market maker, the shares it would sell from
-- its price up to each ask level (and buy down to each bid level): {from, to, shares}. The
-- book's sequence number counts its changes. In the odds format, asks read as back offers and
-- bids as lay offers, at odds snapped to the ladder.
create or replace function bj.book_json(p_market bj.markets, p_outcome text, p_depth int, p_format text)
returns jsonb
language plpgsql stable as $$
declare
  v_out jsonb := '[]';
  v_j int;
  v_maker boolean := (select m.market_maker from bj.pricing_models m where m.name = p_market.pricing);
  v_prices numeric[] := bj.market_prices(p_market);
  v_binary boolean := cardinality(p_market.outcomes) = 2;
  v_bids jsonb;
  v_asks jsonb;
  v_amm jsonb;
begin
  if p_depth is null or p_depth not between 1 and 100 then
    perform bj.raise('BJ021', 'depth must lie between 1 and 100');
  end if;
  if coalesce(p_format, 'price') not in ('price', 'odds') then
    perform bj.raise('BJ021', 'format must be price or odds');
  end if;
  for v_j in select i from generate_series(1, cardinality(p_market.outcomes)) i
              where p_outcome is null or p_market.outcomes[i] = p_outcome loop
    -- the levels (bj.book_levels), less the expired orders the sweep has not closed yet
    with resting as (
      select l.outcome, l.side, l.price, l.shares, l.orders from bj.book_levels l
       where l.market_id = p_market.id and l.outcome in (v_j, 3 - v_j) and l.orders > 0
      union all
      select o.outcome, o.side, o.price, -o.remaining, -1 from bj.orders o
       where o.status = 'open' and o.expires_at <= clock_timestamp() and o.market_id = p_market.id
         and o.kind = 'limit' and o.outcome in (v_j, 3 - v_j)
    ), levels as (
      select case when r.outcome = v_j then r.side when r.side = 'buy' then 'sell' else 'buy' end as side,
             case when r.outcome = v_j then r.price else 1 - r.price end as price,
             sum(r.shares) as shares, sum(r.orders) as orders
        from resting r
       where r.outcome = v_j or v_binary
       group by 1, 2 having sum(r.orders) > 0
    )
    select (select coalesce(jsonb_agg(jsonb_build_object('price', l.price, 'shares', l.shares::numeric(24, 6),
                                                         'orders', l.orders) order by l.price desc), '[]')
              from (select * from levels where side = 'buy' order by price desc limit p_depth) l),
           (select coalesce(jsonb_agg(jsonb_build_object('price', l.price, 'shares', l.shares::numeric(24, 6),
                                                         'orders', l.orders) order by l.price), '[]')
              from (select * from levels where side = 'sell' order by price limit p_depth) l)
      into v_bids, v_asks;
    v_amm := '[]';
    if v_maker then
      -- the market maker between its price and each level, asks upward, bids downward
      select coalesce(jsonb_agg(jsonb_build_object('from', a.lo::numeric(12, 9), 'to', a.hi::numeric(12, 9),
               'side', a.side, 'shares', a.shares::numeric(24, 6)) order by a.side desc, a.n), '[]')
        into v_amm
        from (select 'sell' as side, n, lo, hi,
                     bj.floor6(bj.curve_shares_to(p_market.pricing, p_market.q, p_market.liquidity, v_j, hi)
                               - bj.curve_shares_to(p_market.pricing, p_market.q, p_market.liquidity, v_j, lo)) as shares
                from (select n, coalesce(lag(p) over (order by n), v_prices[v_j]) as lo, p as hi
                        from (select row_number() over (order by (l ->> 'price')::numeric) as n,
                                     (l ->> 'price')::numeric as p
                                from jsonb_array_elements(v_asks) l
                               where (l ->> 'price')::numeric > v_prices[v_j]) x) y
              union all
              select 'buy', n, lo, hi,
                     bj.floor6(bj.curve_shares_to(p_market.pricing, p_market.q, p_market.liquidity, v_j, hi)
                               - bj.curve_shares_to(p_market.pricing, p_market.q, p_market.liquidity, v_j, lo))
                from (select n, p as lo, coalesce(lag(p) over (order by n), v_prices[v_j]) as hi
                        from (select row_number() over (order by (l ->> 'price')::numeric desc) as n,
                                     (l ->> 'price')::numeric as p
                                from jsonb_array_elements(v_bids) l
                               where (l ->> 'price')::numeric < v_prices[v_j]) x) y) a
       where a.shares > 0;
    end if;
    if coalesce(p_format, 'price') = 'odds' then
      -- asks are what a backer can take, bids what a layer can
      v_out := v_out || jsonb_build_array(jsonb_build_object('outcome', p_market.outcomes[v_j],
        'price', (bj.display_prices(v_prices))[v_j],
        'back', (select coalesce(jsonb_agg(jsonb_build_object('odds', bj.odds_of((l ->> 'price')::numeric, true),
                   'stake', bj.floor6((l ->> 'shares')::numeric * (l ->> 'price')::numeric),
                   'orders', l -> 'orders')), '[]') from jsonb_array_elements(v_asks) l),
        'lay', (select coalesce(jsonb_agg(jsonb_build_object('odds', bj.odds_of((l ->> 'price')::numeric, false),
                  'stake', bj.floor6((l ->> 'shares')::numeric * (l ->> 'price')::numeric),
                  'orders', l -> 'orders')), '[]') from jsonb_array_elements(v_bids) l),
        'amm', v_amm));
    else
      v_out := v_out || jsonb_build_array(jsonb_build_object('outcome', p_market.outcomes[v_j],
        'price', (bj.display_prices(v_prices))[v_j], 'bids', v_bids, 'asks', v_asks, 'amm', v_amm));
    end if;
  end loop;
  return jsonb_build_object('market', p_market.code, 'seq', p_market.book_seq, 'outcomes', v_out);
end $$;

-- A trader's orders: open ones (the default), or of a status ('all': every one), newest first,
-- of one market or all.
create or replace function bj.my_orders(p_user bigint, p_market text, p_status text) returns jsonb
language plpgsql stable as $$
declare
  v_market bj.markets;
begin
  if p_status is not null and p_status not in ('open', 'filled', 'cancelled', 'all') then
    perform bj.raise('BJ021', 'status must be open, filled, cancelled or all');
  end if;
  if p_market is not null then
    v_market := bj.find_market(p_market);
  end if;
  return coalesce((
    select jsonb_agg(bj.order_json(o) order by o.id desc) from bj.orders o
     where o.user_id = p_user and (v_market.id is null or o.market_id = v_market.id)
       and (coalesce(p_status, 'open') = 'all' or o.status = coalesce(p_status, 'open'))), '[]');
end $$;
