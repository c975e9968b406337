-- The public RPC surface (schema api), served over HTTP as /rpc/<name>. Thin SECURITY DEFINER
-- functions: check the arguments, resolve the caller from the request claims, call one
-- private function, shape the JSON. Argument names are the contract's and become JSON keys.
-- They are PL/pgSQL even when one line would do in SQL: a SQL function that cannot be inlined
-- (and a SECURITY DEFINER one never is) is parsed and planned again on every call, where
-- PL/pgSQL keeps its plan for the session.

---------------------------------------------------------------------------------------------
-- Public: anon and authenticated

create or replace function api.signup(username text, password text) returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.signup(lower(signup.username), signup.password,
                   nullif(current_setting('request.ip', true), '')::inet);
end $$;
grant execute on function api.signup(text, text) to anon, authenticated;
comment on function api.signup(text, text) is
  'Open an account (username: 3-32 of a-z 0-9 _; password: 8 characters to 72 bytes), credit the signup bonus and return a login token. An address that opens too many accounts is refused for a while (Retry-After says how long). Errors: BJ024, BJ023 (400), BJ009 (409), BJ031 (429).';

create or replace function api.login(username text, password text) returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.login(lower(login.username), login.password,
                  nullif(current_setting('request.ip', true), '')::inet);
end $$;
grant execute on function api.login(text, text) to anon, authenticated;
comment on function api.login(text, text) is
  'Exchange a username and password for a bearer token {token, expires_at}. Too many failures for a username or from an address refuse further attempts for a while, growing with each (Retry-After says how long). Errors: BJ022 (401), BJ026 (403), BJ032 (429).';

drop function if exists api.list_markets(text);
create or replace function api.list_markets(status text default null, max_rows int default 50,
                                            after text default null) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  v_after bigint := 0;
begin
  if list_markets.status is not null and list_markets.status not in ('open', 'closed', 'resolved', 'voided') then
    perform bj.raise('BJ021', 'status must be open, closed, resolved or voided');
  end if;
  if list_markets.max_rows is null or list_markets.max_rows < 1 or list_markets.max_rows > 500 then
    perform bj.raise('BJ021', 'max_rows must lie between 1 and 500');
  end if;
  if list_markets.after is not null then
    select m.id into v_after from bj.markets m where m.code = list_markets.after;
    if not found then
      perform bj.raise('BJ021', 'after is the code of the last market of the page before');
    end if;
  end if;
  return bj.markets_page(list_markets.status, v_after, list_markets.max_rows, clock_timestamp());
end $$;
grant execute on function api.list_markets(text, int, text) to anon, authenticated;
comment on function api.list_markets(text, int, text) is
  'A page of markets with current prices, in the order they were created: every status, or the given one (open, closed, resolved, voided); at most max_rows (1-500); after the market whose code is after (the last of the page before). A page shorter than max_rows is the last. Errors: BJ021 (400).';

create or replace function api.get_market(market text) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return bj.market_json(bj.find_market(get_market.market));
end $$;
grant execute on function api.get_market(text) to anon, authenticated;
comment on function api.get_market(text) is
  'One market by code: status, pricing, liquidity, fee rate, volume and each outcome''s price and outstanding shares. Errors: BJ010 (404).';

drop function if exists api.quote(text, text, text, numeric, numeric);
create or replace function api.quote(market text, outcome text, side text, shares numeric default null,
                                     spend numeric default null, tolerance numeric default null) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return bj.quote(quote.market, quote.outcome, quote.side, quote.shares, quote.spend, auth.uid(),
                  quote.tolerance);
end $$;
grant execute on function api.quote(text, text, text, numeric, numeric, numeric) to anon, authenticated;
comment on function api.quote(text, text, text, numeric, numeric, numeric) is
  'The exact terms api.trade would execute now: {shares, amount, fee, total, avg_price, price_before, price_after}. Give exactly one of shares and spend (a budget, fee included, buys only). With tolerance (a fraction, 0 to 0.5) also the slippage guard to send with the trade: max_total for a buy, min_total for a sale. Errors: BJ010 (404), BJ011, BJ020, BJ021 (400), BJ002 (409).';

---------------------------------------------------------------------------------------------
-- Authenticated only

