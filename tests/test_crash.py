"""Crashes under load, on a throw-away PostgreSQL cluster of the test's own (the shared one the
other tests use is never touched): the postmaster killed with SIGKILL three times while six
clients trade over HTTP, and the HTTP server killed twice. Whatever was acknowledged is there,
once, with the arguments of its receipt; nothing unacknowledged is half there (the ledger
replays to every cache); and the same HTTP server trades again within 2 s of the database's
return."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import DB, ROOT, SECRET, _free_port, start_server, unique

CLIENTS = 6
KILLS = 3
BACK_WITHIN_S = 2.0
PROBE_EVERY_S = 0.05
RETRY_EVERY_S = 0.05


class Cluster:
    """A PostgreSQL cluster of this test's own, started and stopped with scripts/cluster.sh,
    in ROOT/.crash-<pid> (data and socket), on a port of its own."""

    def __init__(self) -> None:
        self.dir = ROOT / f".crash-{os.getpid()}"
        self.data = self.dir / "data"
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BETJEE_DB")}
        self.env.update(BETJEE_PGDATA=str(self.data), BETJEE_PGSOCK=str(self.dir / "sock"),
                        PGPORT_BETJEE=str(_free_port()))

    def script(self, *args: str) -> str:
        """scripts/cluster.sh with this cluster's environment; its output, both streams."""
        out = subprocess.run([str(ROOT / "scripts" / "cluster.sh"), *args], check=False,
                             env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=120)
        assert out.returncode == 0, f"cluster.sh {' '.join(args)} failed: {out.stdout}"
        return out.stdout

    def start(self) -> None:
        out = self.script("start")
        assert "another server might be running" not in out, out

    def url(self) -> str:
        return self.script("url").strip()

    def postmaster(self) -> int | None:
        """The PID of this cluster's running postmaster, read from its postmaster.pid, and only
        if that process really is a postmaster of this data folder."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        if str(self.data).encode() not in cmdline:
            return None
        return pid

    def kill(self) -> float:
        """SIGKILL the postmaster, then wait until it is gone (reaped, not merely a zombie:
        pg_ctl takes a PID that still exists for a running server) and its children have
        exited (they do by themselves when they notice: until then they hold the shared memory
        a new postmaster refuses to share); the seconds it took."""
        pid = self.postmaster()
        assert pid is not None, "the throw-away cluster has no running postmaster"
        children = children_of(pid)
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid, 15), f"the killed postmaster {pid} still exists after 15 s"
        for child in children:
            assert wait_gone(child, 15, zombie=True), f"postgres {child} outlived its postmaster"
        return time.monotonic() - started

    def remove(self) -> None:
        try:
            self.script("stop")
        except (AssertionError, subprocess.SubprocessError):
            pass
        pid = self.postmaster()
        if pid is not None:  # it would not stop: ours, so kill it
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 15)
        shutil.rmtree(self.dir, ignore_errors=True)


def stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent PID, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def children_of(pid: int) -> list[int]:
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [p for p in pids if (s := stat(p)) is not None and s[1] == pid]


def wait_gone(pid: int, timeout: float, zombie: bool = False) -> bool:
    """Wait until the process is gone (or, with zombie, has at least exited)."""
    deadline = time.monotonic() + timeout
    while (s := stat(pid)) is not None and not (zombie and s[0] == "Z"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@dataclass
class Exchange:
    cluster: Cluster
    url: str


@pytest.fixture(scope="module")
def exchange() -> Iterator[Exchange]:
    """The throw-away cluster, its database migrated and configured as conftest's db_url is."""
    cluster = Cluster()
    try:
        shutil.rmtree(cluster.dir, ignore_errors=True)
        cluster.dir.mkdir()
        cluster.start()
        url = cluster.url()
        subprocess.run([*DB, "up", url], check=True, capture_output=True,
                       env={**os.environ, "BETJEE_JWT_SECRET": SECRET})
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("select bj.set_jwt_secret(%s)", [SECRET])
            for key, value in (("bcrypt_cost", "4"), ("trade_cooldown_ms", "0"),
                               ("signup_ip_max", "1000000"), ("login_max_failures_ip", "1000000")):
                conn.execute("select admin.configure(%s, %s)", [key, value])
        yield Exchange(cluster, url)
    finally:
        cluster.remove()


