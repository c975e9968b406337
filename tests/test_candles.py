"""Minute candles (admin.roll_candles) by property: after random trades on binary and
multi-outcome markets, with rolls at random moments between them (so that a minute is rolled in
parts, and trades wait past the watermark), api.price_history gives exactly what reading every
trade gives, for buckets of whole minutes and not, from the start or from a time inside a minute;
and rolls racing trades on several connections lose no trade and count none twice."""

from __future__ import annotations

import threading
from decimal import Decimal

import psycopg
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import deterministic, rpc_sql
from tests.test_properties import SETTINGS

BUCKETS = ["1 minute", "2 minutes", "1 hour", "1 day", "1 second", "90 seconds"]
steps = st.lists(st.one_of(st.just("roll"), st.tuples(st.integers(0, 2), st.integers(0, 3),
                                                      st.sampled_from(["buy", "sell"]), st.integers(1, 30))),
                 min_size=1, max_size=14)


def raw(db: psycopg.Connection, code: str, bucket: str, since) -> list:
    """The candles read from every trade: the market's watermark forgotten for a moment."""
    with db.transaction(force_rollback=True):
        db.execute("delete from bj.candles_rolled where market_id = (select id from bj.markets where code = %s)", [code])
        return db.execute("select api.price_history(%s, %s::interval, %s) as c", [code, bucket, since]).fetchone()["c"]


def rolled(db: psycopg.Connection, code: str, bucket: str, since) -> list:
    return db.execute("select api.price_history(%s, %s::interval, %s) as c", [code, bucket, since]).fetchone()["c"]


@deterministic
@SETTINGS
@given(outcomes=st.sampled_from([("YES", "NO"), ("A", "B", "C")]), plan=steps, cut=st.integers(0, 59))
def test_rolled_candles_are_the_trades_candles(db, make_market, make_user, outcomes, plan, cut):
    code = make_market(outcomes)
    users = [make_user()["user_id"] for _ in range(3)]
    for step in plan:
        if step == "roll":
            db.execute("select admin.roll_candles()")
            continue
        who, j, side, shares = step
        try:
            with db.transaction():
                rpc_sql(db, users[who], "trade", market=code, outcome=outcomes[j % len(outcomes)], side=side,
                        shares=Decimal(shares))
        except psycopg.Error:
            pass  # refused: nothing traded
    first = db.execute("select min(t.created_at) as t from bj.trades t join bj.markets m on m.id = t.market_id"
                       " where m.code = %s", [code]).fetchone()["t"]
    sinces = [None] + ([first.replace(second=cut, microsecond=0), first.replace(second=0, microsecond=0)] if first else [])
    for bucket in BUCKETS:
        for since in sinces:
            assert rolled(db, code, bucket, since) == raw(db, code, bucket, since), (bucket, since)


def test_rolls_racing_trades_lose_and_double_nothing(db_url, db, make_market, make_user):
    markets = [make_market() for _ in range(3)]
    users = [make_user()["user_id"] for _ in range(4)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def trader(i: int) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                for k in range(60):
                    rpc_sql(conn, users[i], "trade", market=markets[(i + k) % 3], outcome="YES" if k % 2 else "NO",
                            side="buy", shares=Decimal(1 + k % 5))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    def roller() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                while not stop.is_set():
                    conn.execute("select admin.roll_candles()")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=trader, args=(i,)) for i in range(4)]
    rollers = [threading.Thread(target=roller) for _ in range(2)]
    for t in threads + rollers:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in rollers:
        t.join()
    assert errors == []
    db.execute("select admin.roll_candles()")
    for code in markets:
        # every trade's volume once: the minute candles' volume is the trades' amount, per outcome
        got = db.execute("""select c.outcome, sum(c.volume) as v from bj.candles c join bj.markets m on m.id = c.market_id
                             where m.code = %s group by 1 order by 1""", [code]).fetchall()
        want = db.execute("""select t.outcome, sum(t.amount) as v from bj.trades t join bj.markets m on m.id = t.market_id
                              where m.code = %s group by 1 order by 1""", [code]).fetchall()
        assert got == want
        for bucket in ("1 minute", "1 hour"):
            assert rolled(db, code, bucket, None) == raw(db, code, bucket, None)
