-- Analytics: read-only views for direct SQL (role analyst), and the price history behind
-- api.price_history. No secrets here: no hashes, no signing key, no signup addresses.
-- The views run with their owner's rights, so analysts read them and no private table.

---------------------------------------------------------------------------------------------
-- The analyst's views. Functions called from a view run with the caller's rights, so the
-- views call only these, which analysts may call too.

-- An outcome's prices as clients see them, for a market's curve at quantities q (a book
-- market, which has no curve, opens at 1/n).
create or replace function analytics.prices(pricing text, q numeric[], liquidity numeric)
returns numeric[]
language sql immutable strict security definer set search_path = ''
return bj.display_prices(case when prices.pricing = 'book'
                              then array_fill(1::numeric / cardinality(prices.q), array[cardinality(prices.q)])
                              else bj.curve_prices(prices.pricing, prices.q, prices.liquidity) end);
grant execute on function analytics.prices(text, numeric[], numeric) to analyst;

-- A market's prices now, as clients see them.
create or replace function analytics.market_prices(market_id bigint) returns numeric[]
language sql stable security definer set search_path = ''
return (select bj.display_prices(bj.market_prices(m)) from bj.markets m where m.id = market_prices.market_id);
grant execute on function analytics.market_prices(bigint) to analyst;

