"""Privacy between traders, as a matrix over the whole of schema api: what one trader (B), or
anyone without a login, can learn about another trader (A) through any api function is public
market data only (prices, market state, trades without owners, book levels). Never A's balance,
locked collateral, positions, cost basis, orders, stop triggers, idempotency keys or trade
history as A's, nor even whether A holds something.

A is given distinctive private state first (odd amounts, a short with collateral locked, a
stop-loss and a take-profit, idempotency keys, a trade that fired someone else's stop); then
every api function is called as the viewer with arguments that point at A's things, and every
answer and every error (message, detail, hint) is searched for A's values. A function of schema
api without a row in the case table fails the matrix: whoever adds one decides, there, what it
may show another trader.

A's numbers are recorded as PostgreSQL renders them in JSON (the viewer's answers are read with
exact decimals too) and searched for as whole numbers; they are made distinctive enough (six
significant digits or more) that none can turn up by accident, and the bystander C's trades
keep the markets' public totals apart from A's positions. A's ids (user, orders, trades) are
small integers, so they are checked where ids stand in an answer instead: none of A's may be
shown, except a fired order's, whose trade is public."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.types.json import set_json_loads

from tests.conftest import rpc_sql, unique

D = Decimal
# what a receipt may say of a conditional order its trade fired: the public facts of a trade
FIRED_KEYS = {"order_id", "trade_id", "market", "outcome", "side", "shares", "avg_price",
              "price_after"}
NEVER_AN_ORDER = 9_000_000_000_000  # an order id no sequence reaches in a test run
ONCE = {"trade", "place_order", "signup", "create_bot"}  # not called again in the second round


def exact_json(data: bytes | str) -> Any:
    """JSON with its numbers as PostgreSQL rendered them (Decimal, not float)."""
    return json.loads(data, parse_float=Decimal)


def price(db: psycopg.Connection, market: str, outcome: str) -> Decimal:
    answer = rpc_sql(db, None, "get_market", market=market)
    return next(o["price"] for o in answer["outcomes"] if o["outcome"] == outcome)


@dataclass
class World:
    """The markets, the traders and A's things the viewer's arguments point at."""
    m1: str  # YES/NO: A long YES (with a take-profit), a bystander's stop fired by A
    m2: str  # RED/GREEN/BLUE: A short RED (collateral locked, with a stop-loss)
    m3: str  # a market nobody trades: what "no position" looks like for anyone
    a: dict  # A's signup answer
    b: dict  # B's signup answer
    keys: dict[str, str]  # A's idempotency keys by what A used them for
    replay: dict[str, Any]  # the arguments A used with keys["replay"]
    orders: dict[str, int]  # A's orders: take_profit (open), stop_loss (fires), cancelled
    b_order: int  # one of B's own orders
    cursors: tuple[str, str]  # change-feed cursors before and after A's setup
    started: datetime
    nobody: str  # a username nobody has
    newcomer: str  # a username for the viewer to sign up with
    history: dict[str, Decimal] = field(default_factory=dict)  # A's balance after each trade
    a_bot: str = "a_bot"  # A's bot (its account is private as A's is)
    nobot: str = "no_such_bot"
    b_bot: str = "b_bot"  # one of B's own


def trades_at_a(w: World) -> dict[str, dict[str, Any]]:
    """B's trades that touch A's things, checked one by one beyond the search."""
    return {
        # pushes RED through A's stop-loss: the receipt lists it, as public facts only
        "fires A's stop": {"market": w.m2, "outcome": "RED", "side": "buy", "shares": D(30)},
        # A's key with A's very arguments: a trade of B's own, not A's receipt replayed
        "A's key, A's arguments": {**w.replay, "idempotency_key": w.keys["replay"]},
        # A's key with other arguments: a trade of B's own, not a conflict quoting A
        "A's key, other arguments": {"market": w.m2, "outcome": "BLUE", "side": "buy",
                                     "shares": D("1.5"), "idempotency_key": w.keys["short"]},
    }


def privacy_cases(w: World) -> dict[str, list[dict[str, Any]]]:
    """Every api function, with the argument sets the viewer calls it with, in this order.
    Many point at A's things: A's markets and outcomes, A's order ids, A's idempotency keys,
    A's username. A new api function needs a row here: decide what it may show another trader
    and what of A's its arguments could point at, then add it."""
    m1, m2, m3 = w.m1, w.m2, w.m3
    before, after = w.cursors
    return {
        "list_markets": [{}, {"status": "open"}, {"status": "closed"}, {"status": "resolved"},
                         {"status": "voided"}, {"status": "mine"}, {"after": m1, "max_rows": 2},
                         {"after": "no_such_m"}, {"max_rows": 0}],
        "get_market": [{"market": m1}, {"market": m2}, {"market": m3}, {"market": "no_such_m"}],
        "quote": [
            {"market": m1, "outcome": "YES", "side": "sell", "shares": D(1)},
            {"market": m2, "outcome": "RED", "side": "buy", "shares": D(1)},
            {"market": m2, "outcome": "RED", "side": "buy", "spend": D(5)},
            {"market": m2, "outcome": "PURPLE", "side": "buy", "shares": D(1)},
            {"market": m1, "outcome": "YES", "side": "buy", "shares": D(1), "spend": D(1)},
        ],
        "price_history": [
            {"market": m1}, {"market": m2},
            {"market": m1, "bucket": "1 second", "since": w.started},
            {"market": m2, "bucket": "1 second"},
            {"market": m1, "bucket": "1 mon"}, {"market": "no_such_m"},
        ],
        "changes": [{}, {"since": before}, {"since": after}, {"since": "not a cursor"}],
        "changes_between": [{"since": before, "until": after}, {"since": after, "until": after},
                            {"since": before, "until": "not a cursor"}],
        "login": [
            {"username": w.a["username"], "password": "not the password"},
            {"username": w.nobody, "password": "not the password"},
            {"username": w.b["username"], "password": "password123"},
        ],
        "signup": [
            {"username": w.a["username"], "password": "password123"},
            {"username": w.a["username"].upper(), "password": "password123"},
            {"username": w.newcomer, "password": "password123"},
        ],
        "me": [{}],
        "my_trades": [{}, {"since": 0}, {"since": 0, "max_rows": 1000}, {"since": None},
                      {"max_rows": 0}, {"latest": True, "max_rows": 2}],
        "cancel_order": [{"order_id": w.orders["take_profit"]}, {"order_id": w.orders["stop_loss"]},
                         {"order_id": w.orders["cancelled"]}, {"order_id": NEVER_AN_ORDER},
                         {"order_id": w.b_order}],
        "place_order": [
            # A holds m1 YES and m2 RED, nobody holds m3 YES or m2 BLUE (yet): one answer
            {"market": m1, "outcome": "YES", "kind": "stop_loss", "shares": D(1),
             "trigger_price": D("0.2")},
            {"market": m3, "outcome": "YES", "kind": "stop_loss", "shares": D(1),
             "trigger_price": D("0.2")},
            {"market": m2, "outcome": "RED", "kind": "take_profit", "shares": D(1),
             "trigger_price": D("0.99")},
            {"market": m2, "outcome": "BLUE", "kind": "take_profit", "shares": D(1),
             "trigger_price": D("0.99")},
            {"market": m2, "outcome": "GREEN", "kind": "take_profit", "shares": D(1),
             "trigger_price": D("0.95")},
            {"market": m1, "outcome": "YES", "kind": "limit", "shares": D(1),
             "trigger_price": D("0.5")},
        ],
        # the book is public: levels by price (shares and a count of orders), never whose
        "book": [{"market": m1}, {"market": m2}, {"market": m2, "outcome": "RED", "depth": 100},
                 {"market": m1, "format": "odds"}, {"market": "no_such_m"}],
        "my_orders": [{}, {"status": "all"}, {"market": m1, "status": "all"},
                      {"status": "cancelled"}, {"status": "filled"}],
        "cancel_orders": [{"order_ids": [w.orders["take_profit"], w.orders["stop_loss"]]},
                          {"market": m2, "order_ids": [w.orders["take_profit"]]}],
        "place_orders": [
            {"orders": [{"market": m1, "outcome": "YES", "kind": "stop_loss", "shares": "1",
                         "trigger_price": "0.2"},
                        {"market": m2, "outcome": "RED", "side": "buy", "shares": "1",
                         "price": "0.01"}]},
            {"orders": [{"market": m1, "outcome": "YES", "side": "buy", "shares": "1",
                         "price": "0.5", "client_order_id": "a-key"}]},
        ],
        # the tape: each trade's time, outcome, side, size and price, no owner, no id
        "market_trades": [{"market": m1}, {"market": m2, "max_rows": 500}, {"market": m3},
                          {"market": "no_such_m"}, {"market": m1, "max_rows": 0}],
        "market_trends": [{}, {"markets": [m1]}, {"markets": [m1, m2, m3]}, {"status": "open"},
                          {"status": "mine"}],
        "leaderboard": [{}, {"max_rows": 100}, {"max_rows": 0}],
        "calibration": [{}],
        # bots: A's answers as one that does not exist; a name is a username (public). B's
        # own bot is deleted last.
        "create_bot": [{"name": w.a_bot, "source": "log(1)", "markets": [m1]},
                       {"name": w.a["username"], "source": "log(1)", "markets": [m1]},
                       {"name": w.newcomer + "_bot", "source": "log(1)", "markets": [m1]}],
        "update_bot": [{"bot": w.a_bot, "source": "log(2)"}, {"bot": w.nobot, "source": "log(2)"},
                       {"bot": w.b_bot, "source": "log(2)"}],
        "pause_bot": [{"bot": w.a_bot}, {"bot": w.nobot}, {"bot": w.b_bot}],
        "resume_bot": [{"bot": w.a_bot}, {"bot": w.nobot}, {"bot": w.b_bot}],
        "fund_bot": [{"bot": w.a_bot, "amount": D(1)}, {"bot": w.nobot, "amount": D(1)},
                     {"bot": w.b_bot, "amount": D(1)}],
        "defund_bot": [{"bot": w.a_bot, "amount": D(1)}, {"bot": w.nobot, "amount": D(1)},
                       {"bot": w.b_bot, "amount": D(1)}],
        "my_bots": [{}],
        "bot_runs": [{"bot": w.a_bot}, {"bot": w.nobot, "max_rows": 500}, {"bot": w.b_bot}],
        "delete_bot": [{"bot": w.a_bot}, {"bot": w.nobot}, {"bot": w.b_bot}],
        "trade": [
            *trades_at_a(w).values(),
            {"market": m1, "outcome": "YES", "side": "buy", "shares": D(1), "max_total": D("0.01")},
            {"market": m1, "outcome": "NO", "side": "buy", "spend": D(5000)},
            {"market": "no_such_m", "outcome": "YES", "side": "buy", "shares": D(1)},
        ],
    }


