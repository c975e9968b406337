-- Conditional orders: stop-loss and take-profit, fired inside the trade that crosses them, as a
-- market order through the router (or, a stop-limit, as the limit order it names).
-- A stop-loss on a long fires when the price falls to or below its trigger, on a short when it
-- rises to or above it; a take-profit is the mirror image. Firing sells (long) or buys (short)
-- up to the order's shares, never more than the position then held.
-- After every trade, the market's crossed orders fire one at a time at the prices of that
-- moment: deepest crossed first (the order the price passed first), then oldest. Each fired
-- trade may move the price and cross more; all of them, at every level, count against
-- max_cascade per root trade, and what the bound leaves fires on the market's next trade.
-- Invariant kept here: an order fires at most once; a fired order that cannot execute is
-- cancelled with its reason and never aborts the root trade.

-- Place a conditional order on a position the trader holds: it protects the position as it
-- is (a long or a short), and fires on the price of the market (its market maker's, or where a
-- book market last traded). p_side, if given, must be the side that closes the position.
-- p_limit_price makes it a stop-limit: fired, it is a limit order at that price (resting for
-- what it cannot fill at once) rather than a market order.
drop function if exists bj.place_order(bigint, text, text, text, numeric, numeric);
create or replace function bj.place_conditional(
  p_user bigint, p_market text, p_outcome text, p_side text, p_kind text, p_shares numeric,
  p_trigger numeric, p_limit_price numeric, p_client_order_id text)
returns jsonb
language plpgsql as $$
declare
  v_market bj.markets := bj.lock_market(p_market);
  v_j int := bj.outcome_index(v_market, p_outcome);
  v_position numeric;
  v_direction text;
  v_price numeric;
  v_crossed boolean;
  v_order bj.orders;
begin
  if p_shares is null or p_shares <= 0 or p_shares > 1000000000 or p_shares <> round(p_shares, 6) then
    perform bj.raise('BJ020', 'shares must be positive, at most 1e9, with at most 6 decimals');
  end if;
  if p_trigger is null or p_trigger <= 0 or p_trigger >= 1 or p_trigger <> round(p_trigger, 9) then
    perform bj.raise('BJ021', 'trigger_price must lie strictly between 0 and 1, with at most 9 decimals');
  end if;
  perform bj.require_open(v_market);
  if p_limit_price is not null then
    perform bj.check_price(v_market, p_limit_price, 'limit_price');
  end if;
  select p.shares into v_position from bj.positions p
   where p.user_id = p_user and p.market_id = v_market.id and p.outcome = v_j;
  if coalesce(v_position, 0) = 0 then
    perform bj.raise('BJ005', format('no position in %s %s to protect', p_market, p_outcome));
  end if;
  v_direction := case when v_position > 0 then 'long' else 'short' end;
  if p_side is not null and p_side <> (case v_direction when 'long' then 'sell' else 'buy' end) then
    perform bj.raise('BJ021', format('a %s on a %s closes it by %s', p_kind, v_direction,
                                     case v_direction when 'long' then 'selling' else 'buying' end));
  end if;
  v_price := (bj.display_prices(bj.market_prices(v_market)))[v_j];
  v_crossed := case when (p_kind = 'stop_loss') = (v_direction = 'long') then v_price <= p_trigger
                    else v_price >= p_trigger end;
  if v_crossed then
    perform bj.raise('BJ021', format('the price %s has already crossed %s: trade instead', v_price, p_trigger));
  end if;
  insert into bj.orders (user_id, market_id, outcome, kind, direction, side, shares, trigger_price,
                         price, client_order_id)
  values (p_user, v_market.id, v_j, p_kind, v_direction,
          case v_direction when 'long' then 'sell' else 'buy' end, p_shares, p_trigger, p_limit_price,
          p_client_order_id)
  returning * into v_order;
  return bj.order_json(v_order);
end $$;

