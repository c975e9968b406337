"""Read replicas with a real hot standby: a throw-away primary cluster of this module's own
(scripts/cluster.sh, as tests/test_crash.py starts one; the shared cluster is never touched), its
standby made by scripts/replica.sh (pg_basebackup -R, streaming replication), and one HTTP
server pointed at both (BETJEE_REPLICA_URL). A trade on the primary reaches the standby's reads
and its stream; a standby whose replay is paused shows others the state before the trade (so
it is the one answering) while the writer reads its own write; a standby too far behind
serves nobody; a cursor the standby issued resumes without a gap or a repeat, and one it
issued while a trade was still open on the primary hands that trade out once it commits; with
the standby stopped, reads and the stream carry on from the primary without one error, and
come back to the standby once it runs again."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DB, ROOT, SECRET, _free_port, rpc_sql, start_server, unique
from tests.test_stream import Subscriber

MAX_LAG_S = 3.0  # the server's BETJEE_REPLICA_MAX_LAG_S
DBNAME = "betjee_replica_test"


@dataclass
class Setup:
    """The primary, its standby and the server, with the scripts' environment."""
    env: dict[str, str]
    primary: str = ""  # superuser URLs of the exchange's database on each
    standby: str = ""
    base: str = ""
    proc: subprocess.Popen | None = None
    log: list[str] = field(default_factory=list)

    def script(self, name: str, *args: str) -> str:
        out = subprocess.run([str(ROOT / "scripts" / name), *args], check=False, env=self.env,
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=120)
        assert out.returncode == 0, f"{name} {' '.join(args)} failed: {out.stdout}"
        return out.stdout.strip()