-- What came into an account from outside its trading: its signup bonus, and the coins moved
-- between an owner and their bots, in less out (a transfer is posted under the bot's id).
create or replace function analytics.paid_in(user_id bigint) returns numeric
language sql stable security definer set search_path = ''
return coalesce((select sum(l.amount) from bj.ledger l where l.user_id = paid_in.user_id and l.kind = 'signup_bonus'), 0)
       + coalesce((select sum(case when l.debit = bj.cash_account(paid_in.user_id) then l.amount else -l.amount end)
                     from bj.ledger l
                    where l.kind = 'transfer'
                      and l.user_id in (select u.id from bj.users u
                                         where u.id = paid_in.user_id or u.owner_id = paid_in.user_id)
                      and bj.cash_account(paid_in.user_id) in (l.debit, l.credit)), 0);
grant execute on function analytics.paid_in(bigint) to analyst;

-- A market's status as clients see it (closed once past close_at).
create or replace function analytics.market_status(market_id bigint) returns text
language sql stable security definer set search_path = ''
return (select bj.market_status(m) from bj.markets m where m.id = market_status.market_id);
grant execute on function analytics.market_status(bigint) to analyst;

-- Every price an outcome has had: its opening price at creation, then after each trade.
create or replace view bj.price_points as
select m.id as market_id, o.i::int as outcome, m.created_at as t, 0::bigint as trade_id,
       o.price, 0::numeric as volume
  from bj.markets m
  cross join lateral unnest(analytics.prices(m.pricing, array_fill(0::numeric, array[cardinality(m.outcomes)]), m.liquidity))
       with ordinality o(price, i)
union all
select t.market_id, o.i::int, t.created_at, t.id, o.price,
       case when o.i = t.outcome then t.amount else 0 end
  from bj.trades t
  cross join lateral unnest(t.prices_after) with ordinality o(price, i);

-- Roll every market's new trades into its minute candles (bj.candles), at most p_max markets a
-- call; answers the number of trades rolled. One statement per market reads the trades past its
-- watermark and moves the watermark to the last of them, so each trade is rolled exactly once:
-- a market's trades are written under its lock, so once one is seen every earlier one of that
-- market has committed (or never will), and a later commit has a greater id (architecture.md
-- §18). One roll runs at a time; trades never wait for it.
create or replace function admin.roll_candles(max_markets int default 10000) returns bigint
language plpgsql security definer set search_path = '' as $$
declare
  v_m record;
  v_rolled bigint;
  v_total bigint := 0;
begin
  lock table bj.candles_rolled in share row exclusive mode;
  for v_m in
    select m.id, coalesce(w.trade_id, 0) as trade_id
      from bj.markets m left join bj.candles_rolled w on w.market_id = m.id
     where exists (select 1 from bj.trades t where t.market_id = m.id and t.id > coalesce(w.trade_id, 0))
     order by m.id limit greatest(0, coalesce(roll_candles.max_markets, 10000))
  loop
    with points as materialized (
      select t.id, t.created_at, date_trunc('minute', t.created_at) as minute, o.i::smallint as outcome, o.price,
             case when o.i = t.outcome then t.amount else 0 end as volume
        from bj.trades t cross join lateral unnest(t.prices_after) with ordinality o(price, i)
       where t.market_id = v_m.id and t.id > v_m.trade_id
    ), minutes as (
      select p.minute, p.outcome,
             (array_agg(p.price order by p.created_at, p.id))[1] as open, max(p.price) as high, min(p.price) as low,
             (array_agg(p.price order by p.created_at desc, p.id desc))[1] as close, sum(p.volume) as volume
        from points p group by p.minute, p.outcome
    ), merged as (
      insert into bj.candles as c (market_id, minute, outcome, open, high, low, close, volume)
      select v_m.id, x.minute, x.outcome, x.open, x.high, x.low, x.close, x.volume from minutes x
      on conflict (market_id, minute, outcome) do update
         set high = greatest(c.high, excluded.high), low = least(c.low, excluded.low),
             close = excluded.close, volume = c.volume + excluded.volume
    ), watermark as (
      insert into bj.candles_rolled as w (market_id, trade_id)
      select v_m.id, max(p.id) from points p having count(*) > 0
      on conflict (market_id) do update set trade_id = excluded.trade_id
    )
    select count(distinct p.id) into v_rolled from points p;
    v_total := v_total + v_rolled;
  end loop;
  return v_total;
end $$;
revoke execute on function admin.roll_candles(int) from public;
grant execute on function admin.roll_candles(int) to service_role;

-- OHLC candles of a market's prices per outcome, in buckets of any width; kept after settlement.
-- Buckets of whole minutes read the minute candles up to the market's watermark and the trades
-- after it (at most what came since the last roll); other widths read every trade in range.
-- Both give the same numbers: the opening price at creation, then the prices after each trade
-- in order of time and id.
create or replace function bj.candles(p_market bj.markets, p_bucket interval, p_since timestamptz)
returns jsonb
language plpgsql stable as $$
declare
  v_w bj.candles_rolled;
  v_whole_minutes boolean;
  v_from timestamptz;  -- the first whole minute at or after p_since
begin
  if p_bucket is null or p_bucket < interval '1 second' or p_bucket > interval '366 days' then
    perform bj.raise('BJ021', 'bucket must lie between 1 second and 366 days');
  end if;
  -- months have no fixed length: candles are binned in seconds, minutes, hours or days
  if extract(year from p_bucket) <> 0 or extract(month from p_bucket) <> 0 then
    perform bj.raise('BJ021', 'bucket must be given in days, hours, minutes or seconds (not months or years)');
  end if;
  v_whole_minutes := extract(epoch from p_bucket) % 60 = 0;
  select * into v_w from bj.candles_rolled w where w.market_id = p_market.id;
  if not v_whole_minutes or v_w.market_id is null then
    v_w := row(p_market.id, 0);  -- nothing rolled, or not usable: every trade
  end if;
  v_from := case when p_since is null then '-infinity'
                 when date_trunc('minute', p_since) = p_since then p_since
                 else date_trunc('minute', p_since) + interval '1 minute' end;
  if not v_whole_minutes then
    v_from := 'infinity';
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object('t', c.t, 'outcome', p_market.outcomes[c.outcome],
             'open', c.open, 'high', c.high, 'low', c.low, 'close', c.close, 'volume', c.volume)
             order by c.t, c.outcome)
      from (select date_bin(p_bucket, s.t, timestamptz '2000-01-01') as t, s.outcome,
                   (array_agg(s.open order by s.phase, s.t, s.id))[1] as open,
                   max(s.high) as high, min(s.low) as low,
                   (array_agg(s.close order by s.phase desc, s.t desc, s.id desc))[1] as close,
                   sum(s.volume)::numeric(24, 6) as volume
              from (-- the opening prices, at creation
                    select 0 as phase, p_market.created_at as t, 0::bigint as id, o.i::int as outcome,
                           o.price as open, o.price as high, o.price as low, o.price as close, 0::numeric as volume
                      from unnest(analytics.prices(p_market.pricing,
                                                   array_fill(0::numeric, array[cardinality(p_market.outcomes)]),
                                                   p_market.liquidity)) with ordinality o(price, i)
                     where p_since is null or p_market.created_at >= p_since
                    union all
                    -- the rolled minutes in range
                    select 1, c.minute, 0, c.outcome, c.open, c.high, c.low, c.close, c.volume
                      from bj.candles c
                     where c.market_id = p_market.id and c.minute >= v_from
                       and v_w.trade_id > 0
                    union all
                    -- single trades: those rolled into the minute that p_since cuts
                    select 1, t.created_at, t.id, o.i::int, o.price, o.price, o.price, o.price,
                           case when o.i = t.outcome then t.amount else 0 end
                      from bj.trades t cross join lateral unnest(t.prices_after) with ordinality o(price, i)
                     where t.market_id = p_market.id and t.created_at >= p_since and t.created_at < v_from
                       and t.id <= v_w.trade_id
                    union all
                    -- and those past the watermark (every one in range, for buckets not of whole minutes)
                    select 2, t.created_at, t.id, o.i::int, o.price, o.price, o.price, o.price,
                           case when o.i = t.outcome then t.amount else 0 end
                      from bj.trades t cross join lateral unnest(t.prices_after) with ordinality o(price, i)
                     where t.market_id = p_market.id and t.id > v_w.trade_id
                       and (p_since is null or t.created_at >= p_since)) s
             group by 1, 2) c), '[]');