# What some functions show of every trader by design, and which of A's values that makes public
# there (and only there): the leaderboard ranks every trader (and bot) by name and net worth; the tape
# shows every trade's size, so the size of a position built by one trade is on it (as a trade
# of nobody's), and so is the collateral of a short opened by one sale (1 per share). Everything
# else of A's is still searched for in their answers.
PUBLIC_BY_DESIGN = {"leaderboard": ("A's username", "A's bot's balance"),
                    "market_trades": (" shares ", "A's locked")}


def api_functions(db: psycopg.Connection) -> dict[str, bool]:
    """Every function of schema api, and whether anon may call it."""
    rows = db.execute("""select p.proname as name,
                                bool_or(has_function_privilege('anon', p.oid, 'execute')) as anon
                           from pg_proc p where p.pronamespace = 'api'::regnamespace
                          group by p.proname""").fetchall()
    return {r["name"]: r["anon"] for r in rows}


def assert_every_function_has_cases(functions: dict[str, bool], cases: dict) -> None:
    missing = sorted(set(functions) - set(cases))
    assert not missing, (f"api functions without a row in privacy_cases: {missing}. Decide what "
                         "each may show one trader of another, and add its cases.")
    stale = sorted(set(cases) - set(functions))
    assert not stale, f"privacy_cases names functions schema api no longer has: {stale}"
    assert all(cases[fn] for fn in functions), "every function needs at least one argument set"