def drain(setup: Setup) -> None:
    """The server's stderr, kept for failure messages (a full pipe would stall it)."""
    for line in setup.proc.stderr:
        setup.log.append(line.decode(errors="replace").rstrip())


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    folder = ROOT / f".replica-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BETJEE_DB")}
    env.update(BETJEE_PGDATA=str(folder / "primary"), BETJEE_PGSOCK=str(folder / "psock"),
               PGPORT_BETJEE=str(_free_port()), BETJEE_REPLICA_PGDATA=str(folder / "standby"),
               BETJEE_REPLICA_PGSOCK=str(folder / "ssock"), PGPORT_BETJEE_REPLICA=str(_free_port()),
               BETJEE_BACKUP_DIR=str(folder / "backups"))
    s = Setup(env)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        s.script("cluster.sh", "start")
        s.primary = subprocess.run([*DB, "create", s.script("cluster.sh", "url"), DBNAME],
                                   check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run([*DB, "up", s.primary], check=True, capture_output=True,
                       env={**os.environ, "BETJEE_JWT_SECRET": SECRET})
        with psycopg.connect(s.primary, autocommit=True) as conn:
            for key, value in (("bcrypt_cost", "4"), ("trade_cooldown_ms", "0"),
                               ("signup_ip_max", "1000000"), ("login_max_failures_ip", "1000000")):
                conn.execute("select admin.configure(%s, %s)", [key, value])
        s.script("replica.sh", "start")
        s.standby = s.script("replica.sh", "url", DBNAME)
        with psycopg.connect(s.standby) as conn:
            assert conn.execute("select pg_is_in_recovery()").fetchone()[0], "a hot standby"
        s.proc, s.base = start_server(
            s.primary, BETJEE_REPLICA_URL=s.standby, BETJEE_REPLICA_MAX_LAG_S=str(MAX_LAG_S),
            BETJEE_TRUSTED_PROXIES="127.0.0.1", BETJEE_LOG_LEVEL="INFO")
        threading.Thread(target=drain, args=(s,), daemon=True).start()
        wait_until(lambda: metric(s, "betjee_replica_serving", replica="replica1") == 1,
                   "the standby serves reads", s)
        yield s
    finally:
        if s.proc is not None:
            s.proc.terminate()
            try:
                s.proc.wait(10)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait(10)
        for name in ("replica.sh", "cluster.sh"):
            subprocess.run([str(ROOT / "scripts" / name), "stop"], check=False, env=env,
                           capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def invariants_of_the_primary(setup: Setup) -> Iterator[None]:
    yield
    with psycopg.connect(setup.primary) as conn:
        assert conn.execute("select * from admin.check_invariants()").fetchall() == []


def wait_until(condition, what: str, setup: Setup, seconds: float = 20) -> float:
    """Seconds until condition() holds (a bound only against a hang)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what}: never; server log: {setup.log[-20:]}"
        time.sleep(0.05)
    return time.monotonic() - started


def metrics(setup: Setup) -> dict[tuple[str, tuple], float]:
    r = httpx.get(setup.base + "/metrics", timeout=10)
    assert r.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def metric(setup: Setup, name: str, **labels: str) -> float:
    return metrics(setup).get((name, tuple(sorted(labels.items()))), 0.0)


def reads(setup: Setup) -> dict[str, float]:
    m = metrics(setup)
    return {db: m.get(("betjee_reads_total", (("database", db),)), 0.0)
            for db in ("primary", "replica1")}


def client(address: str, token: str | None = None, **kw) -> httpx.Client:
    """A client at its own address (X-Forwarded-For from the trusted loopback proxy)."""
    headers = {"X-Forwarded-For": address}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(headers=headers, timeout=10, **kw)


def trader(setup: Setup, address: str) -> tuple[str, int]:
    with client(address) as http:
        r = http.post(setup.base + "/api/v1/rpc/signup",
                      json={"username": unique("u"), "password": "password123"})
    assert r.status_code == 200, r.text
    return r.json()["token"], r.json()["user_id"]


def new_market(setup: Setup) -> str:
    code = unique("r")
    with psycopg.connect(setup.primary, autocommit=True) as conn:
        conn.execute("select admin.create_market(%s, %s)", [code, code])
    return code


def replayed(setup: Setup) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    with psycopg.connect(setup.primary) as conn:
        target = conn.execute("select pg_current_wal_lsn()").fetchone()[0]
    with psycopg.connect(setup.standby, autocommit=True) as conn:
        wait_until(lambda: conn.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                        [target]).fetchone()[0], "the standby replays", setup)


def version(http: httpx.Client, setup: Setup, market: str) -> int:
    r = http.get(setup.base + "/api/v1/rpc/get_market", params={"market": market})
    assert r.status_code == 200, r.text
    return r.json()["version"]


def versions_until(sub: Subscriber, market: str, version: int) -> list[int]:
    """The market's versions in the stream's batches, until that version comes (a market
    created just before a subscriber came may come first at version 0)."""
    seen: list[int] = []
    deadline = time.monotonic() + 20
    while version not in seen:
        assert time.monotonic() < deadline, f"{market} version {version} never came: {seen}"
        seen += [m["version"] for _, b in sub.batches(time.monotonic() + 0.1)
                 for m in b["markets"] if m["code"] == market]
    return seen


def buy(http: httpx.Client, setup: Setup, market: str) -> httpx.Response:
    r = http.post(setup.base + "/api/v1/rpc/trade",
                  json={"market": market, "outcome": "YES", "side": "buy", "shares": 2})
    assert r.status_code == 200, r.text
    return r


def test_reads_are_served_by_the_standby_and_see_a_trade_on_the_primary(setup):
    market = new_market(setup)
    token, _ = trader(setup, "10.1.0.1")
    with client("10.1.0.1", token) as writer:
        receipt = buy(writer, setup, market)
    assert "betjee_lsn=" in receipt.headers["set-cookie"], "a write tells its position"
    replayed(setup)
    before = reads(setup)
    with client("10.1.0.2") as other:
        assert version(other, setup, market) == 1
        history = other.get(setup.base + "/api/v1/rpc/price_history", params={"market": market})
        assert history.status_code == 200
        assert [(c["outcome"], c["close"] > 0.5) for c in history.json() if c["volume"]] == \
            [("YES", True)], "the trade's candle"
        posted = other.post(setup.base + "/api/v1/rpc/quote",  # a POST of a read is a read
                            json={"market": market, "outcome": "NO", "side": "buy", "shares": 1})
        assert posted.status_code == 200
    after = reads(setup)
    assert (after["replica1"] - before["replica1"], after["primary"] - before["primary"]) == (3, 0)
    with psycopg.connect(setup.standby) as conn:  # the server's own connections to the standby
        assert conn.execute("select count(*) from pg_stat_activity where usename = 'authenticator'"
                            " and application_name = 'betjee-api' and datname = %s",
                            [DBNAME]).fetchone()[0] >= 1


def test_every_read_of_the_api_runs_on_the_standby(setup):
    """Each STABLE api function, called by GET with its required arguments, is answered by the
    standby (a function a standby could not run would be answered again by the primary, which
    the count would show)."""
    market = new_market(setup)
    with psycopg.connect(setup.primary, autocommit=True) as conn:
        token = conn.execute("select bj.signup(%s, 'password123', null) ->> 'token'",
                             [unique("u")]).fetchone()[0]
        functions = conn.execute(
            "select proname, (coalesce(proargnames, '{}'))[1:pronargs - pronargdefaults]"
            "  from pg_proc where pronamespace = 'api'::regnamespace"
            "   and provolatile in ('s', 'i') order by 1").fetchall()
        cursor = conn.execute("select api.changes() ->> 'cursor'").fetchone()[0]
    values = {"market": market, "outcome": "YES", "side": "buy", "bot": "nobody",
              "since": cursor, "until": cursor}
    replayed(setup)
    before = reads(setup)
    answers = {}
    with client("10.6.0.1", token) as http:
        for name, required in functions:
            assert set(required) <= set(values), f"api.{name} needs a value for {required}"
            r = http.get(setup.base + f"/api/v1/rpc/{name}", params={a: values[a] for a in required})
            answers[name] = r.status_code
    after = reads(setup)
    assert {"get_market", "price_history", "me", "changes", "book", "quote"} <= set(answers)
    assert all(status in (200, 400, 404) for status in answers.values()), answers
    assert answers["get_market"] == answers["me"] == answers["price_history"] == 200
    assert (after["replica1"] - before["replica1"], after["primary"] - before["primary"]) == \
        (len(functions), 0)


class Replay:
    """Pauses the standby's replay (it keeps answering, as it was) and resumes it."""

    def __init__(self, setup: Setup, conn: psycopg.Connection) -> None:
        self.setup, self.conn = setup, conn

    def pause(self) -> None:
        replayed(self.setup)
        self.conn.execute("select pg_wal_replay_pause()")
        wait_until(lambda: self.conn.execute("select pg_get_wal_replay_pause_state()").fetchone()[0]
                   == "paused", "the replay pauses", self.setup)

    def resume(self) -> None:
        self.conn.execute("select pg_wal_replay_resume()")


@pytest.fixture
def replay(setup: Setup) -> Iterator[Replay]:
    with psycopg.connect(setup.standby, autocommit=True) as conn:
        control = Replay(setup, conn)
        try:
            yield control
        finally:
            control.resume()


def test_a_paused_standby_shows_others_the_old_state_and_the_writer_its_own_write(setup, replay):
    market = new_market(setup)
    token, _ = trader(setup, "10.2.0.1")
    sub = Subscriber(setup.base)
    sub.start()
    sub.first_id()
    replay.pause()
    before = reads(setup)
    with client("10.2.0.1", token) as writer:
        buy(writer, setup, market)
        cookie = writer.cookies["betjee_lsn"]
        # others: the standby, as it was before the trade
        with client("10.2.0.2") as other:
            assert version(other, setup, market) == 0, "served by the paused standby"
        # the writer: its own write, by its cookie, its token, its address
        assert version(writer, setup, market) == 1
        me = writer.get(setup.base + "/api/v1/rpc/me").json()
        assert [(p["market"], p["shares"]) for p in me["positions"]] == [(market, 2)]
    with client("10.2.0.3", token) as same_user_elsewhere:
        assert version(same_user_elsewhere, setup, market) == 1
    with client("10.2.0.1") as same_address:
        assert version(same_address, setup, market) == 1
    with client("10.2.0.4", cookies={"betjee_lsn": cookie}) as with_cookie:
        assert version(with_cookie, setup, market) == 1
    after = reads(setup)
    assert after["replica1"] - before["replica1"] == 1
    assert after["primary"] - before["primary"] == 5
    # the stream is fed by the standby: nothing of the trade while its replay is paused
    # (its creation may come: the primary had it before the pause)
    assert [m["version"] for _, b in sub.batches(time.monotonic() + 0.5) for m in b["markets"]
            if m["code"] == market] in ([], [0])
    replay.resume()
    assert versions_until(sub, market, 1)[-1] == 1, "the trade, once the standby has it"
    sub.stop.set()


def test_a_standby_further_behind_than_the_max_lag_serves_nobody(setup, replay):
    market = new_market(setup)
    replay.pause()
    paused = time.monotonic()
    with psycopg.connect(setup.primary, autocommit=True) as conn:
        user = conn.execute("select (bj.signup(%s, 'password123', null)) ->> 'user_id'",
                            [unique("u")]).fetchone()[0]
        rpc_sql(conn, int(user), "trade", market=market, outcome="YES", side="buy",
                shares=Decimal(1))
    wait_until(lambda: metric(setup, "betjee_replica_serving", replica="replica1") == 0,
               "the lagging standby stops serving", setup)
    assert time.monotonic() - paused >= MAX_LAG_S - 0.5, "not before it is max lag behind"
    assert metric(setup, "betjee_replica_lag_seconds", replica="replica1") > MAX_LAG_S
    before = reads(setup)
    with client("10.3.0.1") as other:
        assert version(other, setup, market) == 1, "the primary answers"
    after = reads(setup)
    assert (after["replica1"] - before["replica1"], after["primary"] - before["primary"]) == (0, 1)
    replay.resume()
    wait_until(lambda: metric(setup, "betjee_replica_serving", replica="replica1") == 1,
               "the standby serves again once caught up", setup)
    with client("10.3.0.1") as other:
        assert version(other, setup, market) == 1
    assert reads(setup)["replica1"] - after["replica1"] == 1


def stream_polls(setup: Setup) -> dict[str, float]:
    m = metrics(setup)
    return {db: m.get(("betjee_stream_polls_total", (("database", db),)), 0.0)
            for db in ("primary", "replica1")}


def test_a_cursor_issued_by_the_standby_resumes_without_gap_or_repeat(setup):
    markets = [new_market(setup) for _ in range(3)]
    with psycopg.connect(setup.primary, autocommit=True) as conn:
        users = [int(conn.execute("select (bj.signup(%s, 'password123', null)) ->> 'user_id'",
                                  [unique("u")]).fetchone()[0]) for _ in markets]
    replayed(setup)
    polls = stream_polls(setup)
    first = Subscriber(setup.base)
    first.start()
    cursor = first.first_id()
    first.stop.set()

    stop = threading.Event()
    counts = [0] * len(markets)

    def trade(i: int) -> None:
        with psycopg.connect(setup.primary, autocommit=True) as conn:
            while not stop.is_set():
                rpc_sql(conn, users[i], "trade", market=markets[i], outcome="YES", side="buy",
                        shares=Decimal("0.5"))
                counts[i] += 1
                time.sleep(0.005)
    threads = [threading.Thread(target=trade, args=(i,)) for i in range(len(markets))]
    for t in threads:
        t.start()
    time.sleep(1.0)  # trades commit while nobody listens
    catch_ups = reads(setup)
    second = Subscriber(setup.base, last_id=cursor)
    second.start()
    assert second.first_id() == cursor
    time.sleep(1.0)  # and go on across the reconnect
    stop.set()
    for t in threads:
        t.join()
    batches = second.batches(time.monotonic() + 2)
    second.stop.set()

    for i, m in enumerate(markets):
        versions = [x["version"] for _, b in batches for x in b["markets"] if x["code"] == m]
        assert versions, f"{m} changed while away and must arrive"
        assert versions == sorted(set(versions)), f"no repeats: {versions}"
        assert versions[-1] == counts[i], "the last state seen is the final one"
    after = stream_polls(setup)
    assert after["replica1"] > polls["replica1"] and after["primary"] == polls["primary"], \
        "every read of the feed was the standby's"
    assert reads(setup)["replica1"] - catch_ups["replica1"] == 1, "the catch-up too"


def changes_on_standby(setup: Setup, since: str | None) -> dict:
    """api.changes read on the standby itself, as a visitor."""
    with psycopg.connect(setup.standby) as conn:
        conn.execute("set role anon")
        return conn.execute("select api.changes(%s)", [since]).fetchone()[0]


def changes_until(sub: Subscriber, market: str, version: int) -> list[tuple[str, str, int]]:
    """(event id, market, version) of every market in the stream's batches, until that version
    of that market comes."""
    seen: list[tuple[str, str, int]] = []
    deadline = time.monotonic() + 20
    while (market, version) not in [(m, v) for _, m, v in seen]:
        assert time.monotonic() < deadline, f"{market} version {version} never came: {seen}"
        seen += [(i, m["code"], m["version"]) for i, b in sub.batches(time.monotonic() + 0.1)
                 for m in b["markets"]]
    return seen


def test_a_trade_open_when_the_standby_issues_a_cursor_comes_after_it(setup):
    """A standby's snapshot lists none of the primary's transactions in progress (it keeps them
    where pg_current_snapshot() does not look): a trade still open on the primary while a newer
    one commits must not count as seen in a cursor the standby issues, whether a client polls the
    standby with it, the stream reads on the standby past it, or a subscriber resumes from it;
    and the newer trade, which the cursor did see, does not come again."""
    early, late = new_market(setup), new_market(setup)
    with psycopg.connect(setup.primary, autocommit=True) as conn:
        users = [int(conn.execute("select (bj.signup(%s, 'password123', null)) ->> 'user_id'",
                                  [unique("u")]).fetchone()[0]) for _ in range(2)]
    replayed(setup)
    polls = stream_polls(setup)
    sub = Subscriber(setup.base)
    sub.start()
    sub.first_id()
    with psycopg.connect(setup.primary) as held:  # the early trade, its transaction kept open
        held.execute("select set_config('role', 'authenticated', true),"
                     " set_config('request.jwt.claims', %s, true)",
                     [f'{{"sub": "{users[0]}", "role": "authenticated"}}'])
        xid = held.execute("select pg_current_xact_id()::text, api.trade(market => %s,"
                           " outcome => 'YES', side => 'buy', shares => 2)", [early]).fetchone()[0]
        with psycopg.connect(setup.primary, autocommit=True) as conn:  # a newer one commits
            rpc_sql(conn, users[1], "trade", market=late, outcome="YES", side="buy",
                    shares=Decimal(1))
        replayed(setup)
        cursor = changes_on_standby(setup, None)["cursor"]
        with psycopg.connect(setup.standby) as conn:
            seen = conn.execute(
                "select pg_visible_in_snapshot(%s::xid8, %s::pg_snapshot),"
                "       pg_visible_in_snapshot(m.changed_xid, %s::pg_snapshot)"
                "  from bj.markets m where m.code = %s",
                [xid, cursor.split("@")[0], cursor.split("@")[0], late]).fetchone()
            assert seen == (False, True), \
                f"the standby's cursor {cursor}: the open trade {xid} unseen, the newer one seen"
            assert conn.execute("select bj.cursor_snapshot(0)::text").fetchone()[0] == \
                f"{xid}:{xid}:", "allowed to name none, it sees nothing from the open trade on"
        # the stream's cursor once its batch with the newer trade was read on the standby
        stream_cursor = next(i for i, m, v in changes_until(sub, late, 1) if (m, v) == (late, 1))
        held.commit()
    replayed(setup)

    ours = (early, late)
    polled = [(m["code"], m["version"]) for m in changes_on_standby(setup, cursor)["markets"]]
    assert [(m, v) for m, v in polled if m in ours] == [(early, 1)], \
        "polling the standby with its cursor"
    live = changes_until(sub, early, 1)
    sub.stop.set()
    assert [(m, v) for _, m, v in live if m in ours] == [(early, 1)], \
        "the stream, read on the standby"
    catch_ups = reads(setup)
    resumed = Subscriber(setup.base, last_id=stream_cursor)
    resumed.start()
    assert resumed.first_id() == stream_cursor
    caught_up = changes_until(resumed, early, 1)
    resumed.stop.set()
    assert [(m, v) for _, m, v in caught_up if m in ours] == [(early, 1)], \
        "resuming from the stream's cursor"
    after = stream_polls(setup)
    assert after["replica1"] > polls["replica1"] and after["primary"] == polls["primary"], \
        "every read of the feed was the standby's"
    assert reads(setup)["replica1"] - catch_ups["replica1"] == 1, "the catch-up too"


def test_with_the_standby_stopped_reads_and_the_stream_carry_on_from_the_primary(setup):
    market = new_market(setup)
    token, _ = trader(setup, "10.5.0.1")
    replayed(setup)
    sub = Subscriber(setup.base)
    sub.start()
    sub.first_id()
    statuses: list[int] = []
    stop = threading.Event()

    def read() -> None:
        rpc = setup.base + "/api/v1/rpc/"
        with client("10.5.0.2") as http:
            while not stop.is_set():
                for r in (http.get(rpc + "get_market", params={"market": market}),
                          http.get(rpc + "price_history", params={"market": market}),
                          http.post(rpc + "list_markets", json={})):
                    statuses.append(r.status_code)
    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        time.sleep(0.3)
        before = reads(setup)
        setup.script("replica.sh", "stop")
        time.sleep(0.5)
        with client("10.5.0.1", token) as writer:
            buy(writer, setup, market)
        seen = versions_until(sub, market, 1)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in readers:
            t.join()
    sub.stop.set()
    assert statuses and set(statuses) == {200}, f"no errors: {sorted(set(statuses))}"
    assert seen in ([1], [0, 1]), "once, from the primary"
    assert metric(setup, "betjee_replica_serving", replica="replica1") == 0
    after = reads(setup)
    assert after["primary"] - before["primary"] > 10, "the primary answers the reads"
    with client("10.5.0.3") as other:
        assert version(other, setup, market) == 1

    setup.script("replica.sh", "start")  # and back
    wait_until(lambda: metric(setup, "betjee_replica_serving", replica="replica1") == 1,
               "the standby serves again", setup)
    before = reads(setup)
    with client("10.5.0.3") as other:
        assert version(other, setup, market) == 1
    after = reads(setup)
    assert (after["replica1"] - before["replica1"], after["primary"] - before["primary"]) == (1, 0)
