"""Undoing a resolution (admin.unresolve_market), by property: after random trades, shorts and
resting orders on binary and multi-outcome markets, resolving to a random payout vector and then
unresolving leaves every balance, position, collateral row and the pool as before the
resolution (the resolution's cancelled orders give their escrow back); resolving again then pays
exactly what resolving at that vector would have paid in the first place; and a winner who spent
the payout ends at zero with the rest as a debt, its balance less its debt exact to the last
digit. Invariants after every example."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.conftest import deterministic, rpc_sql, unique
from tests.test_properties import BINARY, ONE, SETTINGS, action, market_kind, run, setup

# a payout vector: integer weights over the outcomes, normalised (at most 9 decimals: a third is
# 0.333333333, the rest of the unit goes to the first outcome)
weights = st.lists(st.integers(0, 5), min_size=4, max_size=4).filter(any)
resting = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 9), st.sampled_from(["buy", "sell"]),
                             st.integers(1, 99), st.integers(1, 50)), max_size=3)


def payout_vector(outcomes, raw) -> str:
    w = [Decimal(raw[i % len(raw)]) for i in range(len(outcomes))]
    if not any(w):
        w[0] = ONE
    total = sum(w)
    shares = [(x / total).quantize(Decimal("0.000000001"), rounding="ROUND_DOWN") for x in w]
    shares[0] += ONE - sum(shares)
    return "{" + ", ".join(f'"{o}": {format(s, "f")}' for o, s in zip(outcomes, shares)) + "}"


def state(db, code, users) -> dict:
    """Each trader's wealth and positions outside the market's orders (balance and shares plus
    the escrow its open orders in this market lock: the resolution gives that back), collateral,
    and the market."""
    rows = db.execute("""
        select u.id, u.balance + coalesce((select sum(o.locked_cash) from bj.orders o join bj.markets m on m.id = o.market_id
                                            where o.user_id = u.id and m.code = %s and o.status = 'open'), 0) as wealth
          from bj.users u where u.id = any(%s) order by u.id""", [code, users]).fetchall()
    positions = db.execute("""
        select user_id, outcome, sum(shares) as shares
          from (select p.user_id, p.outcome, p.shares from bj.positions p join bj.markets m on m.id = p.market_id
                 where m.code = %s
                union all
                select o.user_id, o.outcome, o.locked_shares from bj.orders o join bj.markets m on m.id = o.market_id
                 where m.code = %s and o.status = 'open') x
         group by 1, 2 having sum(shares) <> 0 order by 1, 2""", [code, code]).fetchall()
    collateral = db.execute("""select c.user_id, c.amount from bj.collateral c join bj.markets m on m.id = c.market_id
                                where m.code = %s and c.amount <> 0 order by 1""", [code]).fetchall()
    market = db.execute("select pool, q, pairs from bj.markets where code = %s", [code]).fetchone()
    return {"wealth": {r["id"]: r["wealth"] for r in rows}, "positions": positions,
            "collateral": collateral, "market": market}


def rest(db, code, users, outcomes, orders) -> None:
    """Resting limit orders far from the market (prices 0.01 to 0.50 below or above it), left
    open: the resolution cancels them."""
    for who, j, side, cents, qty in orders:
        price = Decimal(cents) / 100 if side == "buy" else ONE - Decimal(cents) / 100
        try:
            with db.transaction():
                rpc_sql(db, users[who], "place_order", market=code, outcome=outcomes[j % len(outcomes)],
                        side=side, kind="limit", shares=Decimal(qty), price=price, post_only=True)
        except psycopg.Error:
            pass  # refused (would take, or not enough to lock): nothing to rest


def balances(db, users) -> dict[int, Decimal]:
    return {r["id"]: r["balance"] for r in
            db.execute("select id, balance from bj.users where id = any(%s)", [users]).fetchall()}


@deterministic
@SETTINGS
@given(kind=market_kind, actions=st.lists(action, min_size=1, max_size=8), orders=resting,
       first=weights, second=weights)
@example(kind=BINARY, actions=[(0, 0, "buy", Decimal(40), ONE), (1, 0, "sell", Decimal(25), ONE),
                               (2, 1, "buy", Decimal(10), ONE)], orders=[(2, 0, "buy", 5, 3)],
         first=[1, 0, 0, 0], second=[0, 1, 0, 0])
def test_resolve_then_unresolve_restores_everything(db, kind, actions, orders, first, second):
    outcomes, b, fee = kind
    code, users, model = setup(db, outcomes, b, fee)
    run(db, code, users, model, outcomes, actions)
    rest(db, code, users, outcomes, orders)
    before = state(db, code, users)
    wrong, right = payout_vector(outcomes, first), payout_vector(outcomes, second)
    # what resolving at the right vector pays, seen in a transaction that is rolled back: the
    # market's orders cancelled first, as resolving does
    with db.transaction(force_rollback=True):
        db.execute("select bj.cancel_orders_of(m, 'preview') from bj.markets m where m.code = %s", [code])
        expected = balances(db, users)
        for r in db.execute("select u.id, p.balance_after from admin.preview_resolution(%s, %s::jsonb) p"
                            " join bj.users u using (username)", [code, right]).fetchall():
            expected[r["id"]] = r["balance_after"]

    db.execute("select admin.resolve_market_split(%s, %s::jsonb)", [code, wrong])
    answer = db.execute("select admin.unresolve_market(%s, 'wrong payouts') as r", [code]).fetchone()["r"]
    assert answer["status"] == "closed" and Decimal(str(answer["debt"])) == 0
    assert state(db, code, users) == before
    assert db.execute("select count(*) from bj.debts d join bj.markets m on m.id = d.market_id where m.code = %s",
                      [code]).fetchone()["count"] == 0
    assert db.execute("select * from admin.check_invariants()").fetchall() == []

    db.execute("select admin.resolve_market_split(%s, %s::jsonb)", [code, right])
    assert balances(db, users) == expected
    assert db.execute("select * from admin.check_invariants()").fetchall() == []


@deterministic
@SETTINGS
@given(kind=market_kind, actions=st.lists(action, min_size=1, max_size=8), first=weights,
       spends=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 100)), max_size=3))
@example(kind=BINARY, actions=[(0, 0, "buy", Decimal(300), ONE)], first=[1, 0, 0, 0], spends=[(0, 100)])
def test_a_spent_payout_becomes_a_debt(db, kind, actions, first, spends):
    outcomes, b, fee = kind
    code, users, model = setup(db, outcomes, b, fee)
    run(db, code, users, model, outcomes, actions)
    before = state(db, code, users)
    db.execute("select admin.resolve_market_split(%s, %s::jsonb)", [code, payout_vector(outcomes, first)])
    paid = {u: bal - before["wealth"][u] for u, bal in balances(db, users).items()}
    # some traders spend part of their balance (the share given) in another market
    elsewhere = unique("e")
    db.execute("select admin.create_market(%s, %s, '{YES,NO}', 100000, 0)", [elsewhere, elsewhere])
    for who, percent in spends:
        budget = (balances(db, users)[users[who]] * percent / 100).quantize(Decimal("0.000001"), rounding="ROUND_DOWN")
        if budget >= Decimal("0.01"):
            rpc_sql(db, users[who], "trade", market=elsewhere, outcome="YES", side="buy", spend=budget)
    spent = balances(db, users)

    db.execute("select admin.unresolve_market(%s, 'wrong payouts') as r", [code])
    after = balances(db, users)
    owed = {r["user_id"]: r["amount"] for r in db.execute(
        "select d.user_id, sum(d.amount) as amount from bj.debts d join bj.markets m on m.id = d.market_id"
        " where m.code = %s group by 1", [code]).fetchall()}
    for user in users:
        assert after[user] >= 0
        assert after[user] - owed.get(user, 0) == spent[user] - paid[user]
        assert owed.get(user, 0) == max(Decimal(0), paid[user] - spent[user])
        me = rpc_sql(db, user, "me")
        assert Decimal(str(me["debt"])) == owed.get(user, 0)
    after_state = state(db, code, users)
    assert (after_state["positions"], after_state["collateral"], after_state["market"]) == \
           (before["positions"], before["collateral"], before["market"])
    assert db.execute("select * from admin.check_invariants()").fetchall() == []


def test_unresolve_races_a_trade_of_the_winner(db_url, db, make_market, make_user):
    """A winner trading elsewhere while the market is unresolved: whichever commits first, the
    balance never goes below zero and balance less debt is what it should be."""
    import threading
    market, other = make_market(), make_market(liquidity=100000, fee_rate="0")
    winner = make_user()["user_id"]
    rpc_sql(db, winner, "trade", market=market, outcome="YES", side="buy", shares=Decimal(500))
    db.execute("select admin.resolve_market(%s, 'YES')", [market])
    start = db.execute("select balance from bj.users where id = %s", [winner]).fetchone()["balance"]
    barrier = threading.Barrier(2)
    errors: list[Exception] = []

    def spend():
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait()
            try:
                rpc_sql(conn, winner, "trade", market=other, outcome="YES", side="buy", spend=start - 1)
            except psycopg.Error as exc:
                errors.append(exc)

    def unresolve():
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait()
            conn.execute("select admin.unresolve_market(%s, 'race')", [market])

    threads = [threading.Thread(target=spend), threading.Thread(target=unresolve)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(getattr(e, "sqlstate", None) == "BJ001" for e in errors), errors
    balance = db.execute("select balance from bj.users where id = %s", [winner]).fetchone()["balance"]
    debt = db.execute("select coalesce(sum(amount), 0) as d from bj.debts where user_id = %s", [winner]).fetchone()["d"]
    spent = db.execute("select coalesce(sum(total), 0) as s from bj.trades t join bj.markets m on m.id = t.market_id"
                       " where m.code = %s and t.user_id = %s", [other, winner]).fetchone()["s"]
    assert balance >= 0
    assert balance - debt == start - 500 - spent


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_reason_is_required(db, make_market, reason):
    market = make_market()
    db.execute("select admin.resolve_market(%s, 'YES')", [market])
    with pytest.raises(psycopg.Error) as refused:
        db.execute("select admin.unresolve_market(%s, %s)", [market, reason])
    assert refused.value.sqlstate == "BJ021"
    assert db.execute("select status from bj.markets where code = %s", [market]).fetchone()["status"] == "resolved"