def build_world(db: psycopg.Connection, make_market, make_user) -> World:
    started = db.execute("select clock_timestamp() - interval '1 minute' as t").fetchone()["t"]
    before = rpc_sql(db, None, "changes")["cursor"]
    m1, m2, m3 = make_market(), make_market(("RED", "GREEN", "BLUE")), make_market()
    a, b, c = make_user(), make_user(), make_user()
    aid, bid, cid = a["user_id"], b["user_id"], c["user_id"]
    keys = {k: f"{k}-key-of-a-{uuid.uuid4().hex}" for k in ("replay", "short", "more")}

    # C, a bystander, holds what keeps the markets' public totals apart from A's positions,
    # and a stop-loss that A's first trade fires
    rpc_sql(db, cid, "trade", market=m1, outcome="YES", side="buy", shares=D("4.2"))
    rpc_sql(db, cid, "trade", market=m1, outcome="NO", side="buy", shares=D(20))
    rpc_sql(db, cid, "trade", market=m2, outcome="RED", side="buy", shares=D("3.3"))
    c_stop = rpc_sql(db, cid, "place_order", market=m1, outcome="NO", kind="stop_loss",
                     shares=D(8), trigger_price=price(db, m1, "NO") - D("0.01"))["order_id"]

    # B's own position and order
    rpc_sql(db, bid, "trade", market=m2, outcome="GREEN", side="buy", shares=D("5.5"))
    b_order = rpc_sql(db, bid, "place_order", market=m2, outcome="GREEN", kind="stop_loss",
                      shares=D(1), trigger_price=D("0.05"))["order_id"]

    # A: odd amounts, a short, two orders left open, one cancelled, three idempotency keys
    replay = {"market": m1, "outcome": "YES", "side": "buy", "shares": D("12.345678")}
    first = rpc_sql(db, aid, "trade", **replay, idempotency_key=keys["replay"])
    assert [f["order_id"] for f in first["triggered"]] == [c_stop], "A's trade fires C's stop"
    more = rpc_sql(db, aid, "trade", market=m1, outcome="YES", side="buy", shares=D("0.987654"),
                   idempotency_key=keys["more"])
    take_profit = rpc_sql(db, aid, "place_order", market=m1, outcome="YES", kind="take_profit",
                          shares=D("3.141593"), trigger_price=D("0.876543219"))["order_id"]
    cancelled = rpc_sql(db, aid, "place_order", market=m1, outcome="YES", kind="stop_loss",
                        shares=D("1.414214"), trigger_price=D("0.123456789"))["order_id"]
    rpc_sql(db, aid, "cancel_order", order_id=cancelled)
    short = rpc_sql(db, aid, "trade", market=m2, outcome="RED", side="sell",
                    shares=D("7.654321"), idempotency_key=keys["short"])
    # a short's stop fires on a rise; B's 30 RED will carry the price through it
    trigger = (price(db, m2, "RED") + D("0.0123456789")).quantize(D("0.000000001"))
    stop = rpc_sql(db, aid, "place_order", market=m2, outcome="RED", kind="stop_loss",
                   shares=D("2.718282"), trigger_price=trigger)["order_id"]
    after = rpc_sql(db, None, "changes")["cursor"]
    history = {f"A's balance after trade {r['trade_id']}": r["balance"]
               for r in (first, more, short)}
    # A's bot, funded with a distinctive amount, which runs once
    a_bot = unique("abot")
    rpc_sql(db, aid, "create_bot", name=a_bot, source='log(price("' + m3 + '", "YES"))', markets=[m3])
    rpc_sql(db, aid, "fund_bot", bot=a_bot, amount=D("21.212121"))
    history["A's bot's balance"] = D("21.212121")
    b_bot = unique("bbot")
    rpc_sql(db, bid, "create_bot", name=b_bot, source="log(1)", markets=[m3])
    db.execute("select admin.refresh_leaderboard()")  # A and A's bot on the leaderboard as they are now
    return World(m1, m2, m3, a, b, keys, replay,
                 {"take_profit": take_profit, "stop_loss": stop, "cancelled": cancelled},
                 b_order, (before, after), started, unique("nobody"), unique("newcomer"), history,
                 a_bot, unique("nobot"), b_bot)


