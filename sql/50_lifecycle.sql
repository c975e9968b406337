-- Market lifecycle: open -> closed -> resolved | voided, run by DBAs (schema admin).
-- Invariants kept here: creation funds the pool with the worst-case subsidy; settlement pays
-- every account from the pool and the shorts' collateral, returns the rest to the house,
-- retires every share, and leaves the ledger balanced.

-- What a market code is: 1 to 40 of a-z, 0-9, _ and -, starting with a letter or digit. The one
-- place this rule lives: the row trigger below and admin.create_market both ask it.
create or replace function bj.is_market_code(p_code text) returns boolean
language sql immutable parallel safe
return p_code ~ '^[a-z0-9][a-z0-9_-]{0,39}$';

-- A market's definition, checked whenever it is written (an AFTER trigger on those columns only:
-- a trade, which writes the market's state, does not pay for it, nor does it lock the row again
-- as a BEFORE trigger would: architecture.md §16). Each failure names the check.
create or replace function bj.market_definition_is_valid() returns trigger
language plpgsql set search_path = '' as $$
declare
  v_failed text;
begin
  v_failed := case
    when not bj.is_market_code(new.code) then 'markets_code_check'
    when not length(new.title) between 1 and 300 then 'markets_title_check'
    when not new.status in ('open', 'closed', 'resolved', 'voided') then 'markets_status_check'
    when not exists (select 1 from bj.pricing_models p where p.name = new.pricing) then 'markets_pricing_check'
    when not new.liquidity > 0 then 'markets_liquidity_check'
    when not (new.fee_rate >= 0 and new.fee_rate < 0.5) then 'markets_fee_rate_check'
    when not (new.maker_fee_rate >= 0 and new.maker_fee_rate < 0.5) then 'markets_maker_fee_rate_check'
    when not new.tick in (0.01, 0.001, 0.0001) then 'markets_tick_check'
    when not new.phase in ('pre', 'in_play') then 'markets_phase_check'
    when not cardinality(new.outcomes) between 2 and 64 then 'markets_outcomes_check'
    when not cardinality(new.q) = cardinality(new.outcomes) then 'markets_check'
  end;
  if v_failed is not null then
    raise exception 'new row for relation "markets" violates check constraint "%"', v_failed
      using errcode = 'check_violation', constraint = v_failed, table = 'markets', schema = 'bj';
  end if;
  return new;
end $$;

-- Create a market. With a market maker, its pool receives the subsidy b·ln(n) from the house;
-- a book market (no market maker) starts with an empty pool and no subsidy. tick is the price
-- step of its limit orders (0.01, or 0.001, or basis points 0.0001); maker_fee_rate is what a
-- resting order pays when it fills (fee_rate is the taker's, and the market maker's).
drop function if exists admin.create_market(text, text, text[], numeric, numeric, timestamptz, text);
create or replace function admin.create_market(
  code text, title text, outcomes text[] default '{YES,NO}', liquidity numeric default 100,
  fee_rate numeric default null, close_at timestamptz default null, pricing text default 'lmsr',
  tick numeric default 0.01, maker_fee_rate numeric default 0)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_market bj.markets;
  v_fee numeric := coalesce(create_market.fee_rate, bj.setting('default_fee_rate')::numeric);
  v_n int := cardinality(create_market.outcomes);
  v_model bj.pricing_models;
  v_subsidy numeric := 0;
  v_journal bigint := nextval('bj.journal_seq');
begin
  if create_market.code is null or not bj.is_market_code(create_market.code) then
    perform bj.raise('BJ021', 'code: 1 to 40 characters of a-z, 0-9, _ and -, starting with a letter or digit');
  end if;
  if exists (select 1 from bj.markets m where m.code = create_market.code) then
    perform bj.raise('BJ008', format('market %s exists', create_market.code));
  end if;
  if v_n is null or v_n < 2 or v_n > 64
     or (select count(distinct o) from unnest(create_market.outcomes) o where length(trim(o)) > 0) <> v_n then
    perform bj.raise('BJ021', 'outcomes: 2 to 64 distinct, non-empty names');
  end if;
  if create_market.liquidity is null or create_market.liquidity <= 0 or create_market.liquidity > 1000000000 then
    perform bj.raise('BJ021', 'liquidity must be positive');
  end if;
  if not (v_fee >= 0 and v_fee < 0.5) then
    perform bj.raise('BJ021', 'fee_rate must lie in [0, 0.5)');
  end if;
  if not (create_market.maker_fee_rate >= 0 and create_market.maker_fee_rate < 0.5) then
    perform bj.raise('BJ021', 'maker_fee_rate must lie in [0, 0.5)');
  end if;
  if create_market.tick is null or create_market.tick not in (0.01, 0.001, 0.0001) then
    perform bj.raise('BJ021', 'tick must be 0.01, 0.001 or 0.0001');
  end if;
  select * into v_model from bj.pricing_models p where p.name = create_market.pricing;
  if not found then
    perform bj.raise('BJ021', format('pricing must be one of %s',
      (select string_agg(p.name, ', ' order by p.name) from bj.pricing_models p)));
  end if;
  if v_model.market_maker then
    v_subsidy := bj.ceil6(create_market.liquidity * ln(v_n::numeric));
  end if;
  insert into bj.markets (code, title, pricing, liquidity, fee_rate, close_at, outcomes, q, pool, subsidy,
                          tick, maker_fee_rate)
  values (create_market.code, coalesce(create_market.title, create_market.code), create_market.pricing,
          create_market.liquidity, v_fee, create_market.close_at, create_market.outcomes,
          array_fill(0::numeric, array[v_n]), v_subsidy, v_subsidy, create_market.tick,
          create_market.maker_fee_rate)
  returning * into v_market;
  perform bj.post(v_journal, 'subsidy', 'coin', 'house', bj.pool_account(v_market.id), v_subsidy,
                  null, v_market.id);
  return bj.market_json(v_market);
