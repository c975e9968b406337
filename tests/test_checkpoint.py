"""admin.checkpoint_invariants while traders trade: each checkpoint is the ledger replayed up to
its watermark, exactly, though transactions that drew lower ledger ids commit after higher ones
(the watermark is read under a lock that waits for them), and the incremental check from it
agrees with the full replay."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

import psycopg
import pytest

from tests.conftest import rpc_sql

# the checkpoint's balances that differ from the ledger replayed up to its watermark
DRIFT = """
with replay as (
  select x.asset, x.account, sum(x.amount) as balance
    from (select l.asset, l.debit as account, l.amount from bj.ledger l
           where l.id <= (select c.ledger_id from bj.checkpoint c)
          union all
          select l.asset, l.credit, -l.amount from bj.ledger l
           where l.id <= (select c.ledger_id from bj.checkpoint c)) x
   group by 1, 2)
select count(*) from (
  (select asset, account, balance from replay except select asset, account, balance from bj.checkpoint_balances)
  union all
  (select asset, account, balance from bj.checkpoint_balances except select asset, account, balance from replay)) d
"""

REFUSED = {"BJ001", "BJ005", "BJ006"}  # a trade the trader's balance or the market cannot take


def test_checkpoints_taken_while_trading_are_the_ledger_up_to_their_watermark(db_url, make_market, make_user):
    markets = [make_market() for _ in range(4)]
    traders = {market: [make_user()["user_id"] for _ in range(3)] for market in markets}
    stop = threading.Event()
    errors: list[BaseException] = []
    trades = [0]

    def trade(market: str, seed: int) -> None:
        """One market's traders (no two threads wait on one market's lock); some trades commit
        a while after their postings, so that later transactions' higher ledger ids commit
        before their lower ones."""
        rnd = random.Random(seed)
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    with conn.transaction():
                        rpc_sql(conn, rnd.choice(traders[market]), "trade", market=market,
                                outcome=rnd.choice(("YES", "NO")), side=rnd.choice(("buy", "buy", "sell")),
                                shares=Decimal(rnd.randint(1, 5)))
                        time.sleep(rnd.choice((0, 0, 0, 0.005, 0.02, rnd.uniform(0.05, 0.15))))
                    trades[0] += 1
                except psycopg.Error as exc:
                    if exc.sqlstate not in REFUSED:
                        errors.append(exc)
                        return

    checkpoints: list[int] = []
    drifts: list[int] = []
    broken: list[tuple] = []

    def checkpoint() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    conn.execute("call admin.checkpoint_invariants()")
                    checkpoints.append(conn.execute("select ledger_id from admin.invariants_checkpoint()").fetchone()[0])
                    drifts.append(conn.execute(DRIFT).fetchone()[0])
                    broken.extend(conn.execute("select * from admin.check_invariants()").fetchall())
                except psycopg.Error as exc:
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=trade, args=(m, i)) for i, m in enumerate(markets)]
    threads.append(threading.Thread(target=checkpoint))
    for t in threads:
        t.start()
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join(60)
    assert errors == []
    assert trades[0] > 50 and len(checkpoints) >= 3, (trades[0], len(checkpoints))
    assert checkpoints == sorted(checkpoints) and checkpoints[0] < checkpoints[-1], \
        "the checkpoints moved on with the trades"
    assert drifts == [0] * len(checkpoints), "every checkpoint was the ledger replayed up to its watermark"
    assert broken == [], "the incremental check found nothing while trades went on"
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute(DRIFT).fetchone()[0] == 0
        rpc_sql(conn, traders[markets[0]][0], "trade", market=markets[0], outcome="YES", side="buy",
                shares=Decimal(1))
        assert conn.execute("select postings_since from admin.invariants_checkpoint()").fetchone()[0] > 0
        assert conn.execute("select * from admin.check_invariants()").fetchall() == []
        assert conn.execute("select * from admin.check_invariants_full()").fetchall() == []


def test_a_checkpoint_is_made_in_read_committed_only(db_url):
    """A REPEATABLE READ snapshot taken before the watermark's lock would miss postings the lock
    waited for: refused, with nothing written."""
    with psycopg.connect(db_url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("call admin.checkpoint_invariants()")
        assert refused.value.sqlstate == "BJ060"
        assert "READ COMMITTED" in refused.value.diag.message_detail


def test_a_dba_makes_a_checkpoint_and_checks_from_it(db_url, make_market, make_user):
    market, trader = make_market(), make_user()["user_id"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("set role service_role")
        conn.execute("call admin.checkpoint_invariants()")
        made = conn.execute("select ledger_id from admin.invariants_checkpoint()").fetchone()[0]
        conn.execute("reset role")
        rpc_sql(conn, trader, "trade", market=market, outcome="YES", side="buy", shares=Decimal(3))
        conn.execute("set role service_role")
        row = conn.execute("select ledger_id, postings_since from admin.invariants_checkpoint()").fetchone()
        assert row[0] == made and row[1] > 0
        assert conn.execute("select * from admin.check_invariants()").fetchall() == []
