"""make bench, the web app's part: measured in Debian's Chromium (headless, Playwright).

1. First load: the bytes the app's first page load transfers (compressed, as sent), on the demo
   seed; the stream is not counted (it never ends).
2. The market list with 1,000 markets while trades commit at 50 a second for BENCH_WEB_SECONDS
   (default 20): for every market each stream event names, the delay from the event reaching
   the page (noted by a listener the page's EventSource runs before the app's) to the market's
   row changing on screen; and the share of the page's main thread busy (Chrome's
   TaskDuration), against the same page idle.

Runs on a throw-away database of its own.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import db as dbtool

import bench

SECONDS = int(os.environ.get("BENCH_WEB_SECONDS", "20"))
MARKETS = 1000
RATE = 50

# Before the app runs: its own EventSource notes when each event reaches the page, in a
# listener that runs before the app's (the time the app could first show the change).
ARRIVALS = """
window.__events = [];
const Source = window.EventSource;
window.EventSource = class extends Source {
  constructor(...args) {
    super(...args);
    super.addEventListener('changes', (e) => {
      const now = performance.now();
      for (const m of JSON.parse(e.data).markets || []) window.__events.push([m.code, now]);
    });
  }
};
"""
# Then, on the list: when each market's row changes on screen.
WATCH = """() => {
  window.__events = [];
  window.__rows = {};
  new MutationObserver((records) => {
    const now = performance.now();
    for (const r of records) {
      const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      const row = el && el.closest('tr[data-market]');
      if (row) (window.__rows[row.dataset.market] ||= []).push(now);
    }
  }).observe(document.querySelector('[data-testid=markets] tbody'),
             {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def first_load(browser, base: str) -> tuple[int, int, int]:
    """Bytes on the wire and decoded, and requests, of the first load of the markets page."""
    context = browser.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    urls: dict[str, str] = {}
    wire: dict[str, int] = {}
    decoded: dict[str, int] = {}

    def received(e: dict) -> None:
        urls[e["requestId"]] = e["response"]["url"]

    def data(e: dict) -> None:
        decoded[e["requestId"]] = decoded.get(e["requestId"], 0) + e["dataLength"]

    def finished(e: dict) -> None:
        wire[e["requestId"]] = e["encodedDataLength"]

    cdp.on("Network.responseReceived", received)
    cdp.on("Network.dataReceived", data)
    cdp.on("Network.loadingFinished", finished)
    page.goto(base + "/", wait_until="networkidle")
    page.wait_for_selector("tr[data-market] svg.spark")
    page.wait_for_timeout(500)
    counted = [k for k in wire if "/api/v1/stream" not in urls.get(k, "")]
    context.close()
    return sum(wire[k] for k in counted), sum(decoded.get(k, 0) for k in counted), len(counted)


def busy(cdp, seconds: float) -> float:
    """The share of wall time the page's main thread spent in tasks over the next seconds."""
    def task() -> float:
        return next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]
                    if m["name"] == "TaskDuration")
    t0, w0 = task(), time.monotonic()
    time.sleep(seconds)
    return (task() - t0) / (time.monotonic() - w0)


def trade_at_rate(url: str, codes: list[str], users: int, stop: threading.Event) -> int:
    done = 0
    rng = random.Random(7)
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.monotonic()
        while not stop.is_set():
            conn.execute("select bj.trade(%s, %s, %s, %s, 1, null, null, null, null)",
                         [rng.randint(1, users), rng.choice(codes), rng.choice(("YES", "NO")),
                          rng.choice(("buy", "buy", "sell"))])
            done += 1
            ahead = start + done / RATE - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    return done


def main() -> None:
    from playwright.sync_api import sync_playwright
    admin_url = os.environ["BETJEE_ADMIN_URL"]
    name = "betjee_bench_web"
    url = subprocess.run([sys.executable, str(ROOT / "scripts" / "db.py"), "create", admin_url, name],
                         capture_output=True, text=True, check=True).stdout.strip()
    proc = None
    try:
        os.environ["BETJEE_JWT_SECRET"] = bench.SECRET
        dbtool.up(url, seed=True)
        proc, base = bench.serve(url)
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
            wire, decoded, requests = first_load(browser, base)
            print(f"web: first load of the demo's market list: {wire / 1024:.0f} KB on the wire"
                  f" ({decoded / 1024:.0f} KB decoded), {requests} requests")

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("select admin.configure('trade_cooldown_ms', '0')")
                conn.execute("select admin.configure('signup_ip_max', '1000000')")
                conn.execute("select admin.configure('bcrypt_cost', '4')")
                conn.execute("select count(bj.signup('webbench' || i, 'password123', null))"
                             " from generate_series(1, 50) i")
                users = conn.execute("select max(id) from bj.users").fetchone()[0]
                have = conn.execute("select count(*) from bj.markets").fetchone()[0]
                conn.execute("select count(admin.create_market('w' || i, 'bench market ' || i))"
                             " from generate_series(1, %s) i", [MARKETS - have])
                codes = [r[0] for r in conn.execute("select code from bj.markets where status = 'open'"
                                                    " and pricing = 'lmsr' and cardinality(outcomes) = 2")]
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(ARRIVALS)
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            t = time.monotonic()
            page.goto(base + "/")
            page.wait_for_function("(n) => document.querySelectorAll('tr[data-market]').length >= n",
                                   arg=MARKETS, timeout=60000)
            page.wait_for_selector("[data-stream=live]")
            shown = time.monotonic() - t
            page.wait_for_timeout(4000)
            idle = busy(cdp, 5)
            page.evaluate(WATCH)
            stop = threading.Event()
            traded: list[int] = []
            worker = threading.Thread(target=lambda: traded.append(
                trade_at_rate(url, codes, users, stop)))
            worker.start()
            loaded = busy(cdp, SECONDS)
            stop.set()
            worker.join()
            page.wait_for_timeout(1500)
            events, rows = page.evaluate("[window.__events, window.__rows]")
            delays, missed = [], 0
            for code, at in events:
                after = [t for t in rows.get(code, []) if t >= at]
                if after:
                    delays.append(max(0.0, min(after) - at))
                else:
                    missed += 1
            delays.sort()
            within = sum(d <= 200 for d in delays) / max(1, len(events))
            print(f"web: {MARKETS} markets listed in {shown:.1f} s; {traded[0] / SECONDS:.0f} trades/s for"
                  f" {SECONDS} s: {len(events)} market changes in {len({c for c, _ in events})} markets,"
                  f" shown within 200 ms {within * 100:.1f} %, delay p50 {statistics.median(delays):.0f} ms,"
                  f" p99 {delays[int(len(delays) * 0.99) - 1]:.0f} ms, max {delays[-1]:.0f} ms,"
                  f" {missed} not shown")
            print(f"web: main thread busy {loaded * 100:.1f} % under that load, {idle * 100:.1f} % idle")
            browser.close()
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "db.py"), "drop", admin_url, name],
                       check=True)


if __name__ == "__main__":
    main()