end $$;

create or replace function api.price_history(market text, bucket interval default '1 hour',
                                             since timestamptz default null) returns jsonb
language sql stable security definer set search_path = ''
begin atomic
  select bj.candles(bj.find_market(price_history.market), price_history.bucket, price_history.since);
end;
grant execute on function api.price_history(text, interval, timestamptz) to anon, authenticated;
comment on function api.price_history(text, interval, timestamptz) is
  'OHLC candles of every outcome''s price, in buckets of `bucket` (1 second to 366 days), from `since`; available after settlement too. Errors: BJ010 (404), BJ021 (400).';

---------------------------------------------------------------------------------------------
-- Public reads for screens: the tape, the last day's trend, the leaderboard, calibration.
-- Public data only: no trader is named but on the leaderboard, which ranks by net worth.

-- A market's tape: its takers' trades (a fill's maker side is the same trade seen from the
-- resting order), newest first.
create or replace function api.market_trades(market text, max_rows int default 50) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  v_market bj.markets := bj.find_market(market_trades.market);
begin
  if market_trades.max_rows is null or market_trades.max_rows not between 1 and 500 then
    perform bj.raise('BJ021', 'max_rows must lie between 1 and 500');
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object('at', t.created_at,
             'outcome', v_market.outcomes[t.outcome], 'side', t.side, 'shares', t.shares,
             'price', coalesce(t.price, round(t.amount / t.shares, 9)),
             'price_after', t.prices_after[t.outcome]) order by t.created_at desc, t.id desc)
      from (select * from bj.trades t
             where t.market_id = v_market.id and t.role is distinct from 'maker'
             order by t.created_at desc, t.id desc limit market_trades.max_rows) t), '[]');
end $$;
grant execute on function api.market_trades(text, int) to anon, authenticated;
comment on function api.market_trades(text, int) is
  'A market''s recent trades, newest first (at most max_rows, 1-500): {at, outcome, side, shares, price, price_after}; no trader is named, no trade id given. Errors: BJ010 (404), BJ021 (400).';

-- A market's last day: each outcome's price now, 24 hours ago (its opening price if it is
-- younger) and at the end of each of the 24 hours between (spark: 25 prices, oldest first),
-- the change over the day, and the volume its takers traded in it.
create or replace function bj.market_trend(p_market bj.markets, p_now timestamptz) returns jsonb
language sql stable
begin atomic
  with ends as (
    select h, p_now - (24 - h) * interval '1 hour' as t_end from generate_series(0, 24) h
  ), points as (
    select e.h, coalesce((select t.prices_after from bj.trades t
                           where t.market_id = p_market.id and t.created_at <= e.t_end
                           order by t.created_at desc, t.id desc limit 1),
                         analytics.prices(p_market.pricing,
                                          array_fill(0::numeric, array[cardinality(p_market.outcomes)]),
                                          p_market.liquidity)) as prices
      from ends e
  )
  select jsonb_build_object(
    'market', p_market.code,
    'volume_24h', (select coalesce(sum(t.amount), 0)::numeric(24, 6) from bj.trades t
                    where t.market_id = p_market.id and t.created_at > p_now - interval '1 day'
                      and t.role is distinct from 'maker'),
    'outcomes', (select jsonb_agg(jsonb_build_object(
                          'outcome', o.name, 'price', o.price,
                          'price_24h_ago', (select p.prices[o.i] from points p where p.h = 0),
                          'change_24h', o.price - (select p.prices[o.i] from points p where p.h = 0),
                          'spark', (select jsonb_agg(p.prices[o.i] order by p.h) from points p))
                          order by o.i)
                   from unnest(p_market.outcomes, bj.display_prices(bj.market_prices(p_market)))
                        with ordinality o(name, price, i)));
