"""make bench-data: two databases grown through the real trade path (bj.signup, admin.create_market,
bj.trade, admin.resolve_market, admin.void_market), kept for `make bench-reads`:

  betjee_bench_large  1,100,000 trades, 100,000 traders, 1,023 markets (102 resolved, 5 voided)
  betjee_bench_small  the demo's size: 40,000 trades, the rest scaled alike (at least 20 markets)

The shape of the traffic: an eighth of the trades on one hot market, a tenth by 100 heavy
traders who trade in every market (each ends with hundreds of positions), the rest spread
evenly; three buys for each sale, a sale beyond the position held a short. Two workers trade at
once, each trade its own transaction, as traders' calls are.

  scripts/bench_data.py [large|small|both] (default both); BENCH_TRADES overrides the large size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import db as dbtool

LARGE = int(os.environ.get("BENCH_TRADES", "1100000"))
SMALL = 40_000
WORKERS = 2
HEAVY = 100  # traders who trade everywhere

# One worker's share of the trades: each its own transaction (COMMIT in the loop), a refusal
# (a short the balance cannot cover) skipped as a client would see it refused.
TRADE_LOOP = """
do $$
declare
  v_n int := %(n)s;
  v_markets int := %(markets)s;
  v_users int := %(users)s;
  v_hot text := 'b0';
  v_code text;
  v_user bigint;
  v_outcome text;
  v_outcomes text[];
  v_side text;
  v_r float8;
  v_i int := 0;
begin
  perform setseed(%(seed)s);
  while v_i < v_n loop
    v_r := random();
    v_code := case when v_r < 0.125 then v_hot else 'b' || (1 + floor(random() * (v_markets - 1)))::int end;
    v_user := case when random() < 0.1 then 1 + floor(random() * %(heavy)s)::int
                   else 1 + floor(random() * v_users)::int end;
    select m.outcomes into v_outcomes from bj.markets m where m.code = v_code;
    v_outcome := v_outcomes[1 + floor(random() * cardinality(v_outcomes))::int];
    v_side := case when random() < 0.75 then 'buy' else 'sell' end;
    begin
      perform bj.trade(v_user + %(first_user)s - 1, v_code, v_outcome, v_side,
                       (1 + floor(random() * 20))::numeric, null, null, null, null);
    exception when sqlstate 'BJ001' or sqlstate 'BJ005' or sqlstate 'BJ006' or sqlstate 'BJ020' then
      null;
    end;
    commit;
    v_i := v_i + 1;
  end loop;
end $$;
"""


def sizes(trades: int) -> dict[str, int]:
    scale = trades / 1_100_000
    return {"trades": trades, "users": max(200, round(100_000 * scale)),
            "markets": max(20, round(1023 * scale)), "resolved": max(2, round(102 * scale)),
            "voided": max(1, round(5 * scale))}


def build(admin_url: str, name: str, trades: int) -> None:
    s = sizes(trades)
    started = time.monotonic()
    os.environ.setdefault("BETJEE_JWT_SECRET", "bench-secret-" + "b" * 40)
    os.environ["BETJEE_NO_CRON"] = "1"
    if os.environ.get("BENCH_RESUME") == "1":
        # go on with a build that stopped while trading: its traders and markets are there
        url = dbtool.with_dbname(admin_url, name)
        with psycopg.connect(url, autocommit=True) as conn:
            s["trades"] -= conn.execute("select count(*) from bj.trades").fetchone()[0]
            first = conn.execute("select min(id) from bj.users where username like 'trader%%'").fetchone()[0]
        return trade_and_settle(url, name, s, first, started, seed=0.7)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "db.py"), "drop", admin_url, name],
                   check=True, capture_output=True)
    url = subprocess.run([sys.executable, str(ROOT / "scripts" / "db.py"), "create", admin_url, name],
                         capture_output=True, text=True, check=True).stdout.strip()
    dbtool.up(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for key, value in (("bcrypt_cost", "4"), ("trade_cooldown_ms", "0"), ("signup_ip_max", "100000000"),
                           ("signup_bonus", "5000")):
            conn.execute("select admin.configure(%s, %s)", [key, value])
        # markets: b0 the hot one, one in eight with three or four outcomes
        conn.execute("""
            select admin.create_market('b' || i, 'bench market ' || i,
                     case when i %% 8 = 3 then '{A,B,C}'::text[] when i %% 8 = 5 then '{W,X,Y,Z}'::text[]
                          else '{YES,NO}'::text[] end, 200, 0.01, now() + interval '1 year')
              from generate_series(0, %s::int - 1) i""", [s["markets"]])
        first = conn.execute("select coalesce(max(id), 0) + 1 from bj.users").fetchone()[0]
    # traders: the real signup (bcrypt at cost 4), in two halves at once
    def signups(lo: int, hi: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("select bj.signup('trader' || i, 'password123', null) from generate_series(%s::int, %s::int) i", [lo, hi])
    half = s["users"] // 2
    run_all([lambda: signups(1, half), lambda: signups(half + 1, s["users"])])
    print(f"{name}: {s['users']} traders in {time.monotonic() - started:.0f} s", flush=True)
    trade_and_settle(url, name, s, first, started, seed=0.1)


def trade_and_settle(url: str, name: str, s: dict[str, int], first: int, started: float, seed: float) -> None:
    def trading(worker: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(TRADE_LOOP % {"n": s["trades"] // WORKERS, "markets": s["markets"], "users": s["users"],
                                       "heavy": HEAVY, "seed": seed * (worker + 1), "first_user": first})
    run_all([lambda w=w: trading(w) for w in range(WORKERS)])
    with psycopg.connect(url, autocommit=True) as conn:
        done = conn.execute("select count(*) from bj.trades").fetchone()[0]
        print(f"{name}: {done} trades in {time.monotonic() - started:.0f} s", flush=True)
        # settle: the last markets resolved (to their first outcome), the five before them voided
        last = s["markets"] - 1
        for i in range(last, last - s["resolved"], -1):
            conn.execute("select admin.resolve_market(%s, (select outcomes[1] from bj.markets where code = %s))",
                         [f"b{i}", f"b{i}"])
        for i in range(last - s["resolved"], last - s["resolved"] - s["voided"], -1):
            conn.execute("select admin.void_market(%s)", [f"b{i}"])
        conn.execute("vacuum analyze")
        size = conn.execute("select pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    print(f"{name}: built in {time.monotonic() - started:.0f} s: {done} trades, {s['users']} traders,"
          f" {s['markets']} markets ({s['resolved']} resolved, {s['voided']} voided), {size}", flush=True)


def run_all(jobs) -> None:
    errors: list[BaseException] = []

    def guard(job):
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            errors.append(exc)
    threads = [threading.Thread(target=guard, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def main() -> None:
    admin_url = os.environ["BETJEE_ADMIN_URL"]
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    if which in ("small", "both"):
        build(admin_url, "betjee_bench_small", SMALL)
    if which in ("large", "both"):
        build(admin_url, os.environ.get("BENCH_LARGE_DB", "betjee_bench_large"), LARGE)


if __name__ == "__main__":
    main()