def account_values(account: dict, when: str) -> dict[str, Any]:
    """A's private numbers in an account (api.me) answer, labelled."""
    out = {f"A's balance {when}": account["balance"], f"A's locked {when}": account["locked"]}
    for p in account["positions"]:
        name = f"A's {p['market']} {p['outcome']}"
        out |= {f"{name} shares {when}": p["shares"], f"{name} cost_basis {when}": p["cost_basis"],
                f"{name} value {when}": p["value"]}
    return out


def order_values(db: psycopg.Connection, aid: int) -> dict[str, Any]:
    """Every trigger of A's, and the size of every order of A's that never fired (a fired
    order's size is the size of its trade, which is public)."""
    out = {}
    for o in db.execute("select * from bj.orders where user_id = %s", [aid]):
        out[f"A's {o['kind']} #{o['id']} trigger"] = o["trigger_price"]
        if o["status"] != "filled":
            out[f"A's {o['kind']} #{o['id']} shares"] = o["shares"]
    return out


def number_pattern(value: Decimal) -> re.Pattern:
    """The number as a whole token, in any scale (12.345678 matches 12.3456780, not 112.345678,
    12.3456789 or the digits of a timestamp), of either sign."""
    digits = format(abs(value).normalize(), "f")
    return re.compile(r"(?<![\d.:])" + re.escape(digits) + r"0*(?!\d)")