end;

drop function if exists api.market_trends(text);
drop function if exists api.market_trends(text, text);
create or replace function api.market_trends(status text default null, markets text[] default null)
returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  v_now timestamptz := clock_timestamp();
begin
  if market_trends.status is not null and market_trends.status not in ('open', 'closed', 'resolved', 'voided') then
    perform bj.raise('BJ021', 'status must be open, closed, resolved or voided');
  end if;
  if cardinality(market_trends.markets) > 1000 then
    perform bj.raise('BJ021', 'at most 1000 markets at once');
  end if;
  return coalesce((
    select jsonb_agg(bj.market_trend(m, v_now) order by m.id) from bj.markets m
     where (market_trends.status is null or bj.market_status(m) = market_trends.status)
       and (market_trends.markets is null or m.code = any (market_trends.markets))), '[]');
end $$;
grant execute on function api.market_trends(text, text[]) to anon, authenticated;
comment on function api.market_trends(text, text[]) is
  'Every market''s last 24 hours (or those with the given status, or the markets named, at most 1000): per outcome the price now, 24 hours ago, the change, and 25 hourly prices for a sparkline (spark, oldest first); and the volume traded. Unknown codes are skipped. Errors: BJ021 (400).';

create or replace function api.leaderboard(max_rows int default 20) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  if leaderboard.max_rows is null or leaderboard.max_rows not between 1 and 100 then
    perform bj.raise('BJ021', 'max_rows must lie between 1 and 100');
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object('rank', l.rank, 'username', l.username, 'is_bot', l.is_bot,
                                        'net_worth', l.net_worth::numeric(24, 6),
                                        'profit', l.profit::numeric(24, 6), 'as_of', l.as_of)
                     order by l.rank, l.username)
      from (select * from analytics.leaderboard l
             -- the first max_rows ranks by the rank's index (and whoever ties the last of them)
             where l.rank <= (select max(s.rank) from (select s.rank from bj.standings s
                                                        order by s.rank limit leaderboard.max_rows) s)
             order by l.rank, l.username limit leaderboard.max_rows) l), '[]');
end $$;
grant execute on function api.leaderboard(int) to anon, authenticated;
comment on function api.leaderboard(int) is
  'The traders (bots among them, labelled) with the greatest net worth (cash, locked collateral and escrow, positions at current prices) as of the last ranking (as_of; every minute), at most max_rows (1-100): {rank, username, is_bot, net_worth, profit, as_of}; profit is net worth less what came in from outside trading (bonuses; coins moved between an owner and their bot). Errors: BJ021 (400).';

create or replace function api.calibration() returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return jsonb_build_object(
    'brier', (select s.brier from analytics.calibration_summary s where s.bucket = 'overall'),
    'markets', (select s.markets from analytics.calibration_summary s where s.bucket = 'overall'),
    'buckets', coalesce((select jsonb_agg(jsonb_build_object('bucket', s.bucket, 'forecasts', s.forecasts,
                                                             'mean_price', s.mean_price, 'observed', s.observed)
                                          order by s.bucket)
                           from analytics.calibration_summary s where s.bucket <> 'overall'), '[]'),
    'points', coalesce((select jsonb_agg(jsonb_build_object('market', c.market, 'outcome', c.outcome,
                                                            'closing_price', c.closing_price, 'payout', c.payout)
                                         order by c.market, c.outcome)
                          from analytics.calibration c), '[]'));
