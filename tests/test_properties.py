"""Random sequences of buys, sells, shorts and spends on binary and multi-outcome markets,
compared to the last digit with the independent model in tests/model.py; invariants after
every example. And: voiding a market restores every trader's wealth."""

from __future__ import annotations

from decimal import Decimal

import psycopg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import deterministic, rpc_sql, unique
from tests.model import Market, Refused

shares = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(400), places=6)
budgets = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(600), places=6)
action = st.tuples(st.integers(0, 2), st.integers(0, 9), st.sampled_from(["buy", "sell", "spend"]),
                   shares, budgets)
market_kind = st.sampled_from([(("YES", "NO"), "100", "0.0167"), (("A", "B", "C"), "50", "0.05"),
                               (("W", "X", "Y", "Z"), "20", "0")])
SETTINGS = settings(max_examples=40,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
BINARY = (("YES", "NO"), "100", "0.0167")
ONE = Decimal(1)


def setup(db: psycopg.Connection, outcomes, b, fee) -> tuple[str, list[int], Market]:
    code = unique("p")
    db.execute("select admin.create_market(%s, %s, %s, %s::numeric, %s::numeric)",
               [code, code, list(outcomes), b, fee])
    users = [db.execute("select (bj.signup(%s, 'password123', null) ->> 'user_id')::bigint as id",
                        [unique("p")]).fetchone()["id"] for _ in range(3)]
    model = Market(Decimal(b), Decimal(fee), len(outcomes))
    model.balance = {u: Decimal(1000) for u in users}
    return code, users, model


def run(db, code, users, model, outcomes, actions) -> None:
    for who, j, kind, qty, budget in actions:
        user, outcome = users[who], j % len(outcomes)
        side = "sell" if kind == "sell" else "buy"
        args = {"market": code, "outcome": outcomes[outcome], "side": side}
        args.update({"spend": budget} if kind == "spend" else {"shares": qty})
        try:
            expected = model.trade(user, outcome, side, None if kind == "spend" else qty,
                                   budget if kind == "spend" else None)
        except Refused as exc:
            expected = exc
        try:
            with db.transaction():
                got = rpc_sql(db, user, "trade", **args)
        except psycopg.Error as exc:
            assert isinstance(expected, Refused), f"refused {exc.sqlstate} {exc}, model: {expected}"
            assert exc.sqlstate == expected.code
            continue
        assert not isinstance(expected, Refused), f"model refuses with {expected.code}: {got}"
        for key, value in expected.items():
            assert Decimal(str(got[key])) == value, (key, got, expected)


@deterministic
@SETTINGS
@given(kind=market_kind, actions=st.lists(action, min_size=1, max_size=12))
# boundaries, each the one draw that catches a plausible bug: a fee on the cost before its
# rounding (a buy of 123 and a short of 0.285714 from q = 0 differ in their last digit), a
# budget that exactly buys 10 shares, a sale that returns nothing, the smallest quantity
@example(kind=BINARY, actions=[(0, 0, "buy", Decimal(123), ONE)])
@example(kind=BINARY, actions=[(0, 0, "sell", Decimal("0.285714"), ONE)])
@example(kind=BINARY, actions=[(0, 0, "spend", ONE, Decimal("5.210535")),
                               (1, 0, "spend", ONE, Decimal("5.210534"))])
@example(kind=BINARY, actions=[(0, 0, "sell", Decimal("0.000001"), ONE),
                               (1, 1, "buy", Decimal("0.000001"), ONE)])
@example(kind=BINARY, actions=[(0, 0, "buy", Decimal(400), ONE), (0, 0, "sell", Decimal(400), ONE),
                               (1, 1, "sell", Decimal(400), ONE), (1, 1, "buy", Decimal(400), ONE)])
def test_trades_match_the_independent_model(db, kind, actions):
    outcomes, b, fee = kind
    code, users, model = setup(db, outcomes, b, fee)
    run(db, code, users, model, outcomes, actions)
    market = db.execute("select q, pool from bj.markets where code = %s", [code]).fetchone()
    assert [Decimal(x) for x in market["q"]] == model.q
    assert market["pool"] == model.pool
    for user in users:
        row = db.execute("select balance from bj.users where id = %s", [user]).fetchone()
        assert row["balance"] == model.balance[user]
    assert db.execute("select * from admin.check_invariants()").fetchall() == []


@deterministic
@SETTINGS
@given(kind=market_kind, actions=st.lists(action, min_size=1, max_size=10))
@example(kind=BINARY, actions=[(0, 0, "sell", Decimal(50), ONE), (1, 1, "buy", Decimal(300), ONE),
                               (0, 1, "buy", Decimal(10), ONE)])
def test_voiding_restores_every_traders_wealth(db, kind, actions):
    outcomes, b, fee = kind
    code, users, model = setup(db, outcomes, b, fee)
    run(db, code, users, model, outcomes, actions)
    db.execute("select admin.void_market(%s)", [code])
    balances = db.execute("select balance from bj.users where id = any(%s) order by id", [users]).fetchall()
    assert [r["balance"] for r in balances] == [Decimal(1000)] * 3
    assert db.execute("select * from admin.check_invariants()").fetchall() == []
