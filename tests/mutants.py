"""The mutants of `make mutate` (scripts/mutate.py): each a small, plausible bug, stated as a
search-and-replace inside one named function, with the tests that own the rule it breaks.
A new feature adds its own here as it lands. A mutant that survives is either killed by a new
test or kept with `equivalent=` saying why it changes nothing observable."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    file: str
    function: str
    search: str
    replace: str
    bug: str
    tests: tuple[str, ...]
    equivalent: str = ""


PRICING = ("pgtap/10_pricing.sql", "pgtap/30_trading.sql", "tests/test_properties.py")
TRADING = ("pgtap/30_trading.sql", "tests/test_properties.py")
ORDERS = ("pgtap/40_orders.sql",)
LIFECYCLE = ("pgtap/50_lifecycle.sql", "tests/test_properties.py::test_voiding_restores_every_traders_wealth")
AUTH = ("pgtap/60_auth.sql", "tests/test_hardening.py")
RLS = ("pgtap/80_rls.sql", "tests/test_privacy.py")
INVARIANTS = ("pgtap/95_invariants.sql",)
HTTP = ("tests/test_http.py", "tests/test_hardening.py")

MUTANTS = [
    # ---- pricing (sql/10_pricing.sql)
    Mutant("sql/10_pricing.sql", "bj.ceil6", "ceil(p_x * 1000000)", "round(p_x * 1000000)",
           "costs rounded to the nearest millionth, not up", PRICING),
    Mutant("sql/10_pricing.sql", "bj.floor6", "floor(p_x * 1000000)", "round(p_x * 1000000)",
           "proceeds rounded to the nearest millionth, not down", PRICING),
    Mutant("sql/10_pricing.sql", "bj.lmsr_cost", "round(p_b * (v_m + ln(v_sum)), 30)",
           "round(p_b * ln(v_sum), 30)", "log-sum-exp forgets to add back the shift", PRICING),
    Mutant("sql/10_pricing.sql", "bj.price_trade", "amount := bj.ceil6(v_cost);\n    fee := bj.ceil6(amount * p_fee_rate);",
           "amount := bj.ceil6(v_cost);\n    fee := bj.ceil6(v_cost * p_fee_rate);",
           "a buy's fee computed on the cost before its rounding", PRICING),
    Mutant("sql/10_pricing.sql", "bj.price_trade", "total := amount - fee;", "total := amount + fee;",
           "a sale adds the fee to the proceeds", PRICING),
    Mutant("sql/10_pricing.sql", "bj.price_trade",
           "exit when amount + bj.ceil6(amount * p_fee_rate) <= p_spend;",
           "exit when amount + bj.ceil6(amount * p_fee_rate) < p_spend;",
           "the search down from the closed form stops a millionth early on an exact budget", PRICING,
           equivalent="the search up that follows takes the millionth back: the same shares"),
    Mutant("sql/10_pricing.sql", "bj.price_trade",
           "exit when amount + bj.ceil6(amount * p_fee_rate) > p_spend;",
           "exit when amount + bj.ceil6(amount * p_fee_rate) >= p_spend;",
           "a budget that exactly pays for its shares buys one millionth fewer", PRICING,
           equivalent="the search up is only a guard: the closed form never lands below the answer "
                      "(every rounding makes a total exceed cost·(1 + fee)), so it only confirms"),
    Mutant("sql/10_pricing.sql", "bj.lmsr_prices", "v_e[i] := round(v_e[i] / v_sum, 30);",
           "v_e[i] := round(v_e[i], 30);", "prices not normalised (not a softmax)", PRICING),
    Mutant("sql/10_pricing.sql", "bj.sigmoid_price", "0.01 + 0.98", "0.01 + 0.99",
           "the sigmoid's cap at 1.00 instead of 0.99", PRICING),
    Mutant("sql/10_pricing.sql", "bj.display_prices",
           "least(greatest(round(p_prices[i], 9), 0.000000001), 0.999999999)",
           "round(p_prices[i], 9)", "a displayed price can be exactly 0 or 1", PRICING),
    # ---- ledger (sql/20_ledger.sql)
    Mutant("sql/20_ledger.sql", "bj.post", "values (p_journal, p_kind, p_asset, p_debit, p_credit, -p_amount",
           "values (p_journal, p_kind, p_asset, p_credit, p_debit, -p_amount",
           "a negative movement posted the wrong way round", LIFECYCLE + INVARIANTS),
    Mutant("sql/20_ledger.sql", "bj.ledger_balances", "select asset, credit, -amount from bj.ledger",
           "select asset, credit, amount from bj.ledger", "the replay adds credits instead of subtracting",
           INVARIANTS + TRADING),
    # ---- trading (sql/30_trading.sql)
    Mutant("sql/30_trading.sql", "bj.trade", "jsonb_build_object('market', p_market, 'outcome'",
           "jsonb_build_object('outcome'", "an idempotency key reused on another market replays the first",
           TRADING),
    Mutant("sql/30_trading.sql", "bj.check_take", "p_plan.total > p_max_total", "p_plan.total >= p_max_total",
           "a max_total equal to the total is refused", TRADING),
    Mutant("sql/30_trading.sql", "bj.check_take", "p_plan.total < p_min_total", "p_plan.total <= p_min_total",
           "a min_total equal to the proceeds is refused", TRADING),
    Mutant("sql/30_trading.sql", "bj.check_take",
           "greatest(0, -least(v_account.new_position, v_held.others));",
           "greatest(0, -v_account.new_position);",
           "collateral ignores shorts in the other outcomes", TRADING),
    Mutant("sql/30_trading.sql", "bj.execute_trade", "where m.code = p_market for update;",
           "where m.code = p_market;", "the market row is read without its lock",
           ("tests/test_concurrency.py",)),
    Mutant("sql/30_trading.sql", "bj.check_take",
           "v_held.last_trade_at > p_now - make_interval", "v_held.last_trade_at < p_now - make_interval",
           "the cooldown refuses the wrong trades", ("pgtap/30_trading.sql", "tests/test_concurrency.py")),
    Mutant("sql/30_trading.sql", "bj.check_take",
           "not (select m.shorts from bj.pricing_models m where m.name = p_market.pricing)",
           "false", "a sigmoid market allows short sales", TRADING),
    Mutant("sql/30_trading.sql", "bj.post_fills", "volume = m.volume + p_plan.amount",
           "volume = m.volume + p_plan.total", "a market's volume counts fees", TRADING),
    Mutant("sql/30_trading.sql", "bj.post_fills",
           "last_trade_at = case when p_root is null then p_now else u.last_trade_at end",
           "last_trade_at = p_now", "a fired stop starts its owner's cooldown", ORDERS),
    Mutant("sql/30_trading.sql", "bj.check_take",
           "if v_account.pool < bj.array_max(p_plan.q_after) + p_plan.pairs_after then",
           "if v_account.pool < 0 then", "the market maker takes trades its pool cannot pay out", TRADING),
    Mutant("sql/30_trading.sql", "bj.require_open",
           "if bj.market_status_at(p_market, clock_timestamp()) <> 'open' then",
           "if p_market.status <> 'open' then", "a market past its close_at still quotes", TRADING),
    # ---- conditional orders (sql/40_orders.sql)
    Mutant("sql/40_orders.sql", "bj.run_cascade", "and o.trigger_price >= pr.price::numeric",
           "and o.trigger_price > pr.price::numeric",
           "a falling trigger exactly hit does not fire", ORDERS),
    Mutant("sql/30_trading.sql", "bj.post_fills", "and o.falls and o.trigger_price >= pr.price",
           "and o.falls and o.trigger_price > pr.price",
           "a trade that moves the price exactly onto a falling trigger starts no cascade", ORDERS),
    Mutant("sql/40_orders.sql", "bj.run_cascade", "least(v_order.shares, abs(v_position))",
           "v_order.shares", "a fired stop sells more than the position left, opening a short", ORDERS),
    Mutant("sql/40_orders.sql", "bj.run_cascade", "exit when v_count >= v_max;",
           "exit when v_count > v_max;", "a cascade fires one order past max_cascade", ORDERS),
    Mutant("sql/40_orders.sql", "bj.run_cascade", "order by o.trigger_price desc, o.id limit 1)",
           "order by o.trigger_price, o.id limit 1)", "crossed orders fire shallowest first", ORDERS),
    Mutant("sql/40_orders.sql", "bj.place_order", "then v_price <= p_trigger", "then v_price < p_trigger",
           "a stop placed exactly at the current price is accepted (it fires at once)", ORDERS),
    Mutant("sql/40_orders.sql", "bj.cancel_order", "where o.id = p_order and o.user_id = p_user for update;",
           "where o.id = p_order for update;", "a trader cancels another trader's order",
           ORDERS + ("tests/test_privacy.py",)),
    # ---- lifecycle (sql/50_lifecycle.sql)
    Mutant("sql/50_lifecycle.sql", "bj.settlement", "bj.floor6(sum(p_w[p.outcome] * p.shares))",
           "round(sum(p_w[p.outcome] * p.shares), 6)", "payouts rounded to the nearest, not down",
           LIFECYCLE),
    Mutant("sql/50_lifecycle.sql", "admin.create_market", "create_market.liquidity * ln(v_n::numeric)",
           "create_market.liquidity * ln(2::numeric)", "the subsidy ignores the number of outcomes",
           LIFECYCLE + INVARIANTS),
    Mutant("sql/50_lifecycle.sql", "admin.void_market",
           "v_balance := v_balance + v_u.collateral + v_u.amount + v_u.fee;",
           "v_balance := v_balance + v_u.collateral + v_u.amount;", "voiding keeps the fees", LIFECYCLE),
    Mutant("sql/50_lifecycle.sql", "admin.void_market", "when u.disabled_at is null or v_burn is null then u.id",
           "when true then u.id", "voiding settles a wiped account itself, not the _burned account",
           LIFECYCLE),
    Mutant("sql/50_lifecycle.sql", "bj.lock_unsettled", "if v_market.status in ('resolved', 'voided') then",
           "if v_market.status = 'resolved' then", "a voided market can be settled again", LIFECYCLE),
    Mutant("sql/50_lifecycle.sql", "bj.payout_vector", "if (select sum(w) from unnest(v_w) w) <> 1 then",
           "if (select sum(w) from unnest(v_w) w) > 1 then", "payout weights summing below 1 are accepted",
           LIFECYCLE),
    Mutant("sql/50_lifecycle.sql", "admin.resolve_market_split",
           "update bj.collateral c set amount = 0\n     where c.user_id = v_s.user_id",
           "update bj.collateral c set amount = amount\n     where c.user_id = v_s.user_id",
           "resolution posts the collateral's release but keeps it locked", LIFECYCLE),
    # ---- identity and the throttle (sql/60_auth.sql)
    Mutant("sql/60_auth.sql", "bj.signup", "octet_length(p_password) > 72", "length(p_password) > 72",
           "passwords limited to 72 characters while bcrypt reads 72 bytes", AUTH),
    Mutant("sql/60_auth.sql", "bj.signup", "if v_recent >= bj.setting('signup_ip_max')::int then",
           "if v_recent > bj.setting('signup_ip_max')::int then", "one signup more than the limit per address",
           AUTH + ("tests/test_concurrency.py",)),
    Mutant("sql/60_auth.sql", "bj.login", "if v_user.disabled_at is not null then", "if false then",
           "a wiped account logs in", AUTH),
    Mutant("sql/60_auth.sql", "bj.login", "delete from bj.throttle t where t.key = v_user_key;", "",
           "a correct password does not clear the username's failures", AUTH),
    Mutant("sql/60_auth.sql", "bj.throttle_fail", "if v_row.failures < p_max then", "if v_row.failures <= p_max then",
           "the throttle blocks one failure late", AUTH),
    Mutant("sql/60_auth.sql", "bj.throttle_fail", "least(v_cap, v_base * 2 ^ least(v_row.failures - p_max, 30))",
           "least(v_cap, v_base)", "the back-off does not grow", AUTH),
    Mutant("sql/60_auth.sql", "bj.require_user", "if not found or v_disabled is not null then",
           "if not found then", "a wiped account's token still works", AUTH + ("tests/test_http.py",)),
    Mutant("sql/60_auth.sql", "admin.wipe_users", "perform bj.raise('BJ013'", "perform bj.raise('BJ021'",
           "an unknown username is reported as bad input, not as unknown", AUTH),
    # ---- row-level security and grants (sql/02_rls.sql)
    Mutant("sql/02_rls.sql", "auth.uid", "->> 'sub'", "->> 'user_id'",
           "the trader's id is read from the wrong claim", RLS + ("tests/test_http.py",)),
    # ---- invariants (sql/95_invariants.sql)
    Mutant("sql/95_invariants.sql", "admin.check_invariants",
           "having coalesce(max(c.amount), 0) < greatest(0, -min(p.shares))",
           "having coalesce(max(c.amount), 0) < least(0, -min(p.shares))",
           "'collateral covers shorts' can never report", INVARIANTS),
    Mutant("sql/95_invariants.sql", "admin.check_invariants",
           "where m.status in ('open', 'closed') and m.pool < (select max(x) from unnest(m.q) x)",
           "where m.status in ('open', 'closed') and m.pool < (select min(x) from unnest(m.q) x)",
           "solvency is checked against the least likely payout", INVARIANTS),
    # ---- the api schema (sql/70_api.sql, sql/90_analytics.sql)
    Mutant("sql/70_api.sql", "api.my_trades", "where t.user_id = v_uid and ", "where ",
           "api.my_trades shows everyone's trades", ("tests/test_privacy.py",)),
    Mutant("sql/70_api.sql", "api.login", "nullif(current_setting('request.ip', true), '')::inet", "null",
           "logins over HTTP escape the per-address throttle", HTTP),
    Mutant("sql/70_api.sql", "api.list_markets", "bj.market_status(m) = list_markets.status",
           "m.status = list_markets.status", "a market past its close_at is listed as open",
           ("pgtap/50_lifecycle.sql",)),
    Mutant("sql/90_analytics.sql", "bj.candles", "if extract(year from p_bucket) <> 0 or extract(month from p_bucket) <> 0 then",
           "if false then", "a month bucket reaches date_bin", ("pgtap/90_analytics.sql",)),
    # ---- the HTTP layer (api/)
    Mutant("api/auth.py", "identify", "leeway=0", "leeway=5", "an expired token is accepted for 5 s", HTTP),
    Mutant("api/rpc.py", "parse_body", "parse_constant=_not_json,", "",
           "NaN and Infinity in a body reach the database", HTTP),
    Mutant("api/rpc.py", "_check", "value.encode(\"utf-8\")", "value", "lone surrogates reach the driver",
           HTTP),
    Mutant("api/rpc.py", "_no_duplicates", "if len(out) != len(pairs):", "if False:",
           "a key given twice silently takes the last value", HTTP),
    Mutant("api/address.py", "client_address",
           "if address is None or not any(address in net for net in trusted):", "if address is None:",
           "X-Forwarded-For believed from any peer once a proxy is named", HTTP),
    Mutant("api/app.py", "forward", 'readonly = request.method in ("GET", "HEAD")',
           'readonly = request.method == "GET"', "HEAD on a read function is bad input", HTTP),
    Mutant("api/errors.py", "Statuses", 'if code == "42501" and anonymous:', "if False:",
           "a visitor calling a trader's function gets 403, not 401", HTTP),
    Mutant("api/rpc.py", "call", '"off" if confirm else "on"', '"off"',
           "without the right to confirm, writes are answered before they are durable", HTTP),
    Mutant("api/app.py", "Limit", "asyncio.Semaphore(max(1, n))", "asyncio.Semaphore(100)",
           "password checks are not bounded", HTTP),
    Mutant("api/stream.py", "Broadcaster", 'if since is not None and not batch["markets"]:',
           "if False:", "an idle stream writes a confirming commit every poll", ("tests/test_stream.py",)),
]