end $$;
grant execute on function admin.create_market(text, text, text[], numeric, numeric, timestamptz, text, numeric, numeric) to service_role;

-- Cancel a market's open orders (resting ones give back what they lock, conditional ones just
-- end): all of them, or only those of one trader, or only resting ones placed to lapse. The
-- market's row is locked by the caller; the traders' rows are locked here, in id order.
create or replace function bj.cancel_orders_of(p_market bj.markets, p_reason text,
                                               p_user bigint default null, p_lapse_only boolean default false)
returns int
language plpgsql as $$
declare
  v_journal bigint := nextval('bj.journal_seq');
  v_order bj.orders;
  v_count int := 0;
begin
  perform 1 from bj.users u
   where u.id in (select o.user_id from bj.orders o
                   where o.market_id = p_market.id and o.status = 'open'
                     and (p_user is null or o.user_id = p_user))
   order by u.id for no key update;
  for v_order in select * from bj.orders o
                  where o.market_id = p_market.id and o.status = 'open'
                    and (p_user is null or o.user_id = p_user)
                    and (not p_lapse_only or o.kind = 'limit' and o.persistence = 'lapse')
                  order by o.id for no key update loop
    perform bj.close_order(v_journal, v_order, 'cancelled', p_reason);
    v_count := v_count + 1;
  end loop;
  return v_count;
end $$;

-- Close the resting orders whose time (gtd) has come, at most p_max of them, oldest expiry
-- first, releasing their escrow; and forget the book changes streams no longer need. The
-- server runs it every second; until then an expired order is out of the book as clients
-- read it and fills nothing (a taker meeting it cancels it). With nothing due it writes
-- nothing. Answers how many it closed.
create or replace function admin.expire_orders(max_orders int default 1000) returns int
language plpgsql security definer set search_path = '' as $$
declare
  v_journal bigint;
  v_due bigint[];
  v_order bj.orders;
  v_count int := 0;
begin
  if max_orders is null or max_orders not between 1 and 100000 then
    perform bj.raise('BJ021', 'max_orders must lie between 1 and 100000');
  end if;
  select array_agg(o.id) into v_due
    from (select o.id from bj.orders o
           where o.status = 'open' and o.expires_at <= clock_timestamp()
           order by o.expires_at, o.id limit max_orders) o;
  if v_due is not null then
    v_journal := nextval('bj.journal_seq');
    -- markets, then traders, then orders, each in id order, as everywhere
    perform 1 from bj.markets m
     where m.id in (select o.market_id from bj.orders o where o.id = any (v_due))
     order by m.id for no key update;
    perform 1 from bj.users u
     where u.id in (select o.user_id from bj.orders o where o.id = any (v_due))
     order by u.id for no key update;
    for v_order in select * from bj.orders o
                    where o.id = any (v_due) and o.status = 'open'  -- not filled or cancelled meanwhile
                    order by o.id for no key update loop
      perform bj.close_order(v_journal, v_order, 'cancelled', 'expired');
      v_count := v_count + 1;
    end loop;
  end if;
  delete from bj.book_changes c
   where c.at < clock_timestamp() - make_interval(secs => bj.setting('book_changes_keep_s')::numeric);
  return v_count;