end $$;
grant execute on function api.calibration() to anon, authenticated;
comment on function api.calibration() is
  'How well closing prices forecast: every resolved market''s outcomes {market, outcome, closing_price, payout}, the reliability table by price decile {bucket, forecasts, mean_price, observed} and the mean Brier score.';

-- (the trader's name and label are read for the rows a query returns, not joined to every trade
-- first: a query for the last 100 of a market sorts the market's trades, then names 100)
create or replace view analytics.trades as
select t.id as trade_id, m.code as market, (select u.username from bj.users u where u.id = t.user_id) as username,
       m.outcomes[t.outcome] as outcome, t.side,
       t.shares::numeric, t.amount::numeric, t.fee::numeric, t.total::numeric,
       round(t.total / t.shares, 9) as avg_price, t.prices_after[t.outcome] as price_after,
       t.root_trade_id, t.order_id, t.created_at as at,
       -- against whom: the market maker ('amm') or a resting order ('direct', 'mint', 'merge'),
       -- as its taker or its maker
       t.how, t.role,
       (select u.is_bot from bj.users u where u.id = t.user_id) as is_bot  -- the trader is a bot (docs/bots.md)
  from bj.trades t join bj.markets m on m.id = t.market_id;

-- A market's last trades, newest first, as analytics.trades has them: reads only those (by the
-- market's time index), however many the market has.
create or replace function analytics.recent_trades(market text, max_rows int default 100)
returns setof analytics.trades
language plpgsql stable security definer set search_path = '' as $$
declare
  v_market bj.markets := bj.find_market(recent_trades.market);
begin
  if recent_trades.max_rows is null or recent_trades.max_rows not between 1 and 100000 then
    perform bj.raise('BJ021', 'max_rows must lie between 1 and 100000');
  end if;
  return query
    select x.* from analytics.trades x
     where x.trade_id in (select t.id from bj.trades t where t.market_id = v_market.id
                           order by t.created_at desc, t.id desc limit recent_trades.max_rows)
     order by x.at desc, x.trade_id desc;
end $$;
revoke execute on function analytics.recent_trades(text, int) from public;
grant execute on function analytics.recent_trades(text, int) to analyst;

-- Every order of the book and every conditional order, as it stands.
create or replace view analytics.orders as
select o.id as order_id, m.code as market, u.username, m.outcomes[o.outcome] as outcome, o.kind, o.side,
       o.price, o.shares::numeric, o.filled::numeric,
       case when o.status = 'open' then o.remaining::numeric else 0 end as remaining,
       o.cancelled::numeric, o.status, o.reason, o.time_in_force, o.expires_at, o.post_only,
       o.persistence, o.trigger_price, o.locked_cash::numeric, o.locked_shares::numeric,
       o.created_at, o.done_at
  from bj.orders o join bj.markets m on m.id = o.market_id join bj.users u on u.id = o.user_id;

-- Every fill against a resting order: one row per fill, the taker's side and the maker's. A
-- mint or merge fills the maker's order for the other outcome, at the complement.
create or replace view analytics.fills as
select t.id as trade_id, m.code as market, m.outcomes[t.outcome] as outcome, t.how, t.shares::numeric,
       t.price, tu.username as taker, t.side as taker_side, t.order_id as taker_order_id,
       t.total::numeric as taker_total, mu.username as maker, m.outcomes[mt.outcome] as maker_outcome,
       mt.side as maker_side, mt.price as maker_price, mt.order_id as maker_order_id,
       mt.total::numeric as maker_total, t.fee::numeric + mt.fee::numeric as fees, t.created_at as at
  from bj.trades t
  join bj.trades mt on mt.id = t.other_trade_id
  join bj.markets m on m.id = t.market_id
  join bj.users tu on tu.id = t.user_id
  join bj.users mu on mu.id = mt.user_id
 where t.role = 'taker' and t.how <> 'amm';

create or replace view analytics.price_history as
select m.code as market, m.outcomes[p.outcome] as outcome, p.t as at, p.trade_id, p.price,
       p.volume::numeric(24, 6) as volume
  from bj.markets m
  -- per market, so that a filter on the market reads only its trades
  cross join lateral (select * from bj.price_points p where p.market_id = m.id) p;

-- A market's candles as rows (api.price_history's numbers): t, outcome, open, high, low, close,
-- volume; buckets of whole minutes read the minute candles.
create or replace function analytics.candles(market text, bucket interval default '1 hour',
                                             since timestamptz default null)