@pytest.fixture
def live(exchange: Exchange) -> Exchange:
    """The throw-away cluster, running (whatever an earlier test of this module left)."""
    exchange.cluster.start()
    return exchange


def markets_and_traders(url: str, markets: int, traders: int) -> tuple[list[str], list[dict]]:
    with psycopg.connect(url, autocommit=True) as conn:
        codes = [unique("crash") for _ in range(markets)]
        for code in codes:
            conn.execute("select admin.create_market(%s, %s)", [code, code])
        users = [conn.execute("select bj.signup(%s, 'password123', null)",
                              [unique("u")]).fetchone()[0] for _ in range(traders)]
    return codes, users


class Server:
    """One uvicorn process of conftest.start_server, its stderr drained (a full pipe would
    stall it) and kept for the failure messages."""

    def __init__(self, url: str) -> None:
        self.proc, self.base = start_server(url)
        self.log: list[str] = []
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.drain.join(5)


@dataclass
class Book:
    """What the clients were told: every 2xx receipt with its key, every other answer."""
    acks: list[tuple[int, str, dict, dict]] = field(default_factory=list)  # user, key, args, receipt
    failures: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, user: dict, key: str, args: dict, r: httpx.Response) -> None:
        receipt = json.loads(r.text, parse_float=Decimal)
        with self.lock:
            self.acks.append((user["user_id"], key, args, receipt))

    def fail(self, what: str, detail: str = "") -> None:
        with self.lock:
            self.failures[what] += 1
            # 503 (the database is away; after a write: outcome unknown, retry), or the
            # connection to the HTTP server lost or refused; not a timeout, not a 500
            if what not in ("503", "ConnectError", "ReadError", "RemoteProtocolError",
                            "WriteError"):
                self.unexpected.append(f"{what}: {detail[:300]}")

    def count(self) -> int:
        with self.lock:
            return len(self.acks)

    def summary(self) -> str:
        with self.lock:
            replayed = sum(1 for *_, receipt in self.acks if receipt.get("replayed"))
            return (f"{len(self.acks)} acknowledged ({replayed} replayed), "
                    f"failures {dict(self.failures)}")


@dataclass
class Target:
    base: str  # where the clients send their trades (a restarted server has another port)


def order(market: str, n: int) -> dict:
    """The n-th trade of a client: buy YES, sell YES, buy NO, sell NO, ... one share each."""
    return {"market": market, "outcome": "YES" if n // 2 % 2 == 0 else "NO",
            "side": "buy" if n % 2 == 0 else "sell", "shares": "1"}


def post_trade(http: httpx.Client, target: Target, user: dict, args: dict, key: str,
               book: Book) -> bool:
    try:
        r = http.post(target.base + "/api/v1/rpc/trade",
                      headers={"Authorization": f"Bearer {user['token']}"},
                      json={**args, "idempotency_key": key})
    except httpx.TransportError as exc:
        book.fail(type(exc).__name__, str(exc))
        return False
    if r.is_success:
        book.ack(user, key, args, r)
        return True
    book.fail(str(r.status_code), r.text)
    return False


def client(i: int, market: str, user: dict, target: Target, book: Book,
           stop: threading.Event) -> None:
    """Trades until told to stop. After a failure, clients of even number retry with the same
    key (an answer then may be the stored receipt, "replayed"), the others with a new one."""
    n = attempt = 0
    with httpx.Client(timeout=15) as http:
        while not stop.is_set():
            key = f"c{i}-{n}" if i % 2 == 0 else f"c{i}-{n}-{attempt}"
            if post_trade(http, target, user, order(market, n), key, book):
                n, attempt = n + 1, 0
            else:
                attempt += 1
                stop.wait(RETRY_EVERY_S)