create or replace function api.me() returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return bj.account_json(bj.require_user());
end $$;
grant execute on function api.me() to authenticated;
comment on function api.me() is
  'The calling trader: balance, locked collateral, positions marked to market, and orders. Errors: BJ025 (401), BJ026 (403).';

create or replace function api.trade(market text, outcome text, side text, shares numeric default null,
                                     spend numeric default null, max_total numeric default null,
                                     min_total numeric default null, idempotency_key text default null)
returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  if trade.idempotency_key is null then  -- (the common case, one call less)
    return bj.execute_trade(bj.require_user(), trade.market, trade.outcome, trade.side, trade.shares,
                            trade.spend, trade.max_total, trade.min_total, p_cascade => true);
  end if;
  return bj.trade(bj.require_user(), trade.market, trade.outcome, trade.side, trade.shares,
                  trade.spend, trade.max_total, trade.min_total, trade.idempotency_key);
end $$;
grant execute on function api.trade(text, text, text, numeric, numeric, numeric, numeric, text) to authenticated;
comment on function api.trade(text, text, text, numeric, numeric, numeric, numeric, text) is
  'Buy or sell shares of an outcome at the market maker''s price; selling more than you hold opens a collateralised short. max_total / min_total bound the total (slippage guard); a retried idempotency_key returns the first receipt. The receipt lists the conditional orders the trade fired. Errors: BJ010 (404), BJ011, BJ020, BJ021 (400), BJ001, BJ002, BJ003, BJ004, BJ005, BJ006 (409), BJ030 (429).';

drop function if exists api.place_order(text, text, text, numeric, numeric);
create or replace function api.place_order(
  market text, outcome text, side text default null, kind text default 'limit',
  shares numeric default null, price numeric default null, odds numeric default null,
  stake numeric default null, time_in_force text default 'gtc', expires_at timestamptz default null,
  post_only boolean default false, persistence text default 'persist',
  client_order_id text default null, stp text default 'cancel_resting',
  trigger_price numeric default null, limit_price numeric default null)
returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.place_order(bj.require_user(), place_order.market, place_order.outcome, place_order.side,
    place_order.kind, place_order.shares, place_order.price, place_order.odds, place_order.stake,
    place_order.time_in_force, place_order.expires_at, place_order.post_only, place_order.persistence,
    place_order.client_order_id, place_order.stp, place_order.trigger_price, place_order.limit_price,
    bj.setting('trade_cooldown_ms')::numeric);
end $$;
grant execute on function api.place_order(text, text, text, text, numeric, numeric, numeric, numeric, text, timestamptz, boolean, text, text, text, numeric, numeric) to authenticated;
comment on function api.place_order(text, text, text, text, numeric, numeric, numeric, numeric, text, timestamptz, boolean, text, text, text, numeric, numeric) is
  'Place an order. kind limit (side buy or sell, shares, price on the market''s tick; or side back or lay with odds on the ladder and a stake) takes what is marketable at its price or better, from the book or the market maker, then rests (time_in_force gtc, or gtd until expires_at) or is cancelled (ioc; fok fills whole or not at all); post_only refuses to take; stp cancel_resting (the default) cancels your own resting orders it meets, cancel_newest stops this one. kind market takes at any price (ioc or fok). kind stop_loss or take_profit protects a position: fired when the price crosses trigger_price, as a market order or as a limit order at limit_price. A retried client_order_id returns the order; other terms are refused. Errors: BJ010, BJ012 (404), BJ011, BJ020, BJ021 (400), BJ001, BJ002, BJ004, BJ005, BJ014, BJ015 (409), BJ030 (429).';

create or replace function api.place_orders(orders jsonb) returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.place_orders(bj.require_user(), place_orders.orders);
end $$;
grant execute on function api.place_orders(jsonb) to authenticated;
comment on function api.place_orders(jsonb) is
  'Place up to 20 orders (objects of place_order''s arguments) in one transaction, each on its own: the answer is one result per order, in order, the order or its error {code, message, details, hint}; a refused order changes nothing and stops nothing. Errors: BJ021 (400).';