returns table (t timestamptz, outcome text, open numeric, high numeric, low numeric, close numeric, volume numeric)
language sql stable security definer set search_path = ''
begin atomic
  select c.t, c.outcome, c.open, c.high, c.low, c.close, c.volume
    from jsonb_to_recordset(bj.candles(bj.find_market(candles.market), candles.bucket, candles.since))
         as c(t timestamptz, outcome text, open numeric, high numeric, low numeric, close numeric, volume numeric)
   order by c.t, c.outcome;
end;
revoke execute on function analytics.candles(text, interval, timestamptz) from public;
grant execute on function analytics.candles(text, interval, timestamptz) to analyst;

create or replace view analytics.positions as
select u.username, m.code as market, m.outcomes[p.outcome] as outcome, p.shares::numeric,
       p.cost_basis::numeric, pr.prices[p.outcome] as price,
       round(p.shares * pr.prices[p.outcome], 6) as value
  from bj.positions p
  join bj.users u on u.id = p.user_id
  join bj.markets m on m.id = p.market_id
  cross join lateral (select analytics.market_prices(m.id) as prices) pr
 where p.shares <> 0;

-- Traders ranked by net worth now: cash less what they owe (bj.debts), what is locked (shorts'
-- collateral, resting orders' escrowed coins) and positions marked to market (with the shares
-- resting asks escrow).
-- profit is net worth less what came in from outside trading. It reads every position: the
-- leaderboard (below) is this as of its last refresh.
create or replace view analytics.leaderboard_live as
with prices as materialized (  -- each market priced once
  select m.id, analytics.market_prices(m.id) as p from bj.markets m
), held as (
  select p.user_id, sum(round(p.shares * pr.p[p.outcome], 6)) as value
    from bj.positions p join prices pr on pr.id = p.market_id
   where p.shares <> 0
   group by p.user_id
), resting as (
  select o.user_id, sum(o.locked_cash) as cash,
         coalesce(sum(round(o.locked_shares * pr.p[o.outcome], 6)) filter (where o.locked_shares > 0), 0) as shares
    from bj.orders o join prices pr on pr.id = o.market_id
   where o.status = 'open'
   group by o.user_id
), locked as (
  select c.user_id, sum(c.amount) as amount from bj.collateral c where c.amount <> 0 group by c.user_id
), owed as (  -- debts left by an unresolution, not yet collected
  select d.user_id, sum(d.amount - d.repaid) as amount from bj.debts d where d.repaid < d.amount group by d.user_id
), paid as (  -- analytics.paid_in for everyone at once: bonuses, and transfers to and from each cash account
  select x.user_id, sum(x.amount) as amount
    from bj.ledger l
    cross join lateral (select l.user_id, l.amount where l.kind = 'signup_bonus'
                        union all
                        select split_part(a.account, ':', 2)::bigint, a.amount
                          from (values (l.debit, l.amount), (l.credit, -l.amount)) a(account, amount)
                         where l.kind = 'transfer' and a.account like 'cash:%') x(user_id, amount)
   where l.kind in ('signup_bonus', 'transfer')
   group by x.user_id
), worth as (
  select u.id, u.username, u.balance::numeric - coalesce(d.amount, 0) as balance,
         coalesce(c.amount, 0) + coalesce(r.cash, 0) as locked,
         coalesce(h.value, 0) + coalesce(r.shares, 0) as positions_value,
         coalesce(pd.amount, 0) as paid_in, u.is_bot
    from bj.users u
    left join held h on h.user_id = u.id
    left join resting r on r.user_id = u.id
    left join locked c on c.user_id = u.id
    left join paid pd on pd.user_id = u.id
    left join owed d on d.user_id = u.id
   where u.disabled_at is null)
select rank() over (order by w.balance + w.locked + w.positions_value desc) as rank, w.username,
       w.balance, w.locked, w.positions_value, w.balance + w.locked + w.positions_value as net_worth,
       w.balance + w.locked + w.positions_value - w.paid_in as profit, w.is_bot
  from worth w;

