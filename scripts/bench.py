"""make bench: every figure as a ratio against a baseline measured in the same run.

1. SQL path (pgbench): the bare transaction of a trade's shape, api.trade on one hot market
   and on ten markets (sent as the HTTP layer sends a write), the bare transaction committed
   the same way (for comparison); and, timed in one session, the trade with and without the
   stop check (50 uncrossed orders); the book: eight market orders in one api.place_orders on
   the hot market (orders per second against the bare transaction), a limit order resting on a
   book of 100,000 orders against an empty one, and (timed in the database) a buy sweeping ten
   levels and the market maker between them against the market maker alone.
2. HTTP path: 32 and 128 concurrent clients trading on the hot market, against the SQL rate.
3. Stream: 1,000 subscribers while trades commit at 100/s: delivery delay and server memory.
4. Login flood: a trader's api.me() latency while 80 clients log in without pause (bcrypt cost
   10, the throttle out of the way as for a flood from many addresses), with password checks
   bounded to one at a time and, for comparison, unbounded; against the quiet latency.

Runs on a throw-away database; BENCH_SECONDS sets each run's length (default 6).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import db as dbtool

SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))
SECRET = os.environ.get("BETJEE_JWT_SECRET") or "bench-secret-" + "b" * 40


def pgbench(url: str, script: str, clients: int, **defines: str) -> float:
    env = {**os.environ}
    for line in subprocess.run([sys.executable, str(ROOT / "scripts" / "db.py"), "env", url],
                               capture_output=True, text=True, check=True).stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    out = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
                          "-T", str(SECONDS), "-f", str(ROOT / "bench" / script),
                          *(f"-D{k}={v}" for k, v in defines.items())],
                         env=env, capture_output=True, text=True, check=False)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out.stdout)
    if not match or out.returncode != 0:
        raise SystemExit(f"pgbench {script} failed:\n{out.stdout}\n{out.stderr}")
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if failed and int(failed.group(1)):
        raise SystemExit(f"pgbench {script}: {failed.group(1)} failed transactions")
    return float(match.group(1))


def alternate(url: str, *scripts: str | tuple[str, dict], rounds: int = 3) -> list[float]:
    """Mean rates of the scripts (a name, or a name and its -D variables), run in turn `rounds`
    times, so that a drift in the machine's speed hits them all alike."""
    rates: list[list[float]] = [[] for _ in scripts]
    for _ in range(rounds):
        for i, script in enumerate(scripts):
            name, defines = (script, {}) if isinstance(script, str) else script
            rates[i].append(pgbench(url, name, 8, **defines))
    return [statistics.mean(r) for r in rates]


def sweep(url: str, rounds: int = 4, sweeps: int = 50) -> tuple[float, float]:
    """A buy through ten resting levels and the market maker between them, against the same
    buy from the market maker alone, timed inside the database (bench.sweep), alternating.
    Returns the mean microseconds of each."""
    took: dict[int, list[float]] = {0: [], 10: []}
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(rounds):
            for levels in (0, 10):
                for _ in range(sweeps):
                    took[levels].append(float(conn.execute("select bench.sweep(%s)", [levels]).fetchone()[0]))
    return statistics.mean(took[0]), statistics.mean(took[10])


def stop_check(url: str, rounds: int = 4, trades: int = 1000) -> tuple[float, float]:
    """The stop check's cost is a few per cent, below pgbench's noise on a small machine, so it
    is timed in one session: the same trades, each committed, with and without the check,
    alternating. Returns trades per second without and with it."""
    block = ("do $$ begin for i in 1..%d loop perform bj.execute_trade(60 + i %% 50, 'stops', 'NO',"
             " case when i %% 2 = 0 then 'buy' else 'sell' end, 1, null, p_cascade => %s);"
             " commit; end loop; end $$")
    times: dict[bool, list[float]] = {False: [], True: []}
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(rounds):
            for flag in (False, True):
                started = time.perf_counter()
                conn.execute(block % (trades, "true" if flag else "false"))
                times[flag].append(time.perf_counter() - started)
    return trades / statistics.mean(times[False]), trades / statistics.mean(times[True])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.app:app", "--port", str(port),
         "--no-access-log", "--no-proxy-headers", "--log-level", "warning",
         "--timeout-graceful-shutdown", "1"],
        cwd=ROOT, env={**os.environ, "BETJEE_DATABASE_URL": url, "BETJEE_JWT_SECRET": SECRET,
                       "BETJEE_LOG_LEVEL": "WARNING"})
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def token(user: int) -> str:
    now = int(time.time())
    return jwt.encode({"sub": str(user), "role": "authenticated", "iat": now, "exp": now + 3600},
                      SECRET, algorithm="HS256")


