"""Bots end to end: three bots (momentum, mean reversion, a market maker) watch a market that
people trade over HTTP while the server's runner runs them; then every run replays to what it
did, cooldowns held, every trade and order of a bot's account came from an action in its log,
and the invariants hold. And many runners at once never run one bot twice."""

from __future__ import annotations

import itertools
import threading
import time
from decimal import Decimal

import httpx
import psycopg

from tests.conftest import setting, unique

MOMENTUM = """const p = price("{m}", "YES")
const a = avg_price("{m}", "YES", 5)
log("price " + p + ", average " + a)
if (p > a) buy("{m}", "YES", 2)
else if (p < a && position("{m}", "YES") > 0) sell("{m}", "YES", 2)"""
REVERSION = """const p = price("{m}", "YES")
if (p > 0.55) {{ sell("{m}", "YES", 3); log("rich at " + p) }}
else if (p < 0.45) {{ buy("{m}", "YES", 3); log("cheap at " + p) }}"""
MAKER = """cancel_all("{m}")
const p = price("{m}", "YES")
if (p > 0.2 && p < 0.8) {{
  limit("{m}", "YES", "buy", p > 0.5 ? 0.45 : 0.35, 4)
  limit("{m}", "YES", "sell", p > 0.5 ? 0.65 : 0.55, 4)
}}"""


def person(server: str) -> dict:
    name = unique("p")
    r = httpx.post(f"{server}/api/v1/rpc/signup", json={"username": name, "password": "password123"})
    assert r.status_code == 200, r.text
    return {"name": name, "headers": {"Authorization": f"Bearer {r.json()['token']}"}}


def test_three_bots_trade_against_people_and_every_run_is_accounted_for(server, db, make_market):
    market = make_market()
    with setting(db, "bot_cooldown_ms", "300"):
        owners = {kind: person(server) for kind in ("momentum", "reversion", "maker")}
        bots = {}
        for kind, source in (("momentum", MOMENTUM), ("reversion", REVERSION), ("maker", MAKER)):
            name = unique(kind[:4])
            r = httpx.post(f"{server}/api/v1/rpc/create_bot", headers=owners[kind]["headers"],
                           json={"name": name, "source": source.format(m=market), "markets": [market]})
            assert r.status_code == 200, r.text
            r = httpx.post(f"{server}/api/v1/rpc/fund_bot", headers=owners[kind]["headers"],
                           json={"bot": name, "amount": 300})
            assert r.status_code == 200 and Decimal(str(r.json()["balance"])) == 300, r.text
            bots[kind] = name

        people = [person(server) for _ in range(2)]
        deadline = time.monotonic() + 5
        n = 0
        while time.monotonic() < deadline:
            who = people[n % 2]
            side = "buy" if (n // 3) % 2 == 0 else "sell"
            r = httpx.post(f"{server}/api/v1/rpc/trade", headers=who["headers"], timeout=10,
                           json={"market": market, "outcome": "YES", "side": side, "shares": 7})
            assert r.status_code in (200, 409), r.text
            n += 1
            time.sleep(0.05)
        time.sleep(1.5)  # the runner catches up with the last change
        # (pause them so that nothing runs while the books are checked)
        for kind, name in bots.items():
            assert httpx.post(f"{server}/api/v1/rpc/pause_bot", headers=owners[kind]["headers"],
                              json={"bot": name}).status_code == 200
        time.sleep(0.3)

        for kind, name in bots.items():
            runs = httpx.get(f"{server}/api/v1/rpc/bot_runs", headers=owners[kind]["headers"],
                             params={"bot": name, "max_rows": 500}).json()
            assert len(runs) >= 2, (kind, runs)
            assert all(r["error"] is None for r in runs), (kind, [r["error"] for r in runs if r["error"]])
            # the cooldown held: runs at least 300 ms apart
            times = sorted(r["at"] for r in runs)
            gaps = [(db.execute("select %s::timestamptz - %s::timestamptz as d", [b, a]).fetchone()["d"])
                    .total_seconds() for a, b in itertools.pairwise(times)]
            assert min(gaps) >= 0.3, (kind, gaps)
            # every run replays to what it did
            for r in runs:
                replay = db.execute("select admin.replay_bot_run(%s) as r", [r["run_id"]]).fetchone()["r"]
                assert replay["same"], (kind, r, replay)
            # every trade the bot took, and every order it placed, is an action in its log
            user = db.execute("select id from bj.users where username = %s", [name]).fetchone()["id"]
            done = [a for r in runs for a in r["actions"] if "result" in a]
            # (a take may fill from the book and the market maker both: two trades, one receipt)
            taken = db.execute("select coalesce(sum(shares), 0) as n from bj.trades where user_id = %s"
                               " and role is distinct from 'maker' and root_trade_id is null", [user]).fetchone()["n"]
            orders = db.execute("select count(*) as n from bj.orders where user_id = %s and kind = 'limit'",
                                [user]).fetchone()["n"]
            assert taken == sum(Decimal(str(a["result"]["shares"])) for a in done
                                if a["do"] in ("buy", "sell", "buy_for")) + sum(
                Decimal(str(a["result"]["filled"])) for a in done if a["do"] == "limit"), kind
            assert orders == sum(a["do"] == "limit" for a in done), kind
            assert db.execute("select is_bot from bj.users where id = %s", [user]).fetchone()["is_bot"]
        # the bots did trade
        assert db.execute("select count(*) as n from bj.trades t join bj.users u on u.id = t.user_id"
                          " where u.is_bot and t.market_id = (select id from bj.markets where code = %s)",
                          [market]).fetchone()["n"] > 0
        # another trader sees none of them
        stranger = person(server)
        r = httpx.get(f"{server}/api/v1/rpc/bot_runs", headers=stranger["headers"],
                      params={"bot": bots["maker"]})
        assert r.status_code == 404 and r.json()["code"] == "BJ041"


def test_many_runners_at_once_run_each_due_bot_once(db_url, db, make_market, make_user):
    market = make_market()
    owner = make_user()
    names = [unique("race") for _ in range(6)]
    for name in names:
        db.execute("select bj.create_bot(%s, %s, %s, %s)",
                   [owner["user_id"], name, f'log(price("{market}", "YES"))', [market]])
    db.execute("select bj.trade(%s, %s, 'YES', 'buy', 1, null, null, null, null)", [owner["user_id"], market])
    ran: list[int] = []
    barrier = threading.Barrier(8)

    def runner() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait()
            while (run := conn.execute("select admin.run_bot()").fetchone()[0]) is not None:
                ran.append(run)

    threads = [threading.Thread(target=runner) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    per_bot = db.execute("""select u.username, count(r.id) as n from bj.bots b join bj.users u on u.id = b.user_id
                             left join bj.bot_runs r on r.bot_id = b.id where u.username = any(%s)
                            group by u.username""", [names]).fetchall()
    assert {r["username"]: r["n"] for r in per_bot} == {n: 1 for n in names}
    assert len(ran) == len(set(ran))