-- Fire the crossed orders of the root trade's market, one at a time, up to max_cascade.
-- The caller holds the market row lock and passes the prices its trade left (a JSON array).
-- Returns the fired trades, as public facts (bj.fired_json).
create or replace function bj.run_cascade(p_root bigint, p_market text, p_prices jsonb)
returns jsonb
language plpgsql as $$
declare
  v_market bj.markets;
  v_prices jsonb := p_prices;
  v_order bj.orders;
  v_position numeric;
  v_receipt jsonb;
  v_fired jsonb := '[]'::jsonb;
  v_max int;
  v_count int := 0;
  v_busy bigint[] := '{}'::bigint[];
  v_detail text;
begin
  loop
    -- the order the prices cross first: deepest past its trigger, then oldest. One that fires
    -- on a fall is crossed at or below its trigger, one that fires on a rise at or above. Each
    -- outcome and direction is one probe of the index on (market, outcome, falls, trigger),
    -- so finding none, the common case after a trade, costs the same however many are open.
    select o.* into v_order
      from bj.markets m
      cross join jsonb_array_elements_text(v_prices) with ordinality pr(price, i)
      cross join lateral (
        (select o.* from bj.orders o
          where o.market_id = m.id and o.outcome = pr.i and o.status = 'open' and o.falls
            and o.trigger_price is not null
            and o.trigger_price >= pr.price::numeric and o.id <> all (v_busy)
          order by o.trigger_price desc, o.id limit 1)
        union all
        (select o.* from bj.orders o
          where o.market_id = m.id and o.outcome = pr.i and o.status = 'open' and not o.falls
            and o.trigger_price is not null
            and o.trigger_price <= pr.price::numeric and o.id <> all (v_busy)
          order by o.trigger_price, o.id limit 1)) o
     where m.code = p_market
     order by abs(o.trigger_price - pr.price::numeric) desc, o.id
     limit 1;
    exit when not found;
    v_max := coalesce(v_max, bj.setting('max_cascade')::int);
    exit when v_count >= v_max;
    v_count := v_count + 1;
    begin
      -- claim the order; never wait on another trader's row inside a cascade: a busy
      -- trader's order waits for the market's next trade (this keeps cascades deadlock-free)
      perform 1 from bj.orders o where o.id = v_order.id and o.status = 'open' for no key update nowait;
      if not found then
        v_busy := v_busy || v_order.id;
        continue;
      end if;
      perform 1 from bj.users u where u.id = v_order.user_id for no key update nowait;
      select p.shares into v_position from bj.positions p
       where p.user_id = v_order.user_id and p.market_id = v_order.market_id and p.outcome = v_order.outcome;
      v_position := coalesce(v_position, 0);
      if v_order.direction = 'long' and v_position <= 0 or v_order.direction = 'short' and v_position >= 0 then
        update bj.orders o set status = 'cancelled', reason = 'the position is closed',
                               cancelled = o.shares - o.filled, done_at = clock_timestamp()
         where o.id = v_order.id;
        continue;
      end if;
      select * into v_market from bj.markets m where m.id = v_order.market_id;
      if v_order.price is null then
        -- a stop: a market order through the router, for what the position still holds
        v_receipt := bj.execute_trade(v_order.user_id, p_market, v_market.outcomes[v_order.outcome],
          v_order.side, least(v_order.shares, abs(v_position)), null, null, null, p_root, v_order.id);
        update bj.orders o set status = 'filled', trade_id = (v_receipt ->> 'trade_id')::bigint,
                               filled = (v_receipt ->> 'shares')::numeric,
                               cancelled = o.shares - (v_receipt ->> 'shares')::numeric,
                               done_at = clock_timestamp() where o.id = v_order.id;
        v_fired := v_fired || jsonb_build_array(bj.fired_json(v_receipt));
        v_prices := v_receipt -> 'prices_after';
      else
        -- a stop-limit: the limit order it names, for what the position still holds
        update bj.orders o set cancelled = o.shares - least(o.shares, abs(v_position))
         where o.id = v_order.id;
        v_order := bj.submit_order(v_order.user_id, v_market, v_order.outcome, v_order.side, 'limit',
                                   least(v_order.shares, abs(v_position)), v_order.price, 'gtc', null,
                                   false, 'persist', v_order.client_order_id, 'cancel_resting',
                                   v_order.request, null, p_root, p_existing => v_order.id);
        update bj.orders o set trade_id = (select min(t.id) from bj.trades t where t.order_id = o.id)
         where o.id = v_order.id returning * into v_order;
        select * into v_market from bj.markets m where m.id = v_order.market_id;
        v_fired := v_fired || jsonb_build_array(jsonb_build_object('order_id', v_order.id,
          'trade_id', v_order.trade_id, 'market', v_market.code, 'outcome', v_market.outcomes[v_order.outcome],
          'side', v_order.side, 'shares', v_order.filled, 'limit_price', v_order.price,
          'price_after', (bj.display_prices(bj.market_prices(v_market)))[v_order.outcome]));
        v_prices := to_jsonb(bj.display_prices(bj.market_prices(v_market)));
      end if;
    exception
      when lock_not_available then
        v_busy := v_busy || v_order.id;
      when others then
        get stacked diagnostics v_detail = pg_exception_detail;
        update bj.orders o set status = 'cancelled', reason = sqlerrm || coalesce(': ' || nullif(v_detail, ''), ''),
                               cancelled = o.shares - o.filled, done_at = clock_timestamp()
         where o.id = v_order.id;
    end;
  end loop;
  return v_fired;