def distinctive(value: Decimal) -> bool:
    """A number that cannot turn up in an answer by accident: six significant digits or more,
    some of them decimals."""
    _, digits, exponent = abs(value).normalize().as_tuple()
    return len(digits) >= 6 and exponent < 0


@dataclass
class Call:
    fn: str
    args: dict[str, Any]
    round: int
    answer: Any = None
    error: dict[str, str | None] | None = None

    def __str__(self) -> str:
        return f"round {self.round}: api.{self.fn}({self.args!r})"

    def text(self) -> str:
        """Everything the caller is told, as text: the answer (and the claims of any token in
        it), or the error's code, message, detail and hint."""
        parts = [json.dumps(self.answer, default=str), json.dumps(self.error)]
        for _, key, value in walk(self.answer):
            if key == "token" and isinstance(value, str) and value.count(".") == 2:
                payload = value.split(".")[1]
                try:
                    parts.append(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
                                 .decode())
                except (binascii.Error, UnicodeDecodeError):
                    parts.append(value)
        return "\n".join(parts)


def walk(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str, Any]]:
    """(path, key, value) of every member of every object in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, item
            yield from walk(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk(item, (*path, i))


def call(db: psycopg.Connection, who: int | None, fn: str, args: dict, rnd: int) -> Call:
    try:
        return Call(fn, args, rnd, answer=rpc_sql(db, who, fn, **args))
    except psycopg.Error as exc:
        return Call(fn, args, rnd, error={
            "code": exc.sqlstate, "message": exc.diag.message_primary,
            "detail": exc.diag.message_detail, "hint": exc.diag.message_hint})


def the(calls: list[Call], fn: str, args: dict, rnd: int = 1) -> Call:
    found = [c for c in calls if c.fn == fn and c.args == args and c.round == rnd]
    assert len(found) == 1, f"api.{fn}({args!r}) was called {len(found)} times in round {rnd}"
    return found[0]


def refusal(c: Call, *echoed: object) -> tuple:
    """An error as comparable across arguments: what the caller sent, echoed in the detail,
    blanked out."""
    assert c.error is not None, f"{c} answered {c.answer!r}"
    detail = c.error["detail"] or ""
    for value in echoed:
        detail = detail.replace(str(value), "<sent>")
    return c.error["code"], c.error["message"], detail, c.error["hint"]


def ids(db: psycopg.Connection, table: str, user_id: int) -> set[int]:
    return {r["id"] for r in db.execute(f"select id from bj.{table} where user_id = %s",
                                        [user_id])}


def test_every_api_function_has_a_row_in_the_privacy_matrix(db):
    placeholder = World("m1", "m2", "m3", {"username": "a", "user_id": 1},
                        {"username": "b", "user_id": 2}, {"replay": "k1", "short": "k2"},
                        {"market": "m1"}, {"take_profit": 1, "stop_loss": 2, "cancelled": 3},
                        4, ("c1", "c2"), datetime.now(), "nobody", "newcomer")
    assert_every_function_has_cases(api_functions(db), privacy_cases(placeholder))


@pytest.mark.parametrize("viewer", ["trader", "anonymous"])
def test_no_api_function_shows_one_trader_anything_private_of_another(
        db, make_market, make_user, viewer):
    """Every api function, called by B (or by anyone, without a login) with arguments that
    point at A's things, shows none of A's values and none of A's ids, refuses B on A's orders
    exactly as on orders that never existed, keeps B's account and trades B's, lists a fired
    stop of A's as public facts only, and keeps idempotency keys per trader."""
    set_json_loads(exact_json, context=db)
    w = build_world(db, make_market, make_user)
    aid, bid = w.a["user_id"], w.b["user_id"]
    functions = api_functions(db)
    cases = privacy_cases(w)
    assert_every_function_has_cases(functions, cases)

    secrets: dict[str, Any] = {f"A's idempotency key for {k}": v for k, v in w.keys.items()}
    secrets |= w.history | account_values(rpc_sql(db, aid, "me"), "before")

    # the matrix: every case as the viewer, then again (except what trades or creates) once
    # B's trade has fired A's stop
    who = bid if viewer == "trader" else None
    calls: list[Call] = []
    for rnd in (1, 2):
        for fn, arg_sets in cases.items():
            if rnd == 2 and fn in ONCE:
                continue
            for args in arg_sets:
                calls.append(call(db, who, fn, args, rnd))

    secrets |= account_values(rpc_sql(db, aid, "me"), "after")
    secrets |= order_values(db, aid)
    bland = {k: v for k, v in secrets.items() if isinstance(v, Decimal) and not distinctive(v)}
    assert not bland, f"A's private values must be distinctive to be searched for: {bland}"
    patterns = {k: number_pattern(v) if isinstance(v, Decimal) else re.compile(re.escape(v))
                for k, v in secrets.items()}
    a_orders = ids(db, "orders", aid)
    a_trades = ids(db, "trades", aid)
    # A's three trades, and the one B's trade fires
    assert set(w.orders.values()) <= a_orders and len(a_trades) == (4 if who else 3)

    problems = []
    for c in calls:
        # a case that fails before the function runs tests nothing
        refused_anon = who is None and not functions[c.fn]
        if c.error and not c.error["code"].startswith("BJ") and not (
                refused_anon and c.error["code"] == "42501"):
            problems.append(f"{c} did not reach the function: {c.error}")
        text = c.text()
        public = PUBLIC_BY_DESIGN.get(c.fn, ())
        for label, pattern in patterns.items():
            if any(p in label for p in public):
                continue
            if found := pattern.search(text):
                around = text[max(0, found.start() - 100):found.end() + 100]
                problems.append(f"{c} shows {label} ({secrets[label]}): ...{around}...")
        if (c.answer is not None and "A's username" not in public
                and w.a["username"] in json.dumps(c.answer, default=str)):
            problems.append(f"{c} names A: {c.answer}")
        for path, key, value in walk(c.answer):
            public = "triggered" in path  # a fired order's trade: public facts, checked below
            if key == "user_id" and value == aid:
                problems.append(f"{c} shows A's user id at {path}")
            if key == "order_id" and value in a_orders and not public:
                problems.append(f"{c} shows A's order {value} at {path}")
            if key in ("trade_id", "root_trade_id") and value in a_trades and not public:
                problems.append(f"{c} shows A's trade {value} at {path}")
    assert not problems, "\n".join(problems)

    for fn, anon in functions.items():
        answered = [c for c in calls if c.fn == fn and c.answer is not None]
        if who is None and not anon:
            assert not answered, f"anon called api.{fn}, which is for traders only"
        else:
            assert answered, f"no case of api.{fn} was answered: the matrix saw only its errors"

    # cancelling A's order is refused exactly as cancelling an order that never existed:
    # no oracle of what exists, or what state it is in
    for rnd in (1, 2):
        never = refusal(the(calls, "cancel_order", {"order_id": NEVER_AN_ORDER}, rnd),
                        NEVER_AN_ORDER)
        for name, order in w.orders.items():
            assert refusal(the(calls, "cancel_order", {"order_id": order}, rnd), order) == never, (
                f"cancelling A's {name} order answers otherwise than a made-up order")
    # every bot call on A's bot is refused exactly as on a bot that does not exist
    if who is not None:
        for fn in ("update_bot", "pause_bot", "resume_bot", "delete_bot", "fund_bot", "defund_bot",
                   "bot_runs"):
            for rnd in (1, 2):
                calls_on = {c.args["bot"]: c for c in calls if c.fn == fn and c.round == rnd}
                assert refusal(calls_on[w.a_bot], w.a_bot) == refusal(calls_on[w.nobot], w.nobot), (
                    f"api.{fn} on A's bot answers otherwise than on a bot that does not exist")
        assert all(b["bot"] != w.a_bot for b in the(calls, "my_bots", {}).answer), "B sees A's bot"
    # logging in as A with a wrong password answers as for a username nobody has
    wrong = [c for c in calls if c.fn == "login" and c.args["password"] == "not the password"]
    assert len({json.dumps([c.answer, c.error], default=str) for c in wrong}) == 1, wrong

    if viewer == "anonymous":
        return
    b_orders = ids(db, "orders", bid)
    b_trades = ids(db, "trades", bid)
    # placing an order where A holds something answers as where nobody holds anything
    place = {(c.args["market"], c.args["outcome"]): c for c in calls
             if c.fn == "place_order" and c.args["kind"] != "limit"}
    assert (refusal(place[(w.m1, "YES")], w.m1, "YES")
            == refusal(place[(w.m3, "YES")], w.m3, "YES")
            == refusal(place[(w.m2, "RED")], w.m2, "RED")
            == refusal(place[(w.m2, "BLUE")], w.m2, "BLUE"))
    # B's account and B's trades are B's alone, before and after B's trade fired A's stop
    for c in calls:
        if c.fn == "me":
            assert (c.answer["user_id"], c.answer["username"]) == (bid, w.b["username"])
            assert {o["order_id"] for o in c.answer["orders"]} <= b_orders, c.answer
        if c.fn == "my_trades" and c.answer is not None:
            shown = {t["trade_id"] for t in c.answer}
            assert shown and shown <= b_trades and not shown & a_trades, (c, shown, a_trades)
    # B's trade fired A's stop: the receipt says which order and what traded, nothing more
    touching = trades_at_a(w)
    fired = the(calls, "trade", touching["fires A's stop"])
    assert fired.answer is not None, fired.error
    [entry] = fired.answer["triggered"]
    assert set(entry) == FIRED_KEYS, entry
    assert entry["order_id"] == w.orders["stop_loss"] and entry["trade_id"] in a_trades, entry
    assert entry["shares"] == D("2.718282"), entry
    status = db.execute("select status from bj.orders where id = %s", [w.orders["take_profit"]])
    assert status.fetchone()["status"] == "open", "B's calls left A's take-profit alone"
    # A's idempotency keys are A's: B using them trades for B, neither replaying A's receipt
    # nor refusing as a conflict
    for name in ("A's key, A's arguments", "A's key, other arguments"):
        args = touching[name]
        c = the(calls, "trade", args)
        assert c.answer is not None, f"{c}: {c.error}"
        assert "replayed" not in c.answer and c.answer["trade_id"] in b_trades, c.answer
        assert c.answer["shares"] == args["shares"], c.answer