-- The leaderboard as of its last refresh (as_of): analytics.leaderboard_live, kept in
-- bj.standings by admin.refresh_leaderboard, which the housekeeping job runs every minute.
create or replace view analytics.leaderboard as
select s.rank, u.username, s.balance, s.locked, s.positions_value, s.net_worth, s.profit, u.is_bot, r.at as as_of
  from bj.standings s join bj.users u on u.id = s.user_id cross join bj.standings_refreshed r
 where u.disabled_at is null;  -- (a trader wiped since the ranking is gone at once)

-- Rank every trader again (analytics.leaderboard_live into bj.standings), writing only the rows
-- that changed; one refresh at a time (a second waits, then finds little to do). Answers the
-- number of traders ranked.
create or replace function admin.refresh_leaderboard() returns bigint
language plpgsql security definer set search_path = '' set jit = off as $$
declare
  v_ranked bigint;
begin
  lock table bj.standings in share row exclusive mode;
  with live as materialized (
    select u.id as user_id, l.rank, l.balance, l.locked, l.positions_value, l.net_worth, l.profit
      from analytics.leaderboard_live l join bj.users u on u.username = l.username
  ), gone as (
    delete from bj.standings s where not exists (select 1 from live l where l.user_id = s.user_id)
  ), kept as (
    insert into bj.standings as s
    select * from live
    on conflict (user_id) do update
       set rank = excluded.rank, balance = excluded.balance, locked = excluded.locked,
           positions_value = excluded.positions_value, net_worth = excluded.net_worth, profit = excluded.profit
     where (s.rank, s.balance, s.locked, s.positions_value, s.net_worth, s.profit)
           is distinct from (excluded.rank, excluded.balance, excluded.locked, excluded.positions_value,
                             excluded.net_worth, excluded.profit)
  )
  select count(*) into v_ranked from live;
  insert into bj.standings_refreshed as r (one, at) values (true, clock_timestamp())
  on conflict (one) do update set at = excluded.at;
  return v_ranked;
end $$;
revoke execute on function admin.refresh_leaderboard() from public;
grant execute on function admin.refresh_leaderboard() to service_role;

-- Per market: volume, trades, traders, and how much of the subsidy the market maker has at
-- risk (liquidity_used: 0 untouched, 1 the whole b·ln(n) would be lost if the worst outcome won).
create or replace view analytics.market_stats as
select m.code as market, m.title, analytics.market_status(m.id) as status, m.pricing, m.liquidity::numeric,
       m.fee_rate, m.volume::numeric,
       (select count(*) from bj.trades t where t.market_id = m.id) as trades,
       (select count(distinct t.user_id) from bj.trades t where t.market_id = m.id) as traders,
       m.subsidy::numeric, m.pool::numeric,
       case when m.status in ('open', 'closed') then
         round(greatest(0, (select max(x) from unnest(m.q) x) - (m.pool - m.subsidy)) / nullif(m.subsidy, 0), 6)
       end as liquidity_used,
       m.created_at, m.close_at, m.settled_at
  from bj.markets m;

-- Closing price against outcome for every resolved market; squared error per outcome and the
-- (multi-class) Brier score per market: Σ_i (p_i − w_i)².
create or replace view analytics.calibration as
select m.code as market, o.name as outcome, o.closing_price, o.payout,
       round((o.closing_price - o.payout) ^ 2, 12) as squared_error,
       round(sum((o.closing_price - o.payout) ^ 2) over (partition by m.id), 12) as brier
  from bj.markets m
  cross join lateral unnest(m.outcomes, m.closing_prices, m.payouts) o(name, closing_price, payout)
 where m.status = 'resolved';

-- The overall Brier score (mean over resolved markets) and a reliability table.
create or replace view analytics.calibration_summary as
select 'overall' as bucket, count(distinct c.market) as markets, count(*) as forecasts,
       round(avg(c.closing_price), 6) as mean_price, round(avg(c.payout), 6) as observed,
       round((select avg(b.brier) from (select distinct market, brier from analytics.calibration) b), 12) as brier
  from analytics.calibration c
union all
select format('%s-%s', floor(c.closing_price * 10) / 10, floor(c.closing_price * 10) / 10 + 0.1),
       count(distinct c.market), count(*), round(avg(c.closing_price), 6), round(avg(c.payout), 6), null
  from analytics.calibration c
 group by floor(c.closing_price * 10);