drop function if exists api.cancel_order(bigint);
create or replace function api.cancel_order(order_id bigint default null, client_order_id text default null)
returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.cancel_order(bj.require_user(), cancel_order.order_id, cancel_order.client_order_id);
end $$;
grant execute on function api.cancel_order(bigint, text) to authenticated;
comment on function api.cancel_order(bigint, text) is
  'Cancel one of your open orders, by order_id or client_order_id; what it locks comes back. Errors: BJ021 (400), BJ012 (404), BJ007 (409).';

create or replace function api.cancel_orders(market text default null, order_ids bigint[] default null)
returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.cancel_orders(bj.require_user(), cancel_orders.market, cancel_orders.order_ids);
end $$;
grant execute on function api.cancel_orders(text, bigint[]) to authenticated;
comment on function api.cancel_orders(text, bigint[]) is
  'Cancel your open orders: all of them, one market''s, or a list of ids (at most 100): {cancelled: [ids]}. Errors: BJ010 (404), BJ021 (400).';

create or replace function api.book(market text, outcome text default null, depth int default 10,
                                    format text default 'price')
returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  v_market bj.markets := bj.find_market(book.market);
begin
  if book.outcome is not null then
    perform bj.outcome_index(v_market, book.outcome);
  end if;
  return bj.book_json(v_market, book.outcome, book.depth, book.format);
end $$;
grant execute on function api.book(text, text, int, text) to anon, authenticated;
comment on function api.book(text, text, int, text) is
  'A market''s order book: per outcome, bids and asks by price level {price, shares, orders} (best first, depth levels), the market maker''s shares between its price and each level {from, to, side, shares}, and the book''s sequence number seq; format odds reads them as back and lay offers at ladder odds. Errors: BJ010 (404), BJ011, BJ021 (400).';

create or replace function api.my_orders(market text default null, status text default 'open')
returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return bj.my_orders(bj.require_user(), my_orders.market, my_orders.status);
end $$;
grant execute on function api.my_orders(text, text) to authenticated;
comment on function api.my_orders(text, text) is
  'Your orders, newest first: open ones, or filled, cancelled or all; of one market or every one. Each with its fills. Errors: BJ010 (404), BJ021 (400).';

drop function if exists api.my_trades(bigint, int);
create or replace function api.my_trades(since bigint default null, max_rows int default 100,
                                         latest boolean default false) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  v_uid bigint := bj.require_user();
begin
  if my_trades.max_rows is null or my_trades.max_rows < 1 or my_trades.max_rows > 1000 then
    perform bj.raise('BJ021', 'max_rows must lie between 1 and 1000');
  end if;
  return coalesce((
    select jsonb_agg(bj.trade_json(t) order by t.id)
      from (select * from bj.trades t
             where t.user_id = v_uid and t.id > coalesce(my_trades.since, 0)
             order by case when my_trades.latest then -t.id else t.id end
             limit my_trades.max_rows) t), '[]');
end $$;
grant execute on function api.my_trades(bigint, int, boolean) to authenticated;
comment on function api.my_trades(bigint, int, boolean) is
  'Your trades after trade id `since`, oldest first, at most max_rows (1-1000): the first of them, or with latest the last. Errors: BJ021 (400).';

create or replace function api.changes(since text default null) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return bj.changes(changes.since);
end $$;
grant execute on function api.changes(text) to anon, authenticated;
comment on function api.changes(text) is
  'Markets changed after the cursor, and the next cursor: {cursor, markets, book}. Without a cursor, the cursor to follow and the first page of markets (as list_markets answers it, read with the cursor; more: true when others follow: read them with list_markets after the last). Polling with each returned cursor never misses or repeats a change. Errors: BJ021 (400).';

-- The stream's catch-up between two cursors (the HTTP layer's live stream hands out the rest).
create or replace function api.changes_between(since text, until text) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return bj.changes(changes_between.since, changes_between.until);
end $$;
grant execute on function api.changes_between(text, text) to anon, authenticated;
comment on function api.changes_between(text, text) is
  'Markets changed between two cursors returned by api.changes: {cursor, markets}. Errors: BJ021 (400).';

---------------------------------------------------------------------------------------------
-- Bots (docs/bots.md): a trader's own, named by their account's username

create or replace function api.create_bot(name text, source text, markets text[], cooldown_ms int default null)
returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.create_bot(bj.require_user(), create_bot.name, create_bot.source, create_bot.markets,
                       create_bot.cooldown_ms);