end $$;

-- A trader's account: balance, locked collateral, escrow of resting orders, positions marked to
-- market (the shares held; those a resting sell escrows are its order's), and the newest 100 open
-- orders (oldest first) with the count of all of them, open_orders: api.my_orders lists the rest
-- (a market maker's account can hold thousands, and every screen reads this).
-- cost_basis is the net cash put into the position (paid on buys, less received on sales);
-- value is the position at the current price (zero once the market is settled); pnl is value
-- less cost_basis.
create or replace function bj.account_json(p_user bigint) returns jsonb
language sql stable
begin atomic
  select jsonb_build_object(
    'user_id', u.id, 'username', u.username, 'balance', u.balance,
    'locked', (select coalesce(sum(c.amount), 0) from bj.collateral c where c.user_id = u.id),
    'escrow', (select coalesce(sum(o.locked_cash), 0) from bj.orders o
                where o.user_id = u.id and o.status = 'open'),
    'debt', (select coalesce(sum(d.amount - d.repaid), 0) from bj.debts d
              where d.user_id = u.id and d.repaid < d.amount),
    'positions', coalesce((
      with priced as materialized (  -- each market priced once, however many outcomes are held
        select m.id, m.code, m.outcomes, bj.display_prices(bj.market_prices(m)) as prices
          from bj.markets m
         where m.id in (select p.market_id from bj.positions p where p.user_id = u.id and p.shares <> 0))
      select jsonb_agg(jsonb_build_object('market', m.code, 'outcome', m.outcomes[p.outcome],
               'shares', p.shares, 'cost_basis', p.cost_basis,
               'price', m.prices[p.outcome],
               'value', round(p.shares * m.prices[p.outcome], 6),
               'pnl', round(p.shares * m.prices[p.outcome], 6) - p.cost_basis) order by m.code, p.outcome)
        from priced m join bj.positions p on p.user_id = u.id and p.market_id = m.id and p.shares <> 0), '[]'),
    'orders', coalesce((
      select jsonb_agg(bj.order_json(x.o) order by (x.o).id)
        from (select o from bj.orders o where o.user_id = u.id and o.status = 'open'
               order by o.id desc limit 100) x), '[]'),
    'open_orders', (select count(*) from bj.orders o where o.user_id = u.id and o.status = 'open'))
    from bj.users u where u.id = p_user;
end;
