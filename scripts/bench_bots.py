"""make bench, the bots' part (docs/bots.md):

1. The cost of parsing and auditing a typical 30-line strategy, and of one evaluation of it (a
   live run's reads included, its actions not), in microseconds, timed in the database.
2. People's trades over HTTP on the hot market at a fixed rate (BENCH_BOT_RATE, default 50 a
   second, for BENCH_BOT_SECONDS, default 10), without bots and then with 1,000 bots watching
   that market (the server's runner running them): p50 and p99 latency of the trades, the ratio,
   and the bots' runs per second.

Runs on a throw-away database of its own.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import db as dbtool

import bench

RATE = int(os.environ.get("BENCH_BOT_RATE", "50"))
SECONDS = int(os.environ.get("BENCH_BOT_SECONDS", "10"))
BOTS = 1000

# a typical strategy: 30 lines of reads, arithmetic, branches and a log; it acts rarely
STRATEGY = """// a momentum strategy with a band, sized by the balance
const m = "hot"
const p = price(m, "YES")
const a = avg_price(m, "YES", 5)
const held = position(m, "YES")
const cash = balance()
const band = 0.05
const size = min(2, max(1, cash / 1000))
const up = p - a
const down = a - p
if (up > band) {
  log("up " + up)
  if (held < 10 && cash > 10) {
    buy(m, "YES", size)
  }
} else if (down > band) {
  log("down " + down)
  if (held > 0) {
    sell(m, "YES", min(held, size))
  }
} else {
  const spread = abs(up)
  const note = spread < 0.01 ? "flat" : "drifting"
  if (note === "drifting" && held > 5) {
    log("trim at " + p)
  }
}
const t = now()
if (t < 0) { log("never") }
log("price " + p)"""


async def fixed_rate(base: str, tokens: list[str], rate: int, seconds: int) -> list[float]:
    """Trades at a fixed rate, whatever the answers' pace: each one's latency in ms."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 limits=httpx.Limits(max_connections=200)) as client:
        async def one(i: int) -> None:
            started = time.perf_counter()
            r = await client.post("/api/v1/rpc/trade", headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
                                  json={"market": "hot", "outcome": "YES", "side": "buy" if i % 2 else "sell",
                                        "shares": 1})
            if r.status_code != 200:
                raise SystemExit(f"a trade failed: {r.status_code} {r.text}")
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        start = time.perf_counter()
        for i in range(rate * seconds):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def main() -> None:
    admin_url = os.environ["BETJEE_ADMIN_URL"]
    name = "betjee_bench_bots"
    url = subprocess.run([sys.executable, str(ROOT / "scripts" / "db.py"), "create", admin_url, name],
                         capture_output=True, text=True, check=True).stdout.strip()
    proc = None
    try:
        os.environ["BETJEE_JWT_SECRET"] = bench.SECRET
        dbtool.up(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((ROOT / "bench" / "setup.sql").read_text())
            conn.execute("select admin.configure('bots_per_owner', '100000')")
            # parsing, and one evaluation (its reads live, against trader 1's account), timed in a loop
            conn.execute("""create function pg_temp.time_it(p_source text, p_eval boolean, p_n int) returns numeric
                            language plpgsql as $$
                            declare t timestamptz := clock_timestamp(); v_tree jsonb := bj.bot_parse(p_source); x jsonb;
                            begin
                              t := clock_timestamp();
                              for i in 1..p_n loop
                                if p_eval then x := bj.bot_eval(v_tree, '{}', 1); else x := bj.bot_parse(p_source); end if;
                              end loop;
                              return extract(epoch from clock_timestamp() - t) * 1e6 / p_n;
                            end $$""")
            parse_us = conn.execute("select pg_temp.time_it(%s, false, 200)", [STRATEGY]).fetchone()[0]
            eval_us = conn.execute("select pg_temp.time_it(%s, true, 200)", [STRATEGY]).fetchone()[0]
        proc, base = bench.serve(url)
        tokens = [bench.token(1 + i) for i in range(10)]
        asyncio.run(fixed_rate(base, tokens, RATE, 2))  # warm up
        without = asyncio.run(fixed_rate(base, tokens, RATE, SECONDS))

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("""select count(bj.fund_bot(20, b ->> 'bot', 100)) from
                              (select bj.create_bot(20, 'bot' || i, %s, '{hot}') as b
                                 from generate_series(1, %s) i) x""", [STRATEGY, BOTS])
            # no bot starves: after one change, how long until every bot has run for it
            changed = conn.execute("select clock_timestamp()").fetchone()[0]
            conn.execute("select bj.trade(1, 'hot', 'YES', 'buy', 1, null, null, null, null)")
            while conn.execute("select count(distinct bot_id) from bj.bot_runs where at >= %s",
                               [changed]).fetchone()[0] < BOTS:
                time.sleep(0.05)
            all_ran = (conn.execute("select max(at) from bj.bot_runs").fetchone()[0] - changed).total_seconds()
            started_runs = conn.execute("select count(*) from bj.bot_runs").fetchone()[0]
            t0 = time.monotonic()
            with_bots = asyncio.run(fixed_rate(base, tokens, RATE, SECONDS))
            runs = conn.execute("select count(*) from bj.bot_runs").fetchone()[0] - started_runs
            took = time.monotonic() - t0
            run_us = conn.execute("select avg(took_us) from bj.bot_runs").fetchone()[0]
        print(f"bots: parse and audit a 30-line strategy {parse_us:.0f} us; evaluate it once (reads included)"
              f" {eval_us:.0f} us; a whole run (reads, actions, record) {run_us:.0f} us on average")
        print(f"bots: after one change, all {BOTS} bots watching the market had run within {all_ran:.1f} s"
              f" (the runner at its default duty, half its time)")
        print(f"bots: HTTP trades on the hot market at {RATE}/s: without bots p50 {statistics.median(without):.1f} ms,"
              f" p99 {pct(without, 0.99):.1f} ms; with {BOTS} bots watching it p50 {statistics.median(with_bots):.1f} ms,"
              f" p99 {pct(with_bots, 0.99):.1f} ms ({pct(with_bots, 0.99) / pct(without, 0.99):.2f}x);"
              f" {runs / took:.0f} bot runs/s")
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "db.py"), "drop", admin_url, name], check=True)


if __name__ == "__main__":
    main()
