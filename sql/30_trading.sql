-- Trading: one trade is one transaction that locks the market row first, then the trader's
-- row, prices the trade with bj.price_trade, and posts it to the ledger.
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
                   from unnest(p_market.outcomes,
                               bj.display_prices(bj.curve_prices(p_market.pricing, p_market.q, p_market.liquidity)),
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

-- The terms of a trade in the market's current state, as a receipt-shaped quote.
create or replace function bj.quote(p_market text, p_outcome text, p_side text, p_shares numeric,
                                    p_spend numeric) returns jsonb
language plpgsql stable as $$
declare
  v_market bj.markets := bj.find_market(p_market);
  v_j int := bj.outcome_index(v_market, p_outcome);
  v_t record;
begin
  -- (market_status_at, not market_status: a STABLE SQL function whose body reads
  -- clock_timestamp() is never inlined, and is planned again in every transaction)
  if bj.market_status_at(v_market, clock_timestamp()) <> 'open' then
    perform bj.raise('BJ002', format('%s is %s', v_market.code, bj.market_status(v_market)));
  end if;
  v_t := bj.price_trade(v_market.pricing, v_market.q, v_market.liquidity, v_market.fee_rate, v_j,
                        p_side, p_shares, p_spend);
  return jsonb_build_object(
    'market', v_market.code, 'outcome', p_outcome, 'side', p_side,
    'shares', v_t.shares::numeric(24, 6), 'amount', v_t.amount::numeric(24, 6),
    'fee', v_t.fee::numeric(24, 6), 'total', v_t.total::numeric(24, 6),
    'avg_price', round(v_t.total / v_t.shares, 9),
    'price_before', (bj.display_prices(bj.curve_prices(v_market.pricing, v_market.q, v_market.liquidity)))[v_j],
    'price_after', (bj.display_prices(v_t.prices_after))[v_j]);
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
  v_user bj.users;
  v_j int;
  v_t record;
  v_now timestamptz;
  v_cooldown numeric;
  v_held record;
  v_new_position numeric;
  v_required numeric;
  v_delta numeric;
  v_cash numeric;
  v_pool numeric;
  v_trade_id bigint;
  v_crossed boolean;
  v_receipt jsonb;
  v_fired jsonb;
  v_journal bigint := nextval('bj.journal_seq');
  v_prices numeric(12, 9)[];
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

  -- 1. the market row, locked first, and the terms of the trade in its state
  select * into v_market from bj.markets m where m.code = p_market for update;
  if not found then
    perform bj.raise('BJ010', p_market);
  end if;
  v_j := bj.outcome_index(v_market, p_outcome);
  -- (market_status_at, not market_status: a STABLE SQL function whose body reads
  -- clock_timestamp() is never inlined, and is planned again in every transaction)
  if bj.market_status_at(v_market, clock_timestamp()) <> 'open' then
    perform bj.raise('BJ002', format('%s is %s', v_market.code, bj.market_status(v_market)));
  end if;
  v_t := bj.price_trade(v_market.pricing, v_market.q, v_market.liquidity, v_market.fee_rate, v_j,
                        p_side, p_shares, p_spend);

  -- 2. the trader's row, then the cooldown
  select * into v_user from bj.users u where u.id = p_user for update;
  if not found or v_user.disabled_at is not null then
    perform bj.raise('BJ026');
  end if;
  v_now := clock_timestamp();
  if v_cooldown > 0 and v_user.last_trade_at > v_now - make_interval(secs => v_cooldown / 1000) then
    perform bj.raise('BJ030', format('next trade allowed after %s', v_user.last_trade_at + make_interval(secs => v_cooldown / 1000)));
  end if;

  -- 3. slippage bounds
  if p_side = 'buy' and v_t.total > p_max_total then
    perform bj.raise('BJ003', format('total %s exceeds max_total %s', v_t.total::numeric(24, 6), p_max_total));
  elsif p_side = 'sell' and v_t.total < p_min_total then
    perform bj.raise('BJ003', format('total %s is below min_total %s', v_t.total::numeric(24, 6), p_min_total));
  end if;

  -- 4. the position, and the collateral its shorts need: the worst payout, max(0, −min_i pos_i)
  select coalesce(max(p.shares) filter (where p.outcome = v_j), 0) as position,
         coalesce(min(p.shares) filter (where p.outcome <> v_j), 0) as others,
         coalesce((select c.amount from bj.collateral c
                    where c.user_id = p_user and c.market_id = v_market.id), 0) as locked
    into v_held
    from bj.positions p where p.user_id = p_user and p.market_id = v_market.id;
  v_new_position := v_held.position + case p_side when 'buy' then v_t.shares else -v_t.shares end;
  if v_new_position < 0 and v_market.pricing <> 'lmsr' then
    perform bj.raise('BJ005', format('you hold %s shares of %s', v_held.position, p_outcome));
  end if;
  v_required := greatest(0, -least(v_new_position, v_held.others));
  v_delta := v_required - v_held.locked;
  v_cash := v_user.balance + case p_side when 'buy' then -v_t.total else v_t.total end - v_delta;
  if v_cash < 0 then
    perform bj.raise('BJ001', format('needs %s, available %s',
      (case p_side when 'buy' then v_t.total else -v_t.total end + v_delta)::numeric(24, 6), v_user.balance));
  end if;
  v_pool := v_market.pool + case p_side when 'buy' then v_t.amount else -v_t.amount end;
  if v_pool < bj.array_max(v_t.q_after) then
    perform bj.raise('BJ006', 'the market''s pool would not cover its payout');
  end if;

  -- 5. write it all in one statement: the trade, its ledger postings and the caches (a short's
  --    collateral row right after it)
  v_prices := bj.display_prices(v_t.prices_after);
  with trade as (
    insert into bj.trades (market_id, user_id, outcome, side, shares, amount, fee, total,
                           prices_after, root_trade_id, order_id)
    values (v_market.id, p_user, v_j, p_side, v_t.shares, v_t.amount, v_t.fee, v_t.total,
            v_prices, p_root, p_order)
    returning id
  ), postings as (
    insert into bj.ledger (journal, kind, asset, credit, debit, amount, user_id, market_id, trade_id)
    select v_journal, l.kind, l.asset, l.credit, l.debit, l.amount, p_user, v_market.id, trade.id
      from trade, (values
        -- a buy: cash pays the pool and the fee; the maker issues the shares
        ('trade', 'coin', 'cash:' || p_user, 'pool:' || v_market.id, v_t.amount, p_side = 'buy'),
        ('fee', 'coin', 'cash:' || p_user, 'fees', v_t.fee, p_side = 'buy'),
        ('trade', format('share:%s:%s', v_market.id, v_j), format('maker:%s:%s', v_market.id, v_j),
                  format('pos:%s:%s:%s', p_user, v_market.id, v_j), v_t.shares, p_side = 'buy'),
        -- a sale: the pool pays the trader and the fee; the shares return to the maker
        ('trade', 'coin', 'pool:' || v_market.id, 'cash:' || p_user, v_t.total, p_side = 'sell'),
        ('fee', 'coin', 'pool:' || v_market.id, 'fees', v_t.fee, p_side = 'sell'),
        ('trade', format('share:%s:%s', v_market.id, v_j), format('pos:%s:%s:%s', p_user, v_market.id, v_j),
                  format('maker:%s:%s', v_market.id, v_j), v_t.shares, p_side = 'sell'),
        -- collateral follows the worst payout of the trader's shorts
        ('collateral', 'coin', 'cash:' || p_user, format('coll:%s:%s', p_user, v_market.id), v_delta, v_delta > 0),
        ('collateral', 'coin', format('coll:%s:%s', p_user, v_market.id), 'cash:' || p_user, -v_delta, v_delta < 0)
      ) l(kind, asset, credit, debit, amount, applies)
     where l.applies and l.amount > 0
  ), trader as (
    update bj.users u set balance = v_cash,
                          last_trade_at = case when p_root is null then v_now else u.last_trade_at end
     where u.id = p_user
  ), position as (
    insert into bj.positions as p (user_id, market_id, outcome, shares, cost_basis)
    values (p_user, v_market.id, v_j, v_new_position,
            case p_side when 'buy' then v_t.total else -v_t.total end)
    on conflict (user_id, market_id, outcome) do update
       set shares = excluded.shares, cost_basis = p.cost_basis + excluded.cost_basis
  ), market as (
    update bj.markets m
       set q = v_t.q_after, pool = v_pool, volume = m.volume + v_t.amount, version = m.version + 1,
           changed_xid = pg_current_xact_id()
     where m.id = v_market.id
  )
  -- and, for a root trade, whether its prices cross an open order: one probe of the index on
  -- (market, outcome, falls, trigger) per outcome and direction
  select trade.id,
         p_cascade and exists (
           select 1 from unnest(v_prices) with ordinality pr(price, i)
            where exists (select 1 from bj.orders o
                           where o.market_id = v_market.id and o.outcome = pr.i and o.status = 'open'
                             and o.falls and o.trigger_price >= pr.price)
               or exists (select 1 from bj.orders o
                           where o.market_id = v_market.id and o.outcome = pr.i and o.status = 'open'
                             and not o.falls and o.trigger_price <= pr.price))
    into v_trade_id, v_crossed
    from trade;
  -- only a short moves collateral: the rest never pay for this statement
  if v_delta <> 0 then
    insert into bj.collateral as c (user_id, market_id, amount)
    values (p_user, v_market.id, v_required)
    on conflict (user_id, market_id) do update set amount = excluded.amount;
  end if;

  v_receipt := jsonb_build_object(
    'trade_id', v_trade_id, 'market', v_market.code, 'outcome', p_outcome, 'side', p_side,
    'shares', v_t.shares::numeric(24, 6), 'amount', v_t.amount::numeric(24, 6),
    'fee', v_t.fee::numeric(24, 6), 'total', v_t.total::numeric(24, 6),
    'avg_price', round(v_t.total / v_t.shares, 9), 'price_after', v_prices[v_j],
    'prices_after', to_jsonb(v_prices),
    'balance', v_cash::numeric(24, 6), 'locked', v_required::numeric(24, 6),
    'position', v_new_position::numeric(24, 6), 'root_trade_id', p_root, 'order_id', p_order,
    'triggered', '[]'::jsonb);
  if v_crossed then
    v_fired := bj.run_cascade(v_trade_id, v_market.code, to_jsonb(v_prices));
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