def probe(target: Target, market: str, user: dict, tag: str, book: Book,
          timeout: float = 15) -> float:
    """Seconds until the first 2xx trade, one attempt every PROBE_EVERY_S."""
    started = time.monotonic()
    n = 0
    with httpx.Client(timeout=5) as http:
        while time.monotonic() - started < timeout:
            if post_trade(http, target, user, order(market, 0), f"probe-{tag}-{n}", book):
                return time.monotonic() - started
            n += 1
            time.sleep(PROBE_EVERY_S)
    return float("inf")


def wait_for_acks(book: Book, more: int, timeout: float = 20) -> int:
    """Wait until `more` trades beyond those already acknowledged are; how many came."""
    start = book.count()
    deadline = time.monotonic() + timeout
    while book.count() - start < more and time.monotonic() < deadline:
        time.sleep(0.02)
    return book.count() - start


def assert_acknowledged_trades_kept(url: str, markets: list[str], users: list[dict],
                                    book: Book) -> None:
    """Every acknowledged trade is there exactly once with its receipt's arguments; a key never
    stands for two trades nor a trade for two keys; every trade of these markets belongs to
    exactly one stored key, whose receipt is complete; the ledger replays to every cache."""
    assert book.acks, "no trade was acknowledged"
    ids_of_key: dict[tuple[int, str], set[int]] = {}
    keys_of_id: dict[int, set[tuple[int, str]]] = {}
    for user_id, key, args, receipt in book.acks:
        assert receipt.get("market") == args["market"], receipt
        assert receipt.get("outcome") == args["outcome"], receipt
        assert receipt.get("side") == args["side"], receipt
        assert receipt.get("shares") == Decimal(args["shares"]), receipt
        ids_of_key.setdefault((user_id, key), set()).add(receipt["trade_id"])
        keys_of_id.setdefault(receipt["trade_id"], set()).add((user_id, key))
    assert all(len(ids) == 1 for ids in ids_of_key.values()), \
        {k: ids for k, ids in ids_of_key.items() if len(ids) > 1}
    assert all(len(keys) == 1 for keys in keys_of_id.values()), \
        {i: keys for i, keys in keys_of_id.items() if len(keys) > 1}

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("""
            select t.id, m.code, m.outcomes[t.outcome], t.side, t.shares, count(*) over (
                     partition by t.id)
              from bj.trades t join bj.markets m on m.id = t.market_id
             where t.id = any(%s)""", [list(keys_of_id)]).fetchall()
        stored = {row[0]: row[1:] for row in rows}
        missing = sorted(set(keys_of_id) - set(stored))
        assert not missing, f"acknowledged trades not in bj.trades: {missing}"
        for user_id, key, args, receipt in book.acks:
            code, outcome, side, shares, copies = stored[receipt["trade_id"]]
            assert copies == 1, receipt
            assert (code, outcome, side, shares) == (
                args["market"], args["outcome"], args["side"], Decimal(args["shares"])), receipt

        user_ids = [u["user_id"] for u in users]
        keyed = conn.execute("""
            select i.user_id, i.key, (i.response ->> 'trade_id')::bigint
              from bj.idempotency i where i.user_id = any(%s)""", [user_ids]).fetchall()
        stored_key = {(u, k): t for u, k, t in keyed}
        half = [k for k, t in stored_key.items() if t is None]
        assert not half, f"keys stored without their trade's receipt: {half}"
        for (user_id, key), ids in ids_of_key.items():
            assert stored_key.get((user_id, key)) in ids, (user_id, key, ids)
        by_key = Counter(stored_key.values())
        assert all(n == 1 for n in by_key.values()), \
            [t for t, n in by_key.items() if n > 1]
        traded = conn.execute("""
            select t.id from bj.trades t join bj.markets m on m.id = t.market_id
             where m.code = any(%s)""", [markets]).fetchall()
        assert sorted(t for (t,) in traded) == sorted(by_key), \
            "every trade of these markets is the trade of exactly one stored key"
        versions = conn.execute("""
            select m.code, m.version, (select count(*) from bj.trades t where t.market_id = m.id)
              from bj.markets m where m.code = any(%s)""", [markets]).fetchall()
        assert all(v == n for _, v, n in versions), versions
        broken = conn.execute("select * from admin.check_invariants()").fetchall()
        assert broken == [], f"invariants violated: {broken}"


