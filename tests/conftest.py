"""Fixtures: the run's database (created by scripts/test.sh, or here when pytest runs alone),
a superuser connection, fresh markets and traders, the HTTP server, and the invariant check
after every test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from hypothesis import Phase, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ReadOnlyDatabase
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
DB = [sys.executable, str(ROOT / "scripts" / "db.py")]
SECRET = "test-secret-" + "x" * 40

# Property tests are deterministic: the "ci" profile (the default, and what make test runs)
# draws from a fixed seed and first replays the examples stored in tests/hypothesis-examples
# (read-only), so what they catch they catch every run. BETJEE_HYPOTHESIS=explore draws anew
# and stores what fails there; commit the folder to keep it.
EXAMPLES = ROOT / "tests" / "hypothesis-examples"
PROFILE = os.environ.get("BETJEE_HYPOTHESIS", "ci")
settings.register_profile("ci", deadline=None, print_blob=True,
                          database=ReadOnlyDatabase(DirectoryBasedExampleDatabase(EXAMPLES)))
settings.register_profile("explore", deadline=None, print_blob=True,
                          database=DirectoryBasedExampleDatabase(EXAMPLES))
# make mutate only asks whether a test fails: no shrinking of what fails
settings.register_profile("mutate", deadline=None, database=None, derandomize=True,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(PROFILE)


def deterministic(test):
    """A fixed seed under the ci profile (hypothesis's @seed), none when exploring."""
    return seed(20261201)(test) if PROFILE in ("ci", "mutate") else test


def _admin_url() -> str:
    url = os.environ.get("BETJEE_ADMIN_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    out = subprocess.run([str(ROOT / "scripts" / "cluster.sh"), "url"], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


ADMIN_URL = _admin_url()


def with_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    url = os.environ.get("BETJEE_TEST_DATABASE_URL")
    created = None
    if not url:
        created = f"betjee_pytest_{os.getpid()}"
        url = subprocess.run([*DB, "create", ADMIN_URL, created], check=True,
                             capture_output=True, text=True).stdout.strip()
        subprocess.run([*DB, "up", url], check=True, env={**os.environ, "BETJEE_JWT_SECRET": SECRET})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select bj.set_jwt_secret(%s)", [SECRET])
        for key, value in (("bcrypt_cost", "4"), ("trade_cooldown_ms", "0"),
                           ("signup_ip_max", "1000000"), ("login_max_failures_ip", "1000000")):
            conn.execute("select admin.configure(%s, %s)", [key, value])
    yield url
    if created:
        subprocess.run([*DB, "drop", ADMIN_URL, created], check=True)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    """A superuser connection in autocommit mode, rows as dicts."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture(autouse=True)
def invariants(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test leaves admin.check_invariants_full() empty: the whole ledger replayed."""
    yield
    if "db_url" not in request.fixturenames:
        return
    url = request.getfixturevalue("db_url")
    with psycopg.connect(url) as conn:
        broken = conn.execute("select * from admin.check_invariants_full()").fetchall()
    assert broken == [], f"invariants violated: {broken}"


@contextmanager
def setting(db: psycopg.Connection, key: str, value: str) -> Iterator[None]:
    """An exchange setting changed for the length of a block, then put back."""
    before = db.execute("select value from bj.settings where key = %s", [key]).fetchone()
    db.execute("select admin.configure(%s, %s)", [key, value])
    try:
        yield
    finally:
        db.execute("select admin.configure(%s, %s)", [key, before["value"] if isinstance(before, dict) else before[0]])


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_market(db: psycopg.Connection):
    def make(outcomes: tuple[str, ...] = ("YES", "NO"), liquidity: float | str = 100,
             fee_rate: str = "0.0167", pricing: str = "lmsr", close_in: str | None = None) -> str:
        """A new market; close_in (an interval) sets its close_at that far from now."""
        code = unique("m")
        db.execute("select admin.create_market(%s, %s, %s, %s::numeric, %s::numeric,"
                   " clock_timestamp() + %s::interval, %s)",
                   [code, code, list(outcomes), str(liquidity), fee_rate, close_in, pricing])
        return code
    return make


@pytest.fixture
def make_user(db: psycopg.Connection):
    def make(ip: str | None = None) -> dict:
        name = unique("u")
        row = db.execute("select bj.signup(%s, 'password123', %s) as s", [name, ip]).fetchone()
        return row["s"]
    return make


def rpc_sql(conn: psycopg.Connection, user_id: int | None, fn: str, **args) -> dict:
    """Call api.<fn> as the HTTP layer would: role and claims set for one transaction."""
    from psycopg import sql
    query = sql.SQL("select api.{}({}) as r").format(
        sql.Identifier(fn),
        sql.SQL(", ").join(sql.SQL("{} => %s").format(sql.Identifier(k)) for k in args))
    values = [Jsonb(v) if isinstance(v, dict) or isinstance(v, list) and any(isinstance(x, dict) for x in v)
              else v for v in args.values()]
    with conn.transaction():
        role = "authenticated" if user_id else "anon"
        claims = f'{{"sub": "{user_id}", "role": "authenticated"}}' if user_id else ""
        conn.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                     [role, claims])
        row = conn.execute(query, values).fetchone()
    return row[0] if not isinstance(row, dict) else row["r"]


def logical_messages_since(db: psycopg.Connection, start: str, prefix: str = "betjee.durable") -> int:
    """Logical messages with this prefix on disk since WAL position start, for this database:
    the forwarder's confirming commits (betjee.durable), or the stream's (betjee.stream). (The
    WAL is the whole cluster's; the messages name their database, shown in hex.)"""
    return db.execute("""select case when pg_current_wal_flush_lsn() = %(s)s then 0 else
                           (select count(*) from pg_get_wal_records_info(%(s)s, pg_current_wal_flush_lsn())
                             where resource_manager = 'LogicalMessage'
                               and description like '%%"' || %(p)s || '"; payload%%'
                               and description like '%%: ' || (select string_agg(upper(lpad(to_hex(get_byte(b, i)), 2, '0')), ' ' order by i)
                                                               from (select convert_to(current_database(), 'utf8') b) x,
                                                                    generate_series(0, length(b) - 1) i)) end as n""",
                      {"s": start, "p": prefix}).fetchone()["n"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_url: str, port: int | None = None, **env: str) -> tuple[subprocess.Popen, str]:
    port = port or _free_port()
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.app:app", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--no-proxy-headers", "--log-level", "warning",
         "--timeout-graceful-shutdown", "2"],
        cwd=ROOT, env={**os.environ, "BETJEE_DATABASE_URL": db_url, "BETJEE_JWT_SECRET": SECRET,
                       "BETJEE_LOG_LEVEL": "WARNING", **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=5).status_code in (200, 503):
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start: " + proc.stderr.read().decode())


@pytest.fixture(scope="session")
def server(db_url: str) -> Iterator[str]:
    proc, base = start_server(db_url)
    yield base
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as client:
        yield client