end $$;
-- (the server's login role sweeps with it; the HTTP layer calls nothing outside api)
grant usage on schema admin to authenticator;
grant execute on function admin.expire_orders(int) to service_role, authenticator;

-- Forget trades' idempotency keys older than idempotency_keep_h (their receipts are most of the
-- table), at most max_rows a call, oldest first; a key a retry holds right now is skipped, never
-- waited for, so pruning never holds a trade up. A client_order_id ('order:' keys) is kept for
-- as long as its order. Returns how many were forgotten: run it until it answers less than
-- max_rows (a scheduler calls it every minute: docs/dba.md).
create or replace function admin.prune_idempotency(max_rows int default 10000) returns int
language plpgsql security definer set search_path = '' as $$
declare
  v_count int;
begin
  if max_rows is null or max_rows not between 1 and 1000000 then
    perform bj.raise('BJ021', 'max_rows lies between 1 and 1000000');
  end if;
  with gone as (
    delete from bj.idempotency i
     where (i.user_id, i.key) in (
       select k.user_id, k.key from bj.idempotency k
        where k.key not like 'order:%'
          and k.created_at < clock_timestamp() - make_interval(secs => bj.setting('idempotency_keep_h')::numeric * 3600)
        order by k.created_at
        limit max_rows
          for update skip locked)
    returning 1)
  select count(*) into v_count from gone;
  return v_count;
end $$;
revoke execute on function admin.prune_idempotency(int) from public;
grant execute on function admin.prune_idempotency(int) to service_role;

-- Move a market in play (or back to pre-play): going in play cancels every resting order
-- placed with persistence 'lapse' and keeps the 'persist' ones.
create or replace function admin.set_phase(code text, phase text) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_market bj.markets := bj.lock_market(set_phase.code);
  v_lapsed int := 0;
begin
  if set_phase.phase is null or set_phase.phase not in ('pre', 'in_play') then
    perform bj.raise('BJ021', 'phase must be pre or in_play');
  end if;
  if v_market.status <> 'open' then
    perform bj.raise('BJ008', format('%s is %s', v_market.code, v_market.status));
  end if;
  if set_phase.phase = 'in_play' and v_market.phase <> 'in_play' then
    v_lapsed := bj.cancel_orders_of(v_market, 'lapsed: the market went in play', p_lapse_only => true);
  end if;
  update bj.markets m set phase = set_phase.phase, version = m.version + 1,
                          changed_xid = pg_current_xact_id()
   where m.id = v_market.id returning * into v_market;
  return bj.market_json(v_market) || jsonb_build_object('lapsed', v_lapsed);
end $$;
grant execute on function admin.set_phase(text, text) to service_role;