def assert_only_retryable_failures(book: Book, log: list[str]) -> None:
    """A trade that was not answered 2xx was answered 503 (its outcome unknown: retry with the
    same key, docs/api.md) or lost its connection to the HTTP server; never a 500, which tells
    a client the server failed, nor a timeout."""
    unexpected = list(book.unexpected)
    failed = [line for line in log if line.startswith("api.")][-10:]
    assert not unexpected, (f"answers other than 503 or a lost connection: {unexpected}; "
                            f"the server logged: {failed}")


def run_clients(markets: list[str], users: list[dict], target: Target, book: Book,
                stop: threading.Event) -> list[threading.Thread]:
    threads = [threading.Thread(target=client, args=(i, markets[i % len(markets)], users[i],
                                                     target, book, stop), daemon=True)
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    return threads


def stop_clients(threads: list[threading.Thread], stop: threading.Event) -> None:
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a client did not stop"


def test_killing_postgres_under_load_loses_no_acknowledged_trade(live: Exchange):
    """Three times: SIGKILL the postmaster while six clients trade over HTTP, wait until it is
    gone, start it again (crash recovery). The same HTTP server trades again within 2 s of
    cluster.sh start returning; afterwards every acknowledged trade is there once and the
    invariants hold."""
    markets, users = markets_and_traders(live.url, 2, CLIENTS + 1)
    prober = users[-1]
    book, stop = Book(), threading.Event()
    server = Server(live.url)
    threads: list[threading.Thread] = []
    back: list[float] = []
    try:
        target = Target(server.base)
        threads = run_clients(markets, users, target, book, stop)
        assert wait_for_acks(book, 30) >= 30, f"no trading before the crash: {book.failures}"
        for k in range(KILLS):
            before = book.count()
            down = live.cluster.kill()
            live.cluster.start()
            back.append(probe(target, markets[k % 2], prober, f"pg{k}", book))
            came = wait_for_acks(book, 30)
            print(f"\nkill {k + 1}: postmaster gone after {down:.2f} s; trading again "
                  f"{back[-1]:.3f} s after cluster.sh start; {book.count() - before} trades since")
            assert back[-1] < BACK_WITHIN_S, (
                f"kill {k + 1}: the server traded again only {back[-1]:.2f} s after the database "
                f"was back (allowed {BACK_WITHIN_S} s); failures so far: {book.failures}; "
                f"server log: {server.log[-20:]}")
            assert came >= 30, f"kill {k + 1}: the clients did not resume: {book.failures}"
        stop_clients(threads, stop)
        assert server.proc.poll() is None, "the same server process served throughout"
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.stop()
    print(book.summary())
    assert_acknowledged_trades_kept(live.url, markets, users, book)
    assert_only_retryable_failures(book, server.log)


def test_killing_the_http_server_under_load_loses_no_acknowledged_trade(live: Exchange):
    """Twice: SIGKILL the uvicorn process while six clients trade, start a new one on the same
    database, the clients carry on against it; every acknowledged trade is there once and the
    invariants hold."""
    markets, users = markets_and_traders(live.url, 2, CLIENTS)
    book, stop = Book(), threading.Event()
    servers = [Server(live.url)]
    threads: list[threading.Thread] = []
    try:
        target = Target(servers[0].base)
        threads = run_clients(markets, users, target, book, stop)
        assert wait_for_acks(book, 30) >= 30, f"no trading before the crash: {book.failures}"
        for k in range(2):
            servers[-1].kill()
            started = time.monotonic()
            servers.append(Server(live.url))
            target.base = servers[-1].base
            came = wait_for_acks(book, 30)
            print(f"\nHTTP kill {k + 1}: 30 trades {time.monotonic() - started:.2f} s after the "
                  f"kill, the new server's start included")
            assert came >= 30, f"HTTP kill {k + 1}: the clients did not resume: {book.failures}"
        stop_clients(threads, stop)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for server in servers:
            server.stop()
    print(book.summary())
    assert_acknowledged_trades_kept(live.url, markets, users, book)
    assert_only_retryable_failures(book, [line for s in servers for line in s.log])
