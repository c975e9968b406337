"""The order book under 16 real connections at once: traders place limit and market orders,
cancel them and trade with the market maker on three markets (one with a market maker and a
book, a binary book that mints and merges pairs, a three-way book), while an observer polls
the change feed and checks the invariants as it goes. No deadlock or serialization error may
reach a client; the book is never crossed; money and shares are conserved exactly; and the
book rebuilt from the feed's numbered changes is the book itself, without a gap or a repeat."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg
from psycopg.rows import dict_row

from tests.conftest import rpc_sql

# what a random trader may be told: no money or shares for it, nothing to take, post-only
# would take, fill-or-kill cannot fill, the order is gone (filled or cancelled meanwhile)
EXPECTED_REFUSALS = {"BJ001", "BJ005", "BJ006", "BJ007", "BJ014", "BJ015", "BJ016"}
TRADERS = 16
SECONDS = 5


def test_sixteen_traders_on_three_books_keep_them_uncrossed_conserved_and_streamed(db, db_url, make_market,
                                                                                  make_user):
    hybrid, binary, three = make_market(), make_market(pricing="book"), make_market(("A", "B", "C"), pricing="book")
    outcomes = {hybrid: ["YES", "NO"], binary: ["YES", "NO"], three: ["A", "B", "C"]}
    markets = list(outcomes)
    users = [make_user()["user_id"] for _ in range(TRADERS)]
    start = rpc_sql(db, None, "changes")["cursor"]
    stop = threading.Event()
    traders_done = threading.Event()
    refusals: Counter = Counter()
    done: Counter = Counter()
    mine: dict[int, list[int]] = defaultdict(list)

    def trader(i: int) -> None:
        rng = random.Random(i)
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait()
            while not stop.is_set():
                m = rng.choice(markets)
                args = {"market": m, "outcome": rng.choice(outcomes[m])}
                op = rng.random()
                try:
                    if op < 0.55:
                        tif = rng.choice(["gtc", "gtc", "gtc", "ioc", "fok"])
                        r = rpc_sql(conn, users[i], "place_order", **args, side=rng.choice(["buy", "sell"]),
                                    shares=Decimal(rng.randint(1, 20_000_000)) / 1_000_000,
                                    price=Decimal(rng.randint(5, 95)) / 100,
                                    time_in_force=tif, post_only=tif == "gtc" and rng.random() < 0.2,
                                    stp=rng.choice(["cancel_resting", "cancel_newest"]))
                        if r["status"] == "open":
                            mine[i].append(r["order_id"])
                        done["fills"] += len(r["fills"])
                    elif op < 0.65:
                        r = rpc_sql(conn, users[i], "place_order", **args, side=rng.choice(["buy", "sell"]),
                                    kind="market", shares=Decimal(rng.randint(1, 10_000_000)) / 1_000_000,
                                    time_in_force="ioc")
                        done["fills"] += len(r["fills"])
                    elif op < 0.85 and mine[i]:
                        rpc_sql(conn, users[i], "cancel_order", order_id=mine[i].pop(rng.randrange(len(mine[i]))))
                        done["cancels"] += 1
                    elif op < 0.9:
                        rpc_sql(conn, users[i], "cancel_orders", market=m)
                        mine[i].clear()
                    else:
                        rpc_sql(conn, users[i], "trade", market=hybrid, outcome=rng.choice(["YES", "NO"]),
                                side="buy", shares=Decimal(rng.randint(1, 10_000_000)) / 1_000_000)
                    done["calls"] += 1
                except psycopg.Error as exc:
                    refusals[exc.sqlstate] += 1
                    assert exc.sqlstate in EXPECTED_REFUSALS, f"{exc.sqlstate}: {exc}"

    changes: list[dict] = []
    broken: list = []

    def observer() -> None:
        """Polls the feed as a visitor and checks the invariants, until the traders stop."""
        cursor = start
        with psycopg.connect(db_url, autocommit=True) as feed, \
                psycopg.connect(db_url, autocommit=True) as check:
            barrier.wait()
            last_check = 0.0
            while True:
                finished = traders_done.is_set()
                batch = rpc_sql(feed, None, "changes", since=cursor)
                changes.extend(c for c in batch["book"] if c["market"] in outcomes)
                cursor = batch["cursor"]
                if time.monotonic() - last_check > 0.5:
                    last_check = time.monotonic()
                    broken.extend(check.execute("select * from admin.check_invariants()").fetchall())
                if finished:  # one more poll after the last trader's last commit
                    return
                time.sleep(0.02)

    barrier = threading.Barrier(TRADERS + 1)
    with ThreadPoolExecutor(TRADERS + 1) as pool:
        futures = [pool.submit(trader, i) for i in range(TRADERS)]
        watching = pool.submit(observer)
        time.sleep(SECONDS)
        stop.set()
        try:
            for f in futures:
                f.result()
        finally:
            traders_done.set()
        watching.result()

    print(f"{dict(done)}, refusals {dict(refusals)}, {len(changes)} book changes")
    assert broken == [], broken
    assert done["calls"] > 200 and done["fills"] > 50 and done["cancels"] > 20, done

    # the feed: each market's changes numbered 1, 2, 3 ... to its book_seq, once each; applied
    # in order, they rebuild the resting levels exactly
    for m in markets:
        seqs = [c["seq"] for c in changes if c["market"] == m]
        book_seq = db.execute("select book_seq from bj.markets where code = %s", [m]).fetchone()["book_seq"]
        assert seqs == list(range(1, book_seq + 1)), m
        levels: dict[tuple, tuple] = {}
        for c in changes:
            if c["market"] == m:
                for lv in c["levels"]:
                    key = (lv["outcome"], lv["side"], Decimal(str(lv["price"])))
                    levels[key] = (Decimal(str(lv["shares"])), lv["orders"])
        rebuilt = {k: v for k, v in levels.items() if v[1] > 0}
        resting = {(r["outcome"], r["side"], r["price"]): (r["shares"], r["orders"]) for r in db.execute(
            """select m.outcomes[o.outcome] as outcome, o.side, o.price, sum(o.remaining) as shares,
                      count(*)::int as orders
                 from bj.orders o join bj.markets m on m.id = o.market_id
                where m.code = %s and o.status = 'open' and o.kind = 'limit'
                group by 1, 2, 3""", [m]).fetchall()}
        assert rebuilt == resting, m
        assert resting, f"{m}: nothing rests at the end"

    # money: every coin is somewhere (balances, escrow, collateral, pools) or outside
    row = db.execute("""
      select (select sum(balance) from bj.users) + (select sum(amount) from bj.collateral)
           + (select sum(pool) from bj.markets) + (select coalesce(sum(locked_cash), 0) from bj.orders) as held,
             (select coalesce(sum(amount) filter (where debit in ('house', 'fees', 'burn')), 0)
                   - coalesce(sum(amount) filter (where credit in ('house', 'fees', 'burn')), 0)
                from bj.ledger where asset = 'coin') as outside""").fetchone()
    assert row["held"] + row["outside"] == 0
    # shares: what traders hold and have in escrow, per outcome, is the market maker's
    # quantity plus the minted pairs
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        for m in markets:
            rows = conn.execute("""
              select o.i, m.q[o.i] + m.pairs as outstanding,
                     (select coalesce(sum(p.shares), 0) from bj.positions p
                       where p.market_id = m.id and p.outcome = o.i)
                   + (select coalesce(sum(x.locked_shares), 0) from bj.orders x
                       where x.market_id = m.id and x.outcome = o.i) as held
                from bj.markets m cross join generate_series(1, cardinality(m.outcomes)) o(i)
               where m.code = %s""", [m]).fetchall()
            assert all(r["outstanding"] == r["held"] for r in rows), (m, rows)


def test_a_batch_never_waits_in_a_cycle_its_later_order_fails_alone_as_busy(db, db_url, make_market, make_user):
    """A batch's first order holds its traders' rows; when a later one meets a trader another
    transaction holds, and that transaction waits for one the batch holds, the later order
    gives up (55P03) instead of waiting into a deadlock; the rest of the batch stands."""
    x, y = make_market(pricing="book"), make_market(pricing="book")
    a, b, c = (make_user()["user_id"] for _ in range(3))
    a, b = min(a, b), max(a, b)
    rpc_sql(db, b, "place_order", market=x, outcome="YES", side="sell", shares=Decimal(5), price=Decimal("0.5"))
    rpc_sql(db, a, "place_order", market=y, outcome="YES", side="sell", shares=Decimal(5), price=Decimal("0.5"))
    with psycopg.connect(db_url) as other, psycopg.connect(db_url, autocommit=True) as batcher:
        other.execute("select 1 from bj.users where id = %s for no key update", [a])
        pid = batcher.info.backend_pid
        result: list = []
        thread = threading.Thread(target=lambda: result.append(rpc_sql(batcher, c, "place_orders", orders=[
            {"market": x, "outcome": "YES", "side": "buy", "shares": 5, "price": 0.5},
            {"market": y, "outcome": "YES", "side": "buy", "shares": 5, "price": 0.5}])))
        thread.start()
        deadline = time.monotonic() + 5
        while not db.execute("select wait_event_type = 'Lock' as w from pg_stat_activity where pid = %s",
                             [pid]).fetchone()["w"]:
            assert time.monotonic() < deadline, "the batch never waited for the held trader"
            time.sleep(0.005)
        # the other transaction now waits for a trader the batch holds: a cycle, unless the
        # batch gives up
        other.execute("select 1 from bj.users where id = %s for no key update", [b])
        other.rollback()
        thread.join(10)
    first, second = result[0]
    assert first["status"] == "filled"
    assert second["code"] == "55P03" and second["message"] == "a trader this order meets is busy", second
    assert rpc_sql(db, c, "my_orders", status="all")[0]["order_id"] == first["order_id"]