-- What the DBA scripts read (dba/*.sql), so that a DBA login needs only service_role, never the
-- tables (docs/dba.md): a market's summary (no row for an unknown code), and its traders with
-- their balances (dba/void.sql shows them before and after).
create or replace function admin.market_summary(market text)
returns table (code text, title text, status text, pricing text, volume numeric, traders bigint)
language sql stable security definer set search_path = ''
begin atomic
  select m.code, m.title, bj.market_status(m), m.pricing, m.volume::numeric,
         (select count(distinct t.user_id) from bj.trades t where t.market_id = m.id)
    from bj.markets m where m.code = market_summary.market;
end;
revoke execute on function admin.market_summary(text) from public;
grant execute on function admin.market_summary(text) to service_role;

create or replace function admin.market_traders(market text)
returns table (user_id bigint, username text, balance numeric)
language sql stable security definer set search_path = ''
begin atomic
  select u.id, u.username, u.balance::numeric from bj.users u
   where u.id in (select t.user_id from bj.trades t join bj.markets m on m.id = t.market_id
                   where m.code = market_traders.market)
   order by u.username;
end;
revoke execute on function admin.market_traders(text) from public;
grant execute on function admin.market_traders(text) to service_role;

-- Stop trading in a market ahead of its resolution.
create or replace function admin.close_market(code text) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_market bj.markets;
begin
  select * into v_market from bj.markets m where m.code = close_market.code for no key update;
  if not found then
    perform bj.raise('BJ010', close_market.code);
  end if;
  if v_market.status <> 'open' then
    perform bj.raise('BJ008', format('%s is %s', v_market.code, v_market.status));
  end if;
  perform bj.cancel_orders_of(v_market, 'the market was closed');
  update bj.markets m set status = 'closed', closed_at = clock_timestamp(), version = m.version + 1,
                         changed_xid = pg_current_xact_id()
   where m.id = v_market.id returning * into v_market;
  return bj.market_json(v_market);
end $$;
grant execute on function admin.close_market(text) to service_role;

-- A payout vector from {"OUTCOME": weight, …}: weights in [0, 1] summing to 1, absent = 0.
create or replace function bj.payout_vector(p_market bj.markets, p_payouts jsonb) returns numeric[]
language plpgsql stable as $$
declare
  v_w numeric[] := array_fill(0::numeric, array[cardinality(p_market.outcomes)]);
  v_key text;
  v_value jsonb;
begin
  if p_payouts is null or jsonb_typeof(p_payouts) <> 'object' then
    perform bj.raise('BJ021', 'payouts must be an object such as {"YES": 0.3, "NO": 0.7}');
  end if;
  for v_key, v_value in select * from jsonb_each(p_payouts) loop
    if jsonb_typeof(v_value) <> 'number' or v_value::numeric < 0 or v_value::numeric > 1
       or v_value::numeric <> round(v_value::numeric, 9) then
      perform bj.raise('BJ021', format('payout of %s must be a number in [0, 1] with at most 9 decimals', v_key));
    end if;
    v_w[bj.outcome_index(p_market, v_key)] := v_value::numeric;
  end loop;
  if (select sum(w) from unnest(v_w) w) <> 1 then
    perform bj.raise('BJ021', 'payout weights must sum to 1');
  end if;
  return v_w;
end $$;

-- What settling a market at payout vector w gives each account holding a position: each share
-- of outcome i pays w_i, rounded down when paid to the account and up when paid by it (the
-- house's favour); shorts pay from their collateral, and what remains of it is released.
create or replace function bj.settlement(p_market_id bigint, p_w numeric[])
returns table (user_id bigint, payout numeric, collateral numeric)
language sql stable
begin atomic
  select h.user_id, bj.floor6(sum(p_w[p.outcome] * p.shares)) as payout,
         coalesce(max(c.amount), 0) as collateral
    from (select p.user_id from bj.positions p where p.market_id = p_market_id and p.shares <> 0
          union
          select c.user_id from bj.collateral c where c.market_id = p_market_id and c.amount > 0) h
    left join bj.positions p on p.user_id = h.user_id and p.market_id = p_market_id
    left join bj.collateral c on c.user_id = h.user_id and c.market_id = p_market_id
   group by h.user_id;
end;

-- Every account's payout from resolving at the given vector, committing nothing.
create or replace function admin.preview_resolution(code text, payouts jsonb)
returns table (username text, payout numeric, collateral_released numeric, balance_after numeric)
language plpgsql stable security definer set search_path = '' as $$
declare
  v_market bj.markets := bj.find_market(preview_resolution.code);
  v_w numeric[] := bj.payout_vector(v_market, preview_resolution.payouts);
begin
  return query
    select u.username, s.payout::numeric(24, 6), (s.collateral + least(s.payout, 0))::numeric(24, 6),
           (u.balance + s.collateral + s.payout)::numeric(24, 6)
      from bj.settlement(v_market.id, v_w) s join bj.users u on u.id = s.user_id
     order by s.payout desc, u.username;
end $$;
grant execute on function admin.preview_resolution(text, jsonb) to service_role;

-- Retire every share of a settled market back to the market maker. (Its orders are cancelled
-- before settlement, bj.cancel_orders_of; collateral is released, posted and zeroed by the
-- settlement that pays it out.)
create or replace function bj.retire_market(p_market bj.markets, p_journal bigint, p_reason text)
returns void
language plpgsql as $$
declare
  v_pos record;
begin
  for v_pos in select * from bj.positions p where p.market_id = p_market.id and p.shares <> 0 loop
    perform bj.post(p_journal, 'settle', bj.share_asset(p_market.id, v_pos.outcome),
                    bj.position_account(v_pos.user_id, p_market.id, v_pos.outcome),
                    bj.maker_account(p_market.id, v_pos.outcome), v_pos.shares, v_pos.user_id, p_market.id);
  end loop;
  update bj.positions p set shares = 0 where p.market_id = p_market.id and p.shares <> 0;
end $$;

-- Lock a market that is still to be settled, or fail: unknown (BJ010) or already settled (BJ008).
create or replace function bj.lock_unsettled(p_code text) returns bj.markets
language plpgsql as $$
declare
  v_market bj.markets;
begin
  select * into v_market from bj.markets m where m.code = p_code for no key update;
  if not found then
    perform bj.raise('BJ010', p_code);
  end if;
  if v_market.status in ('resolved', 'voided') then
    perform bj.raise('BJ008', format('%s is already %s', v_market.code, v_market.status));
  end if;
  return v_market;
end $$;

-- Resolve a market to a payout vector, all in one transaction.
create or replace function admin.resolve_market_split(code text, payouts jsonb) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_market bj.markets;
  v_w numeric[];
  v_journal bigint := nextval('bj.journal_seq');
  v_s record;
  v_pool numeric;
  v_paid numeric := 0;
  v_accounts int := 0;
begin
  v_market := bj.lock_unsettled(resolve_market_split.code);
  v_w := bj.payout_vector(v_market, resolve_market_split.payouts);
  perform bj.cancel_orders_of(v_market, 'the market was resolved');
  v_pool := v_market.pool;
  for v_s in select * from bj.settlement(v_market.id, v_w) s order by s.user_id loop
    perform 1 from bj.users u where u.id = v_s.user_id for no key update;
    -- release the collateral, then pay (or collect) the payout through the pool
    perform bj.post(v_journal, 'collateral', 'coin', bj.collateral_account(v_s.user_id, v_market.id),
                    bj.cash_account(v_s.user_id), v_s.collateral, v_s.user_id, v_market.id);
    perform bj.post(v_journal, 'payout', 'coin', bj.pool_account(v_market.id),
                    bj.cash_account(v_s.user_id), v_s.payout, v_s.user_id, v_market.id);
    update bj.users u set balance = u.balance + v_s.collateral + v_s.payout where u.id = v_s.user_id;
    update bj.collateral c set amount = 0
     where c.user_id = v_s.user_id and c.market_id = v_market.id and c.amount <> 0;
    v_pool := v_pool - v_s.payout;
    v_paid := v_paid + v_s.payout;
    v_accounts := v_accounts + 1;
  end loop;
  if v_pool < 0 then
    raise exception 'market % cannot cover its payout (% short)', v_market.code, -v_pool;
  end if;
  perform bj.post(v_journal, 'settle', 'coin', bj.pool_account(v_market.id), 'house', v_pool,
                  null, v_market.id);
  perform bj.retire_market(v_market, v_journal, 'the market was resolved');
  update bj.markets m
     set status = 'resolved', payouts = v_w, pool = 0, version = m.version + 1,
         changed_xid = pg_current_xact_id(),
         closing_prices = bj.display_prices(bj.market_prices(m)),
         closed_at = coalesce(m.closed_at, least(m.close_at, clock_timestamp()), clock_timestamp()),
         settled_at = clock_timestamp()
   where m.id = v_market.id returning * into v_market;
  insert into bj.settlement_log (market_id, action, journal, actor, detail)
  values (v_market.id, 'resolve', v_journal, session_user,
          jsonb_build_object('payouts', resolve_market_split.payouts, 'paid_out', v_paid));
  return bj.market_json(v_market) || jsonb_build_object('accounts_paid', v_accounts,
    'paid_out', v_paid::numeric(24, 6), 'returned_to_house', v_pool::numeric(24, 6));
end $$;
grant execute on function admin.resolve_market_split(text, jsonb) to service_role;

-- Resolve a market to one winning outcome: each of its shares pays 1.
create or replace function admin.resolve_market(code text, outcome text) returns jsonb
language sql security definer set search_path = ''
begin atomic
  select admin.resolve_market_split(resolve_market.code, jsonb_build_object(resolve_market.outcome, 1));
end;
grant execute on function admin.resolve_market(text, text) to service_role;

-- Void a market: every trader's wealth becomes what it would be had they never traded in it,
-- fees included: each gets back what their trades in it cost, less what they received. The
-- money is the market's: the fees it collected (rounding included) come back to its pool, which
-- pays every refund; what remains (the subsidy) returns to the house. Where taking back a
-- profit would push a balance below zero, the balance stops at zero and the house carries the
-- shortfall, recorded in bj.void_shortfalls. Resting orders are cancelled first. What a wiped
-- account would get back or owe is the _burned account's, which holds what it held.
create or replace function admin.void_market(code text) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_market bj.markets;
  v_journal bigint := nextval('bj.journal_seq');
  v_burn bigint := (select u.id from bj.users u where u.username = '_burned');
  v_u record;
  v_balance numeric;
  v_shortfall numeric;
  v_total_shortfall numeric := 0;
  v_pool numeric;
  v_fees numeric;
begin
  v_market := bj.lock_unsettled(void_market.code);
  perform bj.cancel_orders_of(v_market, 'the market was voided');
  v_fees := coalesce((select sum(case when l.debit = 'fees' then l.amount else -l.amount end)
                        from bj.ledger l where l.market_id = v_market.id and l.asset = 'coin'
                         and 'fees' in (l.debit, l.credit)), 0);
  perform bj.post(v_journal, 'void', 'coin', 'fees', bj.pool_account(v_market.id), v_fees, null, v_market.id);
  v_pool := v_market.pool + v_fees;
  for v_u in
    select s.user_id, sum(s.refund) as refund, sum(s.collateral) as collateral
      from (select case when u.disabled_at is null or v_burn is null then u.id else v_burn end as user_id,
                   r.refund, r.collateral
              from (select t.user_id, case t.side when 'buy' then t.total else -t.total end as refund,
                           0 as collateral
                      from bj.trades t where t.market_id = v_market.id
                    union all
                    select c.user_id, 0, c.amount
                      from bj.collateral c where c.market_id = v_market.id and c.amount <> 0) r
              join bj.users u on u.id = r.user_id) s
     group by s.user_id order by s.user_id
  loop
    select u.balance into v_balance from bj.users u where u.id = v_u.user_id for no key update;
    perform bj.post(v_journal, 'collateral', 'coin', bj.collateral_account(v_u.user_id, v_market.id),
                    bj.cash_account(v_u.user_id), v_u.collateral, v_u.user_id, v_market.id);
    update bj.collateral c set amount = 0
     where c.user_id = v_u.user_id and c.market_id = v_market.id and c.amount <> 0;
    perform bj.post(v_journal, 'void', 'coin', bj.pool_account(v_market.id),
                    bj.cash_account(v_u.user_id), v_u.refund, v_u.user_id, v_market.id);
    v_pool := v_pool - v_u.refund;
    v_balance := v_balance + v_u.collateral + v_u.refund;
    v_shortfall := greatest(0, -v_balance);
    if v_shortfall > 0 then
      perform bj.post(v_journal, 'shortfall', 'coin', 'house', bj.cash_account(v_u.user_id),
                      v_shortfall, v_u.user_id, v_market.id);
      insert into bj.void_shortfalls (market_id, user_id, amount) values (v_market.id, v_u.user_id, v_shortfall);
      v_total_shortfall := v_total_shortfall + v_shortfall;
    end if;
    update bj.users u set balance = v_balance + v_shortfall where u.id = v_u.user_id;
  end loop;
  perform bj.post(v_journal, 'settle', 'coin', bj.pool_account(v_market.id), 'house', v_pool,
                  null, v_market.id);
  perform bj.retire_market(v_market, v_journal, 'the market was voided');
  update bj.markets m
     set status = 'voided', pool = 0, version = m.version + 1, settled_at = clock_timestamp(),
         changed_xid = pg_current_xact_id(),
         closing_prices = bj.display_prices(bj.market_prices(m)),
         closed_at = coalesce(m.closed_at, clock_timestamp())
   where m.id = v_market.id returning * into v_market;
  insert into bj.settlement_log (market_id, action, journal, actor, detail)
  values (v_market.id, 'void', v_journal, session_user, jsonb_build_object('house_shortfall', v_total_shortfall));
  return bj.market_json(v_market) || jsonb_build_object('house_shortfall', v_total_shortfall::numeric(24, 6));
end $$;
grant execute on function admin.void_market(text) to service_role;

---------------------------------------------------------------------------------------------
-- Undoing a resolution (docs/dba.md, "Undoing a resolution")

-- What unresolving a market would do to each account its resolution paid: what comes back out of
-- the balance (the resolution's net payment: collateral released plus payout), what of it the
-- balance cannot cover (the trader's debt), and the shares put back. p_market is locked by the
-- caller, or only read (a preview). The resolution is the market's last settlement.
create or replace function bj.unresolution(p_market bj.markets)
returns table (user_id bigint, username text, taken_back numeric, debt numeric, shares_restored numeric)
language sql stable
begin atomic
  with res as (select s.journal from bj.settlement_log s
                where s.market_id = p_market.id order by s.id desc limit 1),
  moves as (select l.user_id,
                   sum(case when l.asset <> 'coin' then 0
                            when l.debit = bj.cash_account(l.user_id) then l.amount
                            when l.credit = bj.cash_account(l.user_id) then -l.amount else 0 end) as paid,
                   sum(case when l.asset = 'coin' then 0
                            when l.credit like 'pos:%' then l.amount else -l.amount end) as shares
              from bj.ledger l
             where l.journal = (select r.journal from res r) and l.market_id = p_market.id
               and l.user_id is not null
             group by l.user_id)
  select u.id, u.username, mv.paid, greatest(0, mv.paid - u.balance), mv.shares
    from moves mv join bj.users u on u.id = mv.user_id
   order by u.id;
end;

-- Every account's part in unresolving a market, committing nothing (dba/unresolve.sql shows it).
create or replace function admin.preview_unresolve(code text)
returns table (username text, taken_back numeric, debt numeric, shares_restored numeric)
language plpgsql stable security definer set search_path = '' as $$
declare
  v_market bj.markets := bj.find_market(preview_unresolve.code);
begin
  if v_market.status <> 'resolved' then
    perform bj.raise('BJ008', format('%s is %s, not resolved', v_market.code, v_market.status));
  end if;
  return query
    select x.username, x.taken_back::numeric(24, 6), x.debt::numeric(24, 6), x.shares_restored::numeric(24, 6)
      from bj.unresolution(v_market) x order by x.taken_back desc, x.username;
end $$;
revoke execute on function admin.preview_unresolve(text) from public;
grant execute on function admin.preview_unresolve(text) to service_role;

-- Reverse a resolution that was a mistake: every posting of its journal is posted back the
-- other way (the ledger is never edited), so each position, collateral and the pool are what they
-- were just before it, and each balance gives back what the resolution paid it. Where a winner
-- has spent that payout, the balance stops at zero and the rest is the trader's debt
-- (bj.debts), which the house carries until admin.collect_debts takes it from later credits.
-- The orders the resolution cancelled stay cancelled (their escrow is back in the balance).
-- The market is closed again, or, with reopen_until, open until then. The login and the reason
-- are logged (bj.settlement_log); the market can then be resolved again.
create or replace function admin.unresolve_market(code text, reason text,
                                                  reopen_until timestamptz default null)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_market bj.markets;
  v_resolution bj.settlement_log;
  v_journal bigint := nextval('bj.journal_seq');
  v_u record;
  v_accounts int := 0;
  v_taken numeric := 0;
  v_debt numeric := 0;
  v_balance numeric;
  v_owed numeric;
begin
  if unresolve_market.reason is null or length(btrim(unresolve_market.reason)) not between 1 and 500 then
    perform bj.raise('BJ021', 'a reason (1 to 500 characters) is required: it is logged with the reversal');
  end if;
  if unresolve_market.reopen_until is not null and unresolve_market.reopen_until <= clock_timestamp() then
    perform bj.raise('BJ021', 'reopen_until must be in the future');
  end if;
  select * into v_market from bj.markets m where m.code = unresolve_market.code for no key update;
  if not found then
    perform bj.raise('BJ010', unresolve_market.code);
  end if;
  if v_market.status <> 'resolved' then
    perform bj.raise('BJ008', format('%s is %s, not resolved', v_market.code, v_market.status));
  end if;
  select * into v_resolution from bj.settlement_log s where s.market_id = v_market.id order by s.id desc limit 1;
  -- a wiped account's payout was burned with the rest of its cash, and its shares would come
  -- back to an account that may hold nothing: refused (restore from a backup instead: docs/dba.md)
  if exists (select 1 from bj.unresolution(v_market) x join bj.users u on u.id = x.user_id
              where u.disabled_at is not null) then
    perform bj.raise('BJ008', format('%s paid %s, since wiped: unresolving it is refused', v_market.code,
      (select string_agg(u.username, ', ' order by u.username) from bj.unresolution(v_market) x
         join bj.users u on u.id = x.user_id where u.disabled_at is not null)));
  end if;

  -- each account the resolution paid gives it back; what its balance cannot cover the house
  -- lends it first, as a debt
  for v_u in select * from bj.unresolution(v_market) x order by x.user_id loop
    select u.balance into v_balance from bj.users u where u.id = v_u.user_id for no key update;
    v_owed := greatest(0, v_u.taken_back - v_balance);
    if v_owed > 0 then
      perform bj.post(v_journal, 'debt', 'coin', 'house', bj.cash_account(v_u.user_id), v_owed,
                      v_u.user_id, v_market.id);
      insert into bj.debts (market_id, user_id, amount) values (v_market.id, v_u.user_id, v_owed);
      v_debt := v_debt + v_owed;
    end if;
    update bj.users u set balance = v_balance + v_owed - v_u.taken_back where u.id = v_u.user_id;
    v_taken := v_taken + v_u.taken_back;
    v_accounts := v_accounts + 1;
  end loop;

  -- every posting of the resolution, the other way round
  insert into bj.ledger (journal, kind, asset, credit, debit, amount, user_id, market_id)
  select v_journal, 'unresolve', l.asset, l.debit, l.credit, l.amount, l.user_id, l.market_id
    from bj.ledger l where l.journal = v_resolution.journal and l.market_id = v_market.id
   order by l.id;

  -- the caches those accounts keep: collateral, positions, the pool
  update bj.collateral c set amount = c.amount + r.amount
    from (select l.user_id, sum(l.amount) as amount from bj.ledger l
           where l.journal = v_resolution.journal and l.market_id = v_market.id and l.asset = 'coin'
             and l.credit = bj.collateral_account(l.user_id, v_market.id)
           group by l.user_id) r
   where c.user_id = r.user_id and c.market_id = v_market.id;
  update bj.positions p set shares = p.shares + r.shares
    from (select l.user_id, l.asset,
                 sum(case when l.credit like 'pos:%' then l.amount else -l.amount end) as shares
            from bj.ledger l
           where l.journal = v_resolution.journal and l.market_id = v_market.id and l.asset <> 'coin'
           group by l.user_id, l.asset) r
   where p.user_id = r.user_id and p.market_id = v_market.id
     and bj.share_asset(v_market.id, p.outcome) = r.asset;
  update bj.markets m
     set status = case when unresolve_market.reopen_until is null then 'closed' else 'open' end,
         close_at = coalesce(unresolve_market.reopen_until, m.close_at),
         closed_at = case when unresolve_market.reopen_until is null then m.closed_at end,
         payouts = null, closing_prices = null, settled_at = null,
         pool = (select coalesce(sum(case when l.credit = bj.pool_account(m.id) then l.amount else -l.amount end), 0)
                   from bj.ledger l
                  where l.journal = v_resolution.journal and l.market_id = m.id and l.asset = 'coin'
                    and bj.pool_account(m.id) in (l.credit, l.debit)),
         version = m.version + 1, changed_xid = pg_current_xact_id()
   where m.id = v_market.id returning * into v_market;

  insert into bj.settlement_log (market_id, action, journal, actor, reason, detail)
  values (v_market.id, 'unresolve', v_journal, session_user, btrim(unresolve_market.reason),
          jsonb_build_object('undoes', v_resolution.id, 'taken_back', v_taken, 'debt', v_debt));
  return bj.market_json(v_market) || jsonb_build_object('accounts', v_accounts,
    'taken_back', v_taken::numeric(24, 6), 'debt', v_debt::numeric(24, 6));
end $$;
revoke execute on function admin.unresolve_market(text, text, timestamptz) from public;
grant execute on function admin.unresolve_market(text, text, timestamptz) to service_role;

-- Collect what traders owe (bj.debts) from their balances, oldest debt first, as far as each
-- balance allows; at most max_debts debts of traders who have something to pay with, per call,
-- skipping traders busy trading (their turn comes next call). A trader with nothing is not
-- locked. Answers the total collected.
create or replace function admin.collect_debts(max_debts int default 1000) returns numeric
language plpgsql security definer set search_path = '' as $$
declare
  v_journal bigint := nextval('bj.journal_seq');
  v_d record;
  v_owed numeric;
  v_take numeric;
  v_total numeric := 0;
begin
  for v_d in select d.id, d.user_id, d.market_id
               from bj.debts d join bj.users u on u.id = d.user_id
              where d.repaid < d.amount and u.balance > 0
              order by d.id limit greatest(0, coalesce(collect_debts.max_debts, 1000)) loop
    perform 1 from bj.users u where u.id = v_d.user_id for no key update skip locked;
    continue when not found;
    -- what is owed and what there is, read again under the lock (another call may have collected)
    select d.amount - d.repaid into v_owed from bj.debts d where d.id = v_d.id for update;
    select least(u.balance, v_owed) into v_take from bj.users u where u.id = v_d.user_id;
    continue when v_take <= 0;
    perform bj.post(v_journal, 'debt_paid', 'coin', bj.cash_account(v_d.user_id), 'house', v_take,
                    v_d.user_id, v_d.market_id);
    update bj.users u set balance = u.balance - v_take where u.id = v_d.user_id;
    update bj.debts d set repaid = d.repaid + v_take where d.id = v_d.id;
    v_total := v_total + v_take;
  end loop;
  return v_total;
end $$;
revoke execute on function admin.collect_debts(int) from public;
grant execute on function admin.collect_debts(int) to service_role;

-- The settlements and their reversals, newest first: who, when, why (the DBA's audit trail).
create or replace function admin.settlement_log(market text default null, max_rows int default 100)
returns table (at timestamptz, market text, action text, actor text, reason text, detail jsonb)
language sql stable security definer set search_path = ''
begin atomic
  select s.at, m.code, s.action, s.actor, s.reason, s.detail
    from bj.settlement_log s join bj.markets m on m.id = s.market_id
   where settlement_log.market is null or m.code = settlement_log.market
   order by s.id desc limit greatest(0, coalesce(settlement_log.max_rows, 100));
end;
revoke execute on function admin.settlement_log(text, int) from public;
grant execute on function admin.settlement_log(text, int) to service_role;

-- What traders owe and have repaid.
create or replace function admin.debts()
returns table (username text, market text, amount numeric, repaid numeric, owed numeric, at timestamptz)
language sql stable security definer set search_path = ''
begin atomic
  select u.username, m.code, d.amount::numeric, d.repaid::numeric, (d.amount - d.repaid)::numeric, d.at
    from bj.debts d join bj.users u on u.id = d.user_id join bj.markets m on m.id = d.market_id
   order by d.id;
end;
revoke execute on function admin.debts() from public;
grant execute on function admin.debts() to service_role;
