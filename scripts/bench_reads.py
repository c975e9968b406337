"""make bench-reads: the reads users make, timed on the demo-sized database and on the large one
(`make bench-data` builds both), in turn, each as the role that makes it: operation, small,
large, ratio. Each figure is the median of several calls after one warm-up call.

  scripts/bench_reads.py [small_db large_db]   (default betjee_bench_small betjee_bench_large)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
import db as dbtool

# (label, role, query); {hot} is the hot market, {one} an ordinary open market, {heavy} the id of
# the trader with the most positions
OPERATIONS = [
    ("analytics.leaderboard top 10", "analyst", "select * from analytics.leaderboard order by rank limit 10"),
    ("api.leaderboard(10)", "anon", "select api.leaderboard(10)"),
    ("admin.check_invariants()", None, "select * from admin.check_invariants()"),
    ("api.price_history hot market, 1 hour", "anon", "select api.price_history('{hot}', '1 hour')"),
    ("api.price_history hot market, 1 minute", "anon", "select api.price_history('{hot}', '1 minute')"),
    ("api.price_history hot market, 1 day", "anon", "select api.price_history('{hot}', '1 day')"),
    ("analytics.price_history 15-min candles, one market", "analyst",
     """select date_bin('15 minutes', at, '2000-01-01') as t, outcome,
               (array_agg(price order by at, trade_id))[1] as open, max(price) as high, min(price) as low,
               (array_agg(price order by at desc, trade_id desc))[1] as close, sum(volume) as volume
          from analytics.price_history where market = '{hot}' group by 1, 2 order by 1, 2"""),
    ("analytics.candles 15-min, one market", "analyst", "select * from analytics.candles('{hot}', '15 minutes')"),
    ("api.list_markets()", "anon", "select api.list_markets()"),
    ("api.changes() without cursor", "anon", "select api.changes()"),
    ("api.me(), the trader with the most positions", "me", "select api.me()"),
    ("analytics.trades one market, last 100", "analyst",
     "select * from analytics.trades where market = '{hot}' order by at desc limit 100"),
    ("analytics.recent_trades one market, last 100", "analyst", "select * from analytics.recent_trades('{hot}', 100)"),
    ("analytics.market_stats one market", "analyst", "select * from analytics.market_stats where market = '{one}'"),
    ("analytics.market_stats, every market", "analyst", "select * from analytics.market_stats"),
    ("analytics.house_pnl one market", "analyst", "select * from analytics.house_pnl where market = '{one}'"),
    ("analytics.house_pnl, every market", "analyst", "select * from analytics.house_pnl"),
]


def with_dbname(url: str, name: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = name
    return make_conninfo(**params)


def time_op(conn: psycopg.Connection, role: str | None, query: str, heavy: int, calls: int) -> float:
    took = []
    for i in range(calls + 1):
        with conn.transaction():
            if role == "me":
                conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                             [f'{{"sub": "{heavy}", "role": "authenticated"}}'])
            elif role:
                conn.execute(f"set local role {role}")
            started = time.perf_counter()
            conn.execute(query).fetchall()
            if i:
                took.append(time.perf_counter() - started)
    return statistics.median(took) * 1000


def measure(url: str, calls: int) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        heavy = conn.execute("select user_id from bj.positions where shares <> 0 group by user_id"
                             " order by count(*) desc limit 1").fetchone()[0]
        out = {}
        for label, role, query in OPERATIONS:
            q = query.format(hot="b0", one="b1")
            slow = label.startswith(("analytics.leaderboard", "admin.check_invariants"))
            out[label] = time_op(conn, role, q, heavy, 3 if slow else calls)
    return out


def housekeep(conn: psycopg.Connection) -> None:
    """What the housekeeping job would have done by now: candles rolled, the leaderboard
    ranked, the invariants checkpointed (where this code has a checkpoint)."""
    conn.execute("select admin.roll_candles()")
    conn.execute("select admin.refresh_leaderboard()")
    if conn.execute("select to_regproc('admin.checkpoint_invariants') is not null"
                    " or exists (select 1 from pg_proc where proname = 'checkpoint_invariants')").fetchone()[0]:
        conn.execute("call admin.checkpoint_invariants()")


def main() -> None:
    admin_url = os.environ["BETJEE_ADMIN_URL"]
    small_db, large_db = (sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else ("betjee_bench_small", "betjee_bench_large")
    calls = int(os.environ.get("BENCH_CALLS", "9"))
    sizes = {}
    with psycopg.connect(admin_url, autocommit=True) as conn:
        have = {r[0] for r in conn.execute("select datname from pg_database").fetchall()}
    if not {small_db, large_db} <= have:
        print(f"reads at scale: no {small_db} / {large_db} here (make bench-data builds them, in minutes)")
        return
    for name in (small_db, large_db):
        url = with_dbname(admin_url, name)
        os.environ.setdefault("BETJEE_JWT_SECRET", "bench-secret-" + "b" * 40)
        os.environ["BETJEE_NO_CRON"] = "1"
        dbtool.up(url)  # the code of this checkout
        with psycopg.connect(url, autocommit=True) as conn:
            housekeep(conn)
            sizes[name] = conn.execute("select (select count(*) from bj.trades), (select count(*) from bj.users),"
                                       " (select count(*) from bj.markets),"
                                       " pg_size_pretty(pg_database_size(current_database()))").fetchone()
    small = measure(with_dbname(admin_url, small_db), calls)
    large = measure(with_dbname(admin_url, large_db), calls)
    for name, (trades, users, markets, size) in sizes.items():
        print(f"{name}: {trades} trades, {users} users, {markets} markets, {size}")
    print(f"{'read':52} {'small ms':>9} {'large ms':>9} {'ratio':>6}")
    for label, _, _ in OPERATIONS:
        print(f"{label:52} {small[label]:9.1f} {large[label]:9.1f} {large[label] / small[label]:6.2f}")


if __name__ == "__main__":
    main()