-- The house's results per market: subsidy paid in, fees earned (net of void refunds), what
-- came back at settlement (less what an unresolution put back), shortfalls carried on voids
-- and debts not yet collected after an unresolution; pnl is fees + returned − subsidy −
-- shortfall (for unsettled markets, returned is still 0).
create or replace view analytics.house_pnl as
select m.code as market, analytics.market_status(m.id) as status, m.subsidy::numeric,
       coalesce(sum(l.amount) filter (where l.debit = 'fees'), 0)
         - coalesce(sum(l.amount) filter (where l.credit = 'fees'), 0) as fees,
       coalesce(sum(l.amount) filter (where l.kind = 'settle' and l.debit = 'house'), 0)
         - coalesce(sum(l.amount) filter (where l.kind = 'unresolve' and l.credit = 'house'), 0) as returned,
       coalesce(sum(l.amount) filter (where l.kind in ('shortfall', 'debt')), 0)
         - coalesce(sum(l.amount) filter (where l.kind = 'debt_paid'), 0) as shortfall,
       coalesce(sum(l.amount) filter (where l.debit = 'fees'), 0)
         - coalesce(sum(l.amount) filter (where l.credit = 'fees'), 0)
         + coalesce(sum(l.amount) filter (where l.kind = 'settle' and l.debit = 'house'), 0)
         - coalesce(sum(l.amount) filter (where l.kind = 'unresolve' and l.credit = 'house'), 0)
         - m.subsidy
         - coalesce(sum(l.amount) filter (where l.kind in ('shortfall', 'debt')), 0)
         + coalesce(sum(l.amount) filter (where l.kind = 'debt_paid'), 0) as pnl
  from bj.markets m left join bj.ledger l on l.market_id = m.id and l.asset = 'coin'
 group by m.id;

grant select on all tables in schema analytics to analyst;

---------------------------------------------------------------------------------------------
-- The DBA's view of the calls (pg_stat_statements, migration 0012)

-- The api.* calls that cost the most, one row per function (its statements with every set of
-- named arguments together), since the statistics were last reset: calls, mean and total time,
-- the slowest call, rows. p_order: 'mean' (the slowest calls) or 'total' (where the time goes).
-- Only this database's statements; BJ050 where pg_stat_statements is not collected.
drop function if exists admin.slow_calls(int, text);
create or replace function admin.slow_calls(p_limit int default 20, p_order text default 'mean')
returns table (call text, calls bigint, mean_ms numeric, total_ms numeric, max_ms numeric, rows bigint)
language plpgsql stable security definer set search_path = '' as $$
begin
  if p_order is null or p_order not in ('mean', 'total') then
    perform bj.raise('BJ021', 'p_order is mean or total');
  end if;
  if p_limit is null or p_limit not between 1 and 1000 then
    perform bj.raise('BJ021', 'p_limit lies between 1 and 1000');
  end if;
  if to_regclass('extensions.pg_stat_statements') is null then
    perform bj.raise('BJ050', 'pg_stat_statements is not installed in this database');
  end if;
  return query execute $q$
    select 'api.' || f.name, sum(s.calls)::bigint,
           round((sum(s.total_exec_time) / nullif(sum(s.calls), 0))::numeric, 3),
           round(sum(s.total_exec_time)::numeric, 3), round(max(s.max_exec_time)::numeric, 3),
           sum(s.rows)::bigint
      from extensions.pg_stat_statements s
      cross join lateral (select (regexp_match(s.query, '"?api"?\."?([a-z_0-9]+)"?\s*\('))[1] as name) f
     where s.dbid = (select d.oid from pg_database d where d.datname = current_database())
       and f.name is not null
     group by f.name
     order by case $1 when 'total' then sum(s.total_exec_time) else sum(s.total_exec_time) / nullif(sum(s.calls), 0) end desc
     limit $2 $q$ using p_order, p_limit;
exception when object_not_in_prerequisite_state then  -- installed, not loaded
  perform bj.raise('BJ050', 'pg_stat_statements is not loaded (shared_preload_libraries)');
end $$;
revoke execute on function admin.slow_calls(int, text) from public;
grant execute on function admin.slow_calls(int, text) to service_role;