def http_load(base: str, clients: int) -> tuple[float, float, int]:
    """wrk against the server: requests per second, p99 latency (ms), non-200 answers."""
    tokens = ",".join(token(1 + i) for i in range(2))
    out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{SECONDS}s", "--latency",
                          "-s", str(ROOT / "bench" / "trade.lua"), base],
                         env={**os.environ, "BENCH_TOKENS": tokens}, capture_output=True,
                         text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([0-9.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    if errors:
        print(errors.group(0))
    return rate, p99, int(bad.group(1)) if bad else 0


async def stream_load(base: str, url: str, pid: int, subscribers: int = 1000,
                      rate: float = 100, seconds: float = 10) -> tuple[float, float, int, int]:
    committed: dict[int, float] = {}
    seen: list[dict[int, float]] = [{} for _ in range(subscribers)]
    ready = asyncio.Event()
    connected = 0
    limits = httpx.Limits(max_connections=subscribers + 10)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def subscriber(i: int) -> None:
            nonlocal connected
            async with client.stream("GET", "/api/v1/stream") as r:
                connected += 1
                if connected == subscribers:
                    ready.set()
                async for line in r.aiter_lines():
                    if line.startswith("data: ") and '"hot"' in line:
                        version = _hot_version(line)
                        seen[i].setdefault(version, time.perf_counter())
                    if stop.is_set():
                        return
        stop = asyncio.Event()
        tasks = [asyncio.create_task(subscriber(i)) for i in range(subscribers)]
        await asyncio.wait_for(ready.wait(), 60)
        with psycopg.connect(url, autocommit=True) as conn:
            end = time.monotonic() + seconds
            n = 0
            while time.monotonic() < end:
                tick = time.monotonic()
                conn.execute("select bj.trade(7, 'hot', 'YES', %s, 1, null, null, null, null)",
                             ["buy" if n % 2 else "sell"])
                version = conn.execute("select version from bj.markets where code = 'hot'").fetchone()[0]
                committed[version] = time.perf_counter()
                n += 1
                await asyncio.sleep(max(0, 1 / rate - (time.monotonic() - tick)))
        await asyncio.sleep(1.5)
        rss = _rss(pid)
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    delays = []
    missed = 0
    for views in seen:
        versions = sorted(views)
        for version, at in committed.items():
            later = [views[v] for v in versions if v >= version]
            if not later:
                missed += 1
                continue
            delays.append(min(later) - at)
    p50 = statistics.median(delays) * 1000
    p99 = statistics.quantiles(delays, n=100)[98] * 1000
    return p50, p99, missed, rss


async def login_flood(base: str, url: str, bound: int, floods: int = 80,
                      seconds: float = SECONDS) -> tuple[float, float, dict[int, int]]:
    """The median and p90 (ms) of a trader's api.me() while `floods` clients log in without
    pause with password_hash_concurrency = bound (0: no flood), and the flood's statuses."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select admin.configure('password_hash_concurrency', %s)", [str(max(1, bound))])
        conn.execute("notify betjee_schema")
    await asyncio.sleep(0.5)  # the server reloads its catalog
    statuses: dict[int, int] = {}
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=floods + 10)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def flood(i: int) -> None:
            n = 0
            while not stop.is_set():
                r = await client.post("/rpc/login", json={"username": f"flood{i}x{n}",
                                                          "password": "password123"})
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                n += 1
        tasks = [asyncio.create_task(flood(i)) for i in range(floods if bound else 0)]
        await asyncio.sleep(1.0 if bound else 0)
        latencies = []
        end = time.monotonic() + seconds
        headers = {"authorization": f"Bearer {token(1)}"}
        while time.monotonic() < end:
            started = time.perf_counter()
            r = await client.post("/rpc/me", headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.text
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.9)], statuses


def _hot_version(line: str) -> int:
    for market in json.loads(line[6:])["markets"]:
        if market["code"] == "hot":
            return market["version"]
    return -1


def _rss(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) // 1024


def main() -> None:
    admin_url = os.environ["BETJEE_ADMIN_URL"]
    name = "betjee_bench"
    url = subprocess.run([sys.executable, str(ROOT / "scripts" / "db.py"), "create", admin_url, name],
                         capture_output=True, text=True, check=True).stdout.strip()
    try:
        os.environ["BETJEE_JWT_SECRET"] = SECRET
        # no housekeeping job on this database: its minute's work would land in some runs only
        os.environ["BETJEE_NO_CRON"] = "1"
        dbtool.up(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((ROOT / "bench" / "setup.sql").read_text())
            conn.execute((ROOT / "bench" / "deep_book.sql").read_text())
        print(f"each run {SECONDS} s, 8 clients unless said; rates in transactions per second;"
              " compared runs alternate three times and average")
        bare, hot, bare_async, batches = alternate(url, "bare.sql", "trade_hot.sql", "bare_async.sql",
                                                   "batch_hot.sql")
        ten = pgbench(url, "trade_ten.sql", 8)
        shallow, deep = alternate(url, ("book_rest.sql", {"market": "shallow"}),
                                  ("book_rest.sql", {"market": "deep"}))
        without, with_stops = stop_check(url)
        amm_only, ten_levels = sweep(url)
        rows = [("bare transaction (baseline)", bare, 1.0),
                ("api.trade, one hot market", hot, hot / bare),
                ("api.trade, ten markets", ten, ten / bare),
                ("bare transaction committed as a trade is (not the baseline)", bare_async, bare_async / bare),
                ("api.trade, one hot market, against that", hot, hot / bare_async),
                ("api.place_orders, 8 market orders, hot market: orders/s", batches * 8, batches * 8 / bare),
                ("rest + cancel a limit order, empty book (baseline)", shallow, 1.0),
                ("rest + cancel a limit order, 100,000 resting", deep, deep / shallow),
                ("trade without stop check (one session)", without, 1.0),
                ("trade with stop check, 50 open orders (one session)", with_stops, with_stops / without)]
        proc, base = serve(url)
        try:
            for clients in (32, 128):
                rate, p99, errors = http_load(base, clients)
                label = f"HTTP api.trade, hot, {clients} clients (p99 {p99:.0f} ms, {errors} errors)"
                rows.append((label, rate, rate / hot))
            p50, p99, missed, rss = asyncio.run(stream_load(base, url, proc.pid))
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("select admin.configure('login_max_failures_ip', '1000000')")
                conn.execute("select admin.configure('login_max_failures_user', '1000000')")
                conn.execute("select admin.configure('bcrypt_cost', '10')")
            quiet = asyncio.run(login_flood(base, url, 0))
            bounded = asyncio.run(login_flood(base, url, 1))
            unbounded = asyncio.run(login_flood(base, url, 1000))
        finally:
            proc.terminate()
            proc.wait(10)
        print(f"{'':62} {'rate':>9} {'ratio':>7}")
        for label, rate, ratio in rows:
            print(f"{label:62} {rate:9.0f} {ratio:7.2f}")
        print(f"stop check overhead: {(1 - with_stops / without) * 100:.1f} % of a trade")
        print(f"sweep: a buy through 10 levels and the market maker between them {ten_levels:.0f} us,"
              f" from the market maker alone {amm_only:.0f} us: {(ten_levels - amm_only) / 10:.0f} us per level"
              f" ({ten_levels / amm_only:.2f}x)")
        print(f"stream: 1000 subscribers, 100 trades/s: delivery p50 {p50:.0f} ms, p99 {p99:.0f} ms,"
              f" {missed} updates missed, server RSS {rss} MiB")
        for label, (median, p90, statuses) in (("quiet", quiet), ("80 logins, one hash at a time", bounded),
                                               ("80 logins, unbounded (for comparison)", unbounded)):
            print(f"api.me() {label:40} median {median:7.1f} ms ({median / quiet[0]:5.1f}x quiet),"
                  f" p90 {p90:7.1f} ms; logins answered {statuses}")
    finally:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "db.py"), "drop", admin_url, name],
                       check=True)


if __name__ == "__main__":
    main()