end $$;
grant execute on function api.create_bot(text, text, text[], int) to authenticated;
comment on function api.create_bot(text, text, text[], int) is
  'A bot: an account of its own named `name`, labelled a bot and owned by you, running the BetJeeScript program `source` each time one of `markets` (1-20 codes) changes, no more often than its cooldown (cooldown_ms, at least bot_cooldown_ms). It starts with no coins: api.fund_bot. Errors: BJ040 (400: the program is refused, with where and why), BJ024, BJ021 (400), BJ010 (404), BJ009 (409).';

create or replace function api.update_bot(bot text, source text default null, markets text[] default null,
                                          cooldown_ms int default null) returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.update_bot(bj.require_user(), update_bot.bot, update_bot.source, update_bot.markets,
                       update_bot.cooldown_ms);
end $$;
grant execute on function api.update_bot(text, text, text[], int) to authenticated;
comment on function api.update_bot(text, text, text[], int) is
  'Change your bot''s program, the markets it watches or its cooldown (what is not given stays). Errors: BJ040, BJ021 (400), BJ041, BJ010 (404).';

create or replace function api.pause_bot(bot text) returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.set_bot_status(bj.require_user(), pause_bot.bot, 'paused');
end $$;
grant execute on function api.pause_bot(text) to authenticated;
comment on function api.pause_bot(text) is 'Stop your bot from running (its orders stay). Errors: BJ041 (404).';

create or replace function api.resume_bot(bot text) returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.set_bot_status(bj.require_user(), resume_bot.bot, 'active');
end $$;
grant execute on function api.resume_bot(text) to authenticated;
comment on function api.resume_bot(text) is 'Let your paused bot run again. Errors: BJ041 (404).';

create or replace function api.delete_bot(bot text) returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  return bj.set_bot_status(bj.require_user(), delete_bot.bot, 'deleted');
end $$;
grant execute on function api.delete_bot(text) to authenticated;
comment on function api.delete_bot(text) is
  'Delete your bot: it never runs again, its open orders are cancelled and its cash comes back to you (its positions stay with its account until their markets settle). Errors: BJ041 (404).';

create or replace function api.fund_bot(bot text, amount numeric) returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  if fund_bot.amount is null or fund_bot.amount <= 0 then
    perform bj.raise('BJ020', 'amount must be positive');
  end if;
  return bj.fund_bot(bj.require_user(), fund_bot.bot, fund_bot.amount);
end $$;
grant execute on function api.fund_bot(text, numeric) to authenticated;
comment on function api.fund_bot(text, numeric) is
  'Move coins from your balance to your bot''s. Errors: BJ020 (400), BJ041 (404), BJ001 (409).';

create or replace function api.defund_bot(bot text, amount numeric) returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
begin
  if defund_bot.amount is null or defund_bot.amount <= 0 then
    perform bj.raise('BJ020', 'amount must be positive');
  end if;
  return bj.fund_bot(bj.require_user(), defund_bot.bot, -defund_bot.amount);
end $$;
grant execute on function api.defund_bot(text, numeric) to authenticated;
comment on function api.defund_bot(text, numeric) is
  'Move coins from your bot''s balance back to yours. Errors: BJ020 (400), BJ041 (404), BJ001 (409).';

create or replace function api.my_bots() returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  v_uid bigint := bj.require_user();
begin
  return coalesce((select jsonb_agg(bj.bot_json(b) order by b.id) from bj.bots b
                    where b.owner_id = v_uid and b.status <> 'deleted'), '[]');
end $$;
grant execute on function api.my_bots() to authenticated;
comment on function api.my_bots() is
  'Your bots: name, status, program, markets, cooldown, balance, runs.';

create or replace function api.bot_runs(bot text, max_rows int default 50) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return bj.bot_runs(bj.require_user(), bot_runs.bot, bot_runs.max_rows);
end $$;
grant execute on function api.bot_runs(text, int) to authenticated;
comment on function api.bot_runs(text, int) is
  'Your bot''s runs, newest first (at most max_rows, 1-500): when, the change it ran for, what it read (inputs), its actions with their results or errors, its log, its error, how long it took. Errors: BJ021 (400), BJ041 (404).';
