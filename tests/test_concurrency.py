"""Many real connections at once: hot-market trading with shorts and stop cascades, one
idempotency key raced by 16 calls, a cooldown raced by 20 trades, a signup limit raced by
10 signups. No deadlock or serialization error may reach a client; money and shares are
conserved exactly (and the invariant fixture replays the ledger afterwards)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg

from tests.conftest import rpc_sql

EXPECTED_REFUSALS = {"BJ001", "BJ020"}


def race(n: int, fn) -> list:
    """Run fn(i, conn) on n connections, released at once by a barrier."""
    barrier = threading.Barrier(n)

    def one(i: int, url: str):
        with psycopg.connect(url, autocommit=True) as conn:
            barrier.wait()
            try:
                return fn(i, conn)
            except psycopg.Error as exc:
                return exc
    return one


def run_all(n: int, url: str, fn) -> list:
    one = race(n, fn)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda i: one(i, url), range(n)))


def test_hot_markets_under_16_connections_conserve_money_and_shares(db, db_url, make_market, make_user):
    markets = [make_market(), make_market(("A", "B", "C"), 50)]
    users = [make_user()["user_id"] for _ in range(16)]
    # stops everywhere, so cascades fire while others trade
    for i, user in enumerate(users):
        m = markets[i % 2]
        outcome = "YES" if m == markets[0] else "A"
        rpc_sql(db, user, "trade", market=m, outcome=outcome, side="buy", shares=Decimal(20))
        rpc_sql(db, user, "place_order", market=m, outcome=outcome, kind="stop_loss",
                shares=Decimal(20), trigger_price=Decimal("0.3"))
    outcomes = {markets[0]: ["YES", "NO"], markets[1]: ["A", "B", "C"]}
    deadline = time.monotonic() + 5
    errors: Counter = Counter()
    done = Counter()

    def trader(i: int, conn: psycopg.Connection) -> None:
        rng = random.Random(i)
        while time.monotonic() < deadline:
            m = rng.choice(markets)
            args = {"market": m, "outcome": rng.choice(outcomes[m]),
                    "side": rng.choice(["buy", "buy", "sell"]),
                    "shares": Decimal(rng.randint(1, 40_000_000)) / 1_000_000}
            try:
                r = rpc_sql(conn, users[i], "trade", **args)
                done["trades"] += 1 + len(r["triggered"])
                done["fired"] += len(r["triggered"])
            except psycopg.Error as exc:
                errors[exc.sqlstate] += 1
                assert exc.sqlstate in EXPECTED_REFUSALS, f"{exc.sqlstate}: {exc}"

    results = run_all(16, db_url, trader)
    assert [r for r in results if r is not None] == []
    assert not (set(errors) - EXPECTED_REFUSALS)
    assert done["trades"] > 100, done
    print(f"{done['trades']} trades ({done['fired']} fired by stops), refusals {dict(errors)}")
    # money: every coin is somewhere (balances, collateral, pools, orders' escrow), and the
    # caches agree with each other
    row = db.execute("""
      select (select sum(balance) from bj.users) + (select sum(amount) from bj.collateral)
           + (select sum(pool) from bj.markets) + (select coalesce(sum(locked_cash), 0) from bj.orders) as held,
             (select coalesce(sum(amount) filter (where debit = 'house'), 0)
                   - coalesce(sum(amount) filter (where credit = 'house'), 0)
                   + coalesce(sum(amount) filter (where debit = 'fees'), 0)
                   - coalesce(sum(amount) filter (where credit = 'fees'), 0)
                   + coalesce(sum(amount) filter (where debit = 'burn'), 0)
                   - coalesce(sum(amount) filter (where credit = 'burn'), 0)
                from bj.ledger where asset = 'coin') as outside""").fetchone()
    assert row["held"] + row["outside"] == 0
    # shares: each market's outstanding quantity is exactly what the traders hold
    for m in markets:
        q = db.execute("select q from bj.markets where code = %s", [m]).fetchone()["q"]
        held = db.execute("""select array_agg(coalesce(s, 0) order by o) as h
                               from generate_series(1, %s) o
                               left join (select outcome, sum(shares) s from bj.positions p
                                           join bj.markets m on m.id = p.market_id and m.code = %s
                                          group by outcome) x on x.outcome = o""",
                          [len(q), m]).fetchone()["h"]
        assert [Decimal(x) for x in q] == [Decimal(x) for x in held]


def test_sixteen_calls_with_one_idempotency_key_trade_once(db, db_url, make_market, make_user):
    market, user = make_market(), make_user()["user_id"]
    results = run_all(16, db_url, lambda i, conn: rpc_sql(
        conn, user, "trade", market=market, outcome="YES", side="buy", shares=Decimal(3),
        idempotency_key="same-key"))
    assert all(isinstance(r, dict) for r in results), results
    assert len({r["trade_id"] for r in results}) == 1
    assert sum(1 for r in results if not r.get("replayed")) == 1
    count = db.execute("select count(*) as c from bj.trades where user_id = %s", [user]).fetchone()
    assert count["c"] == 1


def test_twenty_simultaneous_trades_under_a_cooldown_let_one_through(db, db_url, make_market, make_user):
    market, user = make_market(), make_user()["user_id"]
    db.execute("select admin.configure('trade_cooldown_ms', '30000')")
    try:
        results = run_all(20, db_url, lambda i, conn: rpc_sql(
            conn, user, "trade", market=market, outcome="NO", side="buy", shares=Decimal(1)))
    finally:
        db.execute("select admin.configure('trade_cooldown_ms', '0')")
    ok = [r for r in results if isinstance(r, dict)]
    refused = [r.sqlstate for r in results if isinstance(r, psycopg.Error)]
    assert len(ok) == 1
    assert refused == ["BJ030"] * 19


def test_ten_simultaneous_signups_from_one_address_let_the_limit_through(db, db_url):
    ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    db.execute("select admin.configure('signup_ip_max', '3')")
    try:
        results = run_all(10, db_url, lambda i, conn: conn.execute(
            "select bj.signup(%s, 'password123', %s)",
            [f"race{i}_{time.time_ns() % 10**9}", ip]).fetchone()[0])
        flagged = db.execute("select accounts from admin.flagged_ips where ip = %s", [ip]).fetchone()
    finally:
        db.execute("select admin.configure('signup_ip_max', '1000000')")
    assert not [r for r in results if isinstance(r, psycopg.Error)]
    ok = [r for r in results if "token" in r]
    refused = [r["code"] for r in results if "token" not in r]
    assert len(ok) == 3
    assert refused == ["BJ031"] * 7
    assert flagged["accounts"] == 3, "the address is flagged for review"


def test_trades_over_http_released_before_their_flush_are_all_answered_and_kept(server, db, make_market, make_user):
    """24 clients trade one market over HTTP, where each trade's locks go at its commit and its
    answer waits for the flush: every answer is a trade that is there, once, and money and
    shares are conserved (the invariant fixture replays the ledger)."""
    import httpx

    market = make_market()
    users = [make_user() for _ in range(24)]
    barrier = threading.Barrier(len(users))

    def client(i: int) -> list[dict]:
        receipts = []
        with httpx.Client(base_url=server, timeout=30) as http:
            headers = {"Authorization": f"Bearer {users[i]['token']}"}
            barrier.wait()
            for k in range(15):
                r = http.post("/api/v1/rpc/trade", headers=headers,
                              json={"market": market, "outcome": "YES" if k % 3 else "NO",
                                    "side": "buy" if k % 2 == 0 else "sell", "shares": "0.5",
                                    "idempotency_key": f"c{i}-{k}"})
                assert r.status_code == 200, r.text
                receipts.append(r.json())
        return receipts

    with ThreadPoolExecutor(len(users)) as pool:
        receipts = [r for rs in pool.map(client, range(len(users))) for r in rs]
    ids = [r["trade_id"] for r in receipts]
    assert len(ids) == len(set(ids)) == 24 * 15
    stored = db.execute("select count(*) as n from bj.trades where id = any(%s)", [ids]).fetchone()
    assert stored["n"] == len(ids)
    version = db.execute("select version from bj.markets where code = %s", [market]).fetchone()
    assert version["version"] == len(ids), "each trade moved the market once"


def test_one_trader_on_four_markets_from_eight_connections_keeps_one_balance(db, db_url, make_market, make_user):
    """Four markets queue separately (architecture.md §16), so only the trader's row lock keeps
    one trader's trades on different markets from writing the balance over each other: single
    trades and batches at once, for several seconds; then the balance is exactly what the
    ledger says (the invariant fixture replays it too) and the trader could never spend more
    than they had."""
    markets = [make_market() for _ in range(4)]
    user = make_user()["user_id"]
    deadline = time.monotonic() + 4
    done = Counter()

    def trader(i: int, conn: psycopg.Connection) -> None:
        rng = random.Random(i)
        while time.monotonic() < deadline:
            m = markets[i % 4]
            side = rng.choice(["buy", "buy", "sell"])
            try:
                if i < 4:
                    rpc_sql(conn, user, "trade", market=m, outcome="YES", side=side,
                            shares=Decimal(rng.randint(1, 30)))
                    done["trades"] += 1
                else:
                    answers = rpc_sql(conn, user, "place_orders", orders=[
                        {"market": m, "outcome": "YES", "side": side, "kind": "market", "shares": rng.randint(1, 30),
                         "time_in_force": "ioc"},
                        {"market": m, "outcome": "NO", "side": "buy", "kind": "market", "shares": rng.randint(1, 30),
                         "time_in_force": "ioc"}])
                    done["orders"] += sum(1 for a in answers if "order_id" in a)
            except psycopg.Error as exc:
                assert exc.sqlstate in EXPECTED_REFUSALS, f"{exc.sqlstate}: {exc}"

    assert [r for r in run_all(8, db_url, trader) if r is not None] == []
    assert done["trades"] > 20 and done["orders"] > 20, done
    row = db.execute("""
      select u.balance,
             coalesce((select sum(case when l.debit = 'cash:' || u.id then l.amount else -l.amount end)
                         from bj.ledger l where l.asset = 'coin' and (l.debit = 'cash:' || u.id or l.credit = 'cash:' || u.id)), 0) as ledger
        from bj.users u where u.id = %s""", [user]).fetchone()
    assert row["balance"] == row["ledger"] and row["balance"] >= 0, row


def test_pruning_keys_never_waits_for_another_prune_nor_holds_a_trade_up(db, db_url, make_market, make_user):
    """admin.prune_idempotency deletes with SKIP LOCKED: while one prune's transaction is open, a
    second prune forgets the other old keys without waiting, and a keyed trade (a new key, and a
    retry of a key being forgotten, which then trades again) goes through."""
    market, user = make_market(), make_user()["user_id"]
    for i in range(4):
        db.execute("select bj.trade(%s, %s, 'YES', 'buy', 1, null, null, null, %s)", [user, market, f"p{i}"])
    db.execute("""update bj.idempotency set created_at = clock_timestamp() - interval '3 days'
                   where user_id = %s and key like 'p%%'""", [user])
    with psycopg.connect(db_url) as first, psycopg.connect(db_url, autocommit=True) as second:
        assert first.execute("select admin.prune_idempotency(2)").fetchone()[0] == 2  # left open
        second.execute("set lock_timeout = '2s'")
        assert second.execute("select admin.prune_idempotency(10)").fetchone()[0] == 2
        receipt = second.execute("select bj.trade(%s, %s, 'YES', 'buy', 1, null, null, null, 'fresh')",
                                 [user, market]).fetchone()[0]
        assert "replayed" not in receipt
        first.commit()
    assert db.execute("select count(*) as n from bj.idempotency where user_id = %s and key like 'p%%'",
                      [user]).fetchone()["n"] == 0
