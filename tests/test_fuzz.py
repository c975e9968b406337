"""A fuzz test of the HTTP surface beyond schemathesis: hostile raw bodies (deep and wide
nesting, lone surrogate and NUL escapes, numbers no float holds, NaN, duplicate keys, wrong
types, invalid UTF-8, truncated JSON, chunked), hostile headers (tokens, content types,
forwarded addresses, Last-Event-ID) and hostile query strings, against every function the
served OpenAPI document lists (read when the test runs, so a new function is fuzzed without a
change here); then the stream's own ends: a HEAD of it, and a server stopped under it.

Nothing may answer 5xx; every refusal is the JSON error body {code, message, details, hint}
and writes nothing; the server logs no traceback and no ERROR line. The server is this
module's own, its log in a file (a pipe could fill up and stall it), and it believes
X-Forwarded-For from 127.0.0.1 so that forwarded addresses reach the database. Hypothesis runs
derandomized with a fixed number of examples: the same requests on every run."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
import urllib.parse
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

from tests.conftest import ROOT, SECRET, _free_port, unique

ERROR_KEYS = {"code", "message", "details", "hint"}
MAX_BODY = 65536
BODY_CAP = MAX_BODY - 512  # every generated body stays under the limit, so it is parsed
URL_CAP = 12_000  # the whole request line stays well under h11's 16 KiB for a request head


# Examples per test: about 25 s in all on two cores, most of it drawing the bodies.
EXAMPLES = {"bodies": 2000, "headers": 600, "queries": 600, "stream": 200}


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.large_base_example])


# ------------------------------------------------------------------------------------------
# The server, its log, and what the fuzzing runs against

LOG_CONFIG = {
    "version": 1, "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stderr"}},
    # betjee's loggers print only the message by default; here every line names its level,
    # so that an error logged by the forwarder is an ERROR line like uvicorn's
    "loggers": {"betjee": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
BAD_LINE = re.compile(r"^(ERROR|CRITICAL)\b|Traceback", re.MULTILINE)


@dataclass
class Fn:
    name: str
    args: dict[str, str]  # name -> kind: text, number, bigint, int, interval, timestamptz, ...
    required: list[str]
    readonly: bool


@dataclass
class Target:
    base: str
    log: Path
    http: httpx.Client
    db: psycopg.Connection
    state_query: sql.Composable
    functions: dict[str, Fn]
    market: str
    closed_market: str
    username: str
    token: str
    order_id: int
    cursor: str
    tokens: dict[str, str] = field(default_factory=dict)
    # what this test's calls were answered: (method, function, status, error code) -> count
    seen: Counter = field(default_factory=Counter)
    log_from: int = 0  # where this test's part of the server's log begins

    last_state: tuple = ()

    def state(self) -> tuple:
        """Rows and the newest writer of every table of the exchange, but the throttle (a
        refused login commits its count there, by design)."""
        return self.db.execute(self.state_query).fetchone()

    def assert_unchanged_unless(self, succeeded: bool, message: str) -> None:
        """After a call: unless it succeeded, no table changed since the call before it."""
        now = self.state()
        if not succeeded:
            assert now == self.last_state, message
        self.last_state = now

    def start(self) -> None:
        """A test begins: its answers are counted, and its part of the log checked, afresh."""
        self.seen.clear()
        self.log_from = self.log.stat().st_size
        self.last_state = self.state()

    def assert_log_clean(self) -> None:
        with open(self.log, "rb") as f:
            f.seek(self.log_from)
            text = f.read().decode(errors="replace")
        bad = BAD_LINE.search(text)
        assert bad is None, "the server logged an error:\n" + text[bad.start():][:6000]


def kind_of(schema: dict) -> str:
    if schema.get("format") == "date-time":
        return "timestamptz"
    if schema.get("example") == "1 hour":
        return "interval"
    return {("integer", "int64"): "bigint", ("integer", "int32"): "int"}.get(
        (schema.get("type"), schema.get("format")),
        {"number": "number", "string": "text", "boolean": "boolean",
         "object": "jsonb"}.get(schema.get("type"), "text"))


def read_functions(http: httpx.Client) -> dict[str, Fn]:
    doc = http.get("/api/v1/openapi.json").json()
    out = {}
    for path, item in doc["paths"].items():
        name = path.rsplit("/", 1)[1]
        schema = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        out[name] = Fn(name, {n: kind_of(s) for n, s in schema["properties"].items()},
                       list(schema.get("required", [])), "get" in item)
    return out


# what the housekeeping job (pg_cron, every minute and hour) derives from the rest and keeps by
# itself, whatever the calls do: minute candles, the ranking, the invariants' checkpoint
DERIVED = ("candles", "candles_rolled", "standings", "standings_refreshed", "checkpoint", "checkpoint_balances")


def state_query(db: psycopg.Connection) -> sql.Composable:
    tables = [r[0] for r in db.execute(
        "select c.relname from pg_class c where c.relnamespace = 'bj'::regnamespace"
        " and c.relkind in ('r', 'p') and c.relname <> 'throttle' and c.relname <> all(%s) order by 1",
        [list(DERIVED)]).fetchall()]
    return sql.SQL("select ") + sql.SQL(", ").join(
        sql.SQL("(select count(*) || ':' || coalesce(max(t.xmin::text::bigint), 0) from bj.{} t)")
        .format(sql.Identifier(t)) for t in tables)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_tokens(token: str) -> dict[str, str]:
    """Tokens of every kind a client could send: valid, expired, forged, unsigned, of another
    role or algorithm, malformed; and, signed with the real secret, claims no token the
    database issues carries."""
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    now = int(time.time())
    header, payload, signature = token.split(".")
    signed = {  # with the right secret: only the claims are odd
        "expired": {**claims, "iat": now - 60, "exp": now - 1},
        "role_anon": {**claims, "role": "anon"},
        "role_service": {**claims, "role": "service_role"},
        "role_postgres": {**claims, "role": "postgres"},
        "no_sub": {k: v for k, v in claims.items() if k != "sub"},
        "sub_text": {**claims, "sub": "abc"},
        "sub_huge": {**claims, "sub": "9" * 30},
        "sub_negative": {**claims, "sub": "-1"},
        "sub_unknown": {**claims, "sub": "987654321"},
        "sub_nul": {**claims, "sub": "1\u0000"},
        "sub_surrogate": {**claims, "sub": "\ud800"},
        "sub_float": {**claims, "sub": "1.5"},
        "exp_huge": {**claims, "exp": 10 ** 30},
        "nested_claim": {**claims, "x": json.loads("[" * 200 + "]" * 200)},
        "nan_claim": {**claims, "x": float("nan")},
        "aud": {**claims, "aud": "someone"},
        "nbf_future": {**claims, "nbf": now + 3600},
    }
    out = {"valid": token, **{k: jwt.encode(v, SECRET, algorithm="HS256")
                              for k, v in signed.items()}}
    out["forged"] = jwt.encode(claims, "not-the-secret-" + "y" * 40, algorithm="HS256")
    with warnings.catch_warnings():  # (the test secret is short for HS512)
        warnings.simplefilter("ignore")
        out["hs512"] = jwt.encode(claims, SECRET, algorithm="HS512")
    out["alg_none"] = b64(b'{"alg":"none","typ":"JWT"}') + "." + payload + "."
    out["alg_none_sig"] = b64(b'{"alg":"none","typ":"JWT"}') + "." + payload + "." + signature
    out["tampered"] = header + "." + b64(json.dumps({**claims, "sub": "1"}).encode()) + "." \
        + signature
    out["deep_header"] = b64(b"[" * 3000 + b"]" * 3000) + "." + payload + "." + signature
    out["header_not_object"] = b64(b'"HS256"') + "." + payload + "." + signature
    out["b64_false"] = b64(b'{"alg":"HS256","b64":false,"crit":["b64"]}') + ".." + signature
    out["crit"] = jwt.encode(claims, SECRET, algorithm="HS256", headers={"crit": ["exp"]})
    out["kid_path"] = jwt.encode(claims, SECRET, algorithm="HS256",
                                 headers={"kid": "../../etc/passwd\u0000"})
    out["bad_base64"] = header + ".!!!." + signature
    out["two_parts"] = header + "." + payload
    out["six_parts"] = token + "." + token
    out["long"] = "a" * 6000
    out["valid_plus"] = token + "x"
    return out


def server_command(port: int, log_config: Path) -> list[str]:
    return [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.app:app", "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log", "--no-proxy-headers", "--log-level",
            "warning", "--log-config", str(log_config), "--timeout-graceful-shutdown", "2"]


def serve(db_url: str, tmp: Path) -> tuple[subprocess.Popen, str, Path]:
    """A server of this module's own: its log in a file, each line with its level, and
    X-Forwarded-For believed from 127.0.0.1."""
    config, log = tmp / "logging.json", tmp / "server.log"
    config.write_text(json.dumps(LOG_CONFIG))
    port = _free_port()
    env = {**os.environ, "BETJEE_DATABASE_URL": db_url, "BETJEE_JWT_SECRET": SECRET,
           "BETJEE_LOG_LEVEL": "WARNING", "BETJEE_TRUSTED_PROXIES": "127.0.0.1"}
    with open(log, "wb") as err:
        proc = subprocess.Popen(server_command(port, config), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                return proc, base, log
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            stop(proc)
            raise RuntimeError("the server did not start: " + log.read_text(errors="replace"))
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def target(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    proc, base, log = serve(db_url, tmp_path_factory.mktemp("fuzz"))
    db = psycopg.connect(db_url, autocommit=True)
    http = httpx.Client(base_url=base, timeout=30)
    throttled = {r[0] for r in db.execute("select key from bj.throttle")}
    try:
        market, closed = unique("fz"), unique("fzc")
        for code, close_in in ((market, None), (closed, "1 second")):
            db.execute("select admin.create_market(%s, %s, '{YES,NO,MAYBE}', 100, 0.0167,"
                       " clock_timestamp() + %s::interval)", [code, code, close_in])
        username = unique("fz")
        me = http.post("/rpc/signup", json={"username": username, "password": "password123"})
        assert me.status_code == 200, me.text
        token = me.json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        r = http.post("/rpc/trade", headers=auth,
                      json={"market": market, "outcome": "YES", "side": "buy", "shares": 20})
        assert r.status_code == 200, r.text
        r = http.post("/rpc/place_order", headers=auth,
                      json={"market": market, "outcome": "YES", "kind": "stop_loss",
                            "shares": 5, "trigger_price": 0.2})
        assert r.status_code == 200, r.text
        order_id = r.json()["order_id"]
        cursor = http.get("/rpc/changes").json()["cursor"]
        yield Target(base, log, http, db, state_query(db), read_functions(http), market, closed,
                     username, token, order_id, cursor, make_tokens(token))
    finally:
        http.close()
        stop(proc)
        try:  # the throttle rows the fuzzing's refused logins and signups left
            db.execute("delete from bj.throttle where not (key = any(%s))", [list(throttled)])
        finally:
            db.close()
    text = log.read_text(errors="replace")
    assert BAD_LINE.search(text) is None, "the server logged an error:\n" + text[-8000:]


# ------------------------------------------------------------------------------------------
# Checking one answer

def describe(method: str, url: str, headers: dict, body: bytes | None) -> str:
    """A request, for a failure's message (long values cut short)."""
    shown = {k: str(v)[:120] for k, v in headers.items()}
    text = f"{method} {url[:300]} headers={shown}"
    if body is not None:
        text += f" body({len(body)} bytes)={body[:300]!r}" + ("..." if len(body) > 300 else "")
    return text


def check_answer(r: httpx.Response, what: str, *, stream: bool = False) -> str | None:
    """The answer's error code (None for a success) once it is checked."""
    assert r.status_code < 500, f"{r.status_code} for {what}: {r.text[:2000]}"
    ctype = r.headers.get("content-type", "")
    head = r.request.method == "HEAD"
    if 200 <= r.status_code < 300:
        if stream:
            assert ctype.startswith("text/event-stream"), (ctype, what)
        else:
            assert ctype.startswith("application/json"), (ctype, what)
            if not head:
                json.loads(r.text)
        return None
    assert ctype.startswith("application/json"), f"{r.status_code} {ctype!r} for {what}: " \
                                                  f"{r.text[:500]}"
    if not head:
        body = r.json()
        assert isinstance(body, dict) and set(body) == ERROR_KEYS, f"{r.text[:500]} for {what}"
        assert isinstance(body["code"], str) and isinstance(body["message"], str), r.text[:500]
        return body["code"]
    return "HEAD"


def assert_not_vacuous(t: Target, share: float) -> None:
    """The fuzzing reached the functions: at least this share of the answers came from the
    database (a success, or a refusal of the database's own), and every function was called."""
    total = sum(t.seen.values())
    reached = sum(n for (_, _, _, code), n in t.seen.items()
                  if code is None or not code.startswith(("PGRST", "HEAD")))
    assert reached >= share * total, f"only {reached} of {total} calls reached the database"
    assert {name for _, name, _, _ in t.seen} == set(t.functions), "some function never called"


def send(t: Target, method: str, url: str, headers: dict, body: bytes | None,
         chunked: bool = False) -> None:
    """One request (its body sent in chunks, without a Content-Length, if chunked); a refusal
    must leave every table as it was after the call before it (nothing else writes)."""
    what = describe(method, url, headers, body) + (" chunked" if chunked else "")
    content = iter([body]) if chunked and body is not None else body
    r = t.http.request(method, url, headers=headers, content=content)
    code = check_answer(r, what)
    t.seen[(method, url.split("?")[0].rsplit("/", 1)[1], r.status_code, code)] += 1
    t.assert_unchanged_unless(200 <= r.status_code < 300, f"a refused call ({r.status_code}) "
                              f"wrote: {what}")


# ------------------------------------------------------------------------------------------
# JSON text, built as text: json.dumps cannot write most of it

SCALARS = [
    "null", "true", "false", "0", "-0", "1", "-1", "10", "0.5", "1e999999", "-1e-999999",
    "1E+308", "-1e308", "1e-7", "5e-324", "9" * 400, "-" + "9" * 400, "1" + "0" * 400,
    "0." + "0" * 400 + "1", "9" * 5000, "1e131072", "1e-16384", "2147483648",
    "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1.5", "1e3",
    "NaN", "-NaN", "Infinity", "-Infinity", '""', '" "', '"\\u0000"', '"a\\u0000b"',
    '"\\ud800"', '"\\udfff"', '"\\ud800\\ud800"', '"\\udfff\\ud800"', '"\\ud83d\\ude00"',
    '"NaN"', '"Infinity"', '"-Infinity"', '"1e999999"', '"' + "9" * 400 + '"', '"1 hour"',
    '"infinity"', '"-infinity"', '"epoch"', '"\\\\x00"', "[]", "{}", "[null]", '{"": null}',
    "[[]]", '{"\\ud800": 1}', '{"\\u0000": 1}', '{"a": 1, "a": 2}',
]
BROKEN = [
    "01", "+1", ".5", "1.", "0x1F", "1e", "--1", "'x'", "undefined", "nul", "tru", '"open',
    "[1,]", "{,}", '{"a" 1}', "[1 2]", '"\\x41"', '"\\u12"', '"\\uZZZZ"', '"tab\there"',
    '"\x01"', "[", "{", "]", "}", ",", ":", '"\\', "/* c */ 1", "1 // c",
]
PIECES = [
    "\\ud800", "\\udfff", "\\udbff\\udfff", "\\u0000", "\\ud83d\\ude00", "\\ud83d", "\\\"",
    "\\\\", "\\n", "\\u00e9", "\\u202e", "é", "😀", "\u2028", "\ufeff", "' or 1=1 --", "%s",
    "{}", "$1", "\\\\u0041", "::numeric", "YES", "buy",
]
SAFE_CHARS = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters='"\\')
INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\x80",
                b"\xf4\x90\x80\x80", b"\xc3", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\x00",
                b"\xef\xbb\xbf", b"\xc3\x28", b"\xa0\xa1"]


def built_once(factory: Callable[..., st.SearchStrategy]) -> Callable[..., st.SearchStrategy]:
    """The factory's strategy for the given arguments, built at its first use: building
    strategies anew at every draw costs Hypothesis more time than the drawing."""
    made: dict[tuple, tuple] = {}

    def get(*args: object) -> st.SearchStrategy:
        key = tuple(id(a) if isinstance(a, (Target, Fn)) else a for a in args)
        if key not in made:  # (the arguments are kept, so that their ids stay theirs)
            made[key] = (args, factory(*args))
        return made[key][1]
    return get


@built_once
def chance(n: int) -> st.SearchStrategy[bool]:
    return st.sampled_from([False] * (n - 1) + [True])


def one_in(draw: st.DrawFn, n: int) -> bool:
    """True once in n draws (and False when Hypothesis simplifies)."""
    return draw(chance(n))


STRING_PARTS = st.lists(st.one_of(st.sampled_from(PIECES), st.text(SAFE_CHARS, max_size=12)),
                        max_size=6)
LONG_RUN = st.tuples(st.sampled_from(["x", "é", "\\u0000", "\\ud800"]), st.integers(0, 8000))


@built_once
@st.composite
def json_strings(draw: st.DrawFn) -> str:
    parts = draw(STRING_PARTS)
    if one_in(draw, 16):
        piece, times = draw(LONG_RUN)
        parts.append(piece * times)
    return '"' + "".join(parts) + '"'


numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10 ** 500), max_value=10 ** 500).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.tuples(st.integers(-9, 9), st.integers(-2 ** 20, 2 ** 20)).map(lambda p: f"{p[0]}e{p[1]}"),
)


@built_once
def plausible_arg(name: str, kind: str, t: Target) -> st.SearchStrategy[str]:
    """A value of the argument's type, most often one meant for an argument of its name."""
    named = {
        "market": [t.market, t.market, t.closed_market, "nope", t.market.upper()],
        "outcome": ["YES", "NO", "MAYBE", "yes", "", "Y\u0000ES"],
        "side": ["buy", "sell", "hold", "BUY"],
        "kind": ["stop_loss", "take_profit", "limit"],
        "status": ["open", "closed", "resolved", "voided", "all"],
        "username": [t.username, unique("fzu"), "a" * 33, "_x_", "ab", "Fz\u0130x"],
        "password": ["password123", "short", "x" * 73, "é" * 36 + "AAAA"],
        "since": [t.cursor, t.cursor + "0", "1:1:", "1"],
        "until": [t.cursor, "1:1:", t.cursor.split("@")[0]],
        "idempotency_key": ["k1", "k2", "", "x" * 1000],
    }.get(name) if kind == "text" else None
    if not named:
        return plausible(kind, t)
    return st.one_of(st.sampled_from([json.dumps(v) for v in named]), plausible(kind, t))


@built_once
def plausible(kind: str, t: Target) -> st.SearchStrategy[str]:
    """Values of the right type, most of them in range: these reach the functions' own checks."""
    texts = [t.market, t.closed_market, "YES", "NO", "MAYBE", "yes", "buy", "sell", "stop_loss",
             "take_profit", "open", "closed", "resolved", "voided", t.username, "password123",
             t.cursor, t.cursor + "0", "1:1:", "1", "", "x" * 73, "é" * 40, "a" * 33,
             t.market.upper(), t.market + " ", "1 hour"]
    values = {
        "text": [json.dumps(s) for s in texts],
        "number": ["1", "10", "0.5", "5.3", "0", "-1", "0.000001", "0.0000001", "1000000",
                   '"10"', '"0.5"', '"NaN"', '"Infinity"', '"-Infinity"', '" 1 "', '"1e3"',
                   "0.999999999", "0.3", "0.2", "1e-6", "100000000000"],
        "bigint": [str(t.order_id), "1", "0", "-1", "100", "1000", "9223372036854775807",
                   "9223372036854775808", "-9223372036854775808", "1.5", "1e2", '"1"',
                   '"abc"', '" 2 "'],
        "int": ["1", "0", "-1", "100", "1000", "1001", "2147483647", "2147483648", "1.5", "1e2",
                '"1"', '"abc"'],
        "interval": ['"1 hour"', '"1 second"', '"0.5 seconds"', '"1 microsecond"', '"0"',
                     '"-1 hour"', '"1 mon"', '"366 days"', '"367 days"', '"1 year"', '"P1D"',
                     '"PT1S"', '"@ 1 hour ago"', '"178000000 years"', '"infinity"',
                     '"1e400 hours"', '"2147483647 days 2147483647 hours"',
                     '"1 day 1 mon -30 days"', "3600", '"00:00:01"', '"1 hour"'],
        "timestamptz": ['"2024-01-01T00:00:00Z"', '"1970-01-01"', '"infinity"', '"-infinity"',
                        '"epoch"', '"now"', '"294276-12-31 23:59:59"', '"294277-01-01"',
                        '"4714-11-24 00:00:00+00 BC"', '"4714-11-23 BC"', '"2024-02-30"',
                        '"99999-12-31"', '"J2451187"', '"allballs"', "0", "1700000000"],
    }
    return st.sampled_from(values.get(kind, values["text"]))


@built_once
@st.composite
def deep(draw: st.DrawFn, budget: int = 60_000) -> str:
    """Arrays and objects nested far beyond any limit, closed or not."""
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"a":', "}]"),
                                           ("[1,", "]"), ('{"\\ud800":', "}"), ("[[", "]]")]))
    depth = draw(st.one_of(st.sampled_from([31, 32, 33, 34, 999, 1000, 1001, 5000, 100_000]),
                           st.integers(1, 20_000)))
    depth = min(depth, budget // (len(opener) + len(closer)))
    inner = draw(st.sampled_from(["1", "[]", "{}", '"\\ud800"', "null", ""]))
    ending = draw(st.sampled_from(["closed", "closed", "open", "one short", "one over"]))
    closing = {"closed": depth, "open": 0, "one short": depth - 1, "one over": depth + 1}[ending]
    return opener * depth + inner + closer * closing


@built_once
def values_for(kind: str, t: Target) -> st.SearchStrategy[str]:
    leaf = st.one_of(plausible(kind, t), st.sampled_from(SCALARS), numbers, json_strings())
    nested = st.recursive(
        leaf, lambda children: st.one_of(
            st.lists(children, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
            st.lists(st.tuples(json_strings(), children), max_size=4).map(
                lambda kv: "{" + ",".join(f"{k}:{v}" for k, v in kv) + "}")),
        max_leaves=8)
    return st.one_of(plausible(kind, t), leaf, nested, deep(), st.sampled_from(BROKEN),
                     st.integers(1, 5000).map(lambda n: "[" + ",".join(["1"] * n) + "]"))


@built_once
def extra_keys(fn: Fn) -> st.SearchStrategy[str]:
    return st.one_of(json_strings(), st.sampled_from(
        ['"\\ud800"', '"\\udfff"', '"\\u0000"', '""', '"MARKET"', '"market "', '"__proto__"',
         *[json.dumps(n) for n in fn.args]]))


@built_once
@st.composite
def arg_objects(draw: st.DrawFn, fn: Fn, t: Target) -> str:
    """A JSON object of the function's arguments (some, all, or the required ones), each of any
    type, with now and then an unknown key, a key twice, a key no string can be, or thousands
    of keys."""
    names = list(fn.args)
    which = draw(st.sampled_from(["required", "required", "all", "some"]))
    if which == "some":
        chosen = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    else:
        chosen = list(fn.required) if which == "required" else names
    # most arguments plausible, one or two of them anything: so that most bodies reach the
    # function and its checks, with a wrong type or a wild value where it is not expected
    hostile = draw(st.sets(st.sampled_from(chosen), max_size=2)) if chosen else set()
    pairs = [(json.dumps(n), draw(values_for(fn.args[n], t) if n in hostile
                                  else plausible_arg(n, fn.args[n], t))) for n in chosen]
    if one_in(draw, 5):  # a key the function has not, or one key twice
        pairs += draw(st.lists(st.tuples(extra_keys(fn), values_for("text", t)), min_size=1,
                               max_size=2))
    pairs = draw(st.permutations(pairs))
    if one_in(draw, 8):  # a wide object
        width = draw(st.integers(1, 6000))
        wide = [(f'"k{i}"', "1") for i in range(width)]
        at = draw(st.integers(0, len(pairs)))
        pairs = pairs[:at] + wide + pairs[at:]
    ws = draw(st.sampled_from(["", " ", "\n", "\t", "\r\n  "]))
    return "{" + ws + ("," + ws).join(f"{k}{ws}:{ws}{v}" for k, v in pairs) + ws + "}"


@built_once
@st.composite
def bodies(draw: st.DrawFn, fn: Fn, t: Target) -> bytes:
    shape = draw(st.sampled_from(["args"] * 8 + ["deep", "top", "empty"]))
    if shape == "args":
        text = draw(arg_objects(fn, t))
    elif shape == "deep":
        name = draw(st.sampled_from([*fn.args, "market"]))
        text = '{"' + name + '": ' + draw(deep(BODY_CAP - 200)) + "}"
    elif shape == "top":
        text = draw(st.one_of(values_for("text", t),
                              arg_objects(fn, t).map(lambda o: "[" + o + "]")))
    else:
        text = draw(st.sampled_from(["", " ", "\n", "{}", "null", "[]", "\ufeff{}"]))
    body = text.encode("utf-8", "surrogatepass")
    mutation = draw(st.sampled_from(["none"] * 20 + ["truncate", "insert", "bom", "trailing",
                                                     "utf16", "utf32"]))
    if mutation == "truncate":
        body = body[:draw(st.integers(0, max(0, len(body) - 1)))]
    elif mutation == "insert":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from(INVALID_UTF8)) + body[at:]
    elif mutation == "bom":
        body = b"\xef\xbb\xbf" + body
    elif mutation == "trailing":
        body += draw(st.sampled_from([b"}", b",", b" {}", b"\x00", b"garbage", b"]", b"\n\n"]))
    elif mutation == "utf16":
        body = body.decode("utf-8", "replace").encode(draw(st.sampled_from(
            ["utf-16", "utf-16-le", "utf-16-be"])), "surrogatepass")
    elif mutation == "utf32":
        body = body.decode("utf-8", "replace").encode("utf-32", "surrogatepass")
    return body[:BODY_CAP]


def function_calls(t: Target) -> st.SearchStrategy[tuple[str, bytes]]:
    return st.sampled_from(sorted(t.functions)).flatmap(
        lambda name: st.tuples(st.just(name), bodies(t.functions[name], t)))


def post_path(name: str) -> str:
    return ("/api/v1/rpc/" if len(name) % 2 else "/rpc/") + name


# ------------------------------------------------------------------------------------------
# Bodies

DEEP_MARKET = ('{"market": ' + "[" * 1000 + "]" * 1000 + "}").encode()
SURROGATE_QUOTE = b'{"market": "\\ud800", "outcome": "YES", "side": "buy", "shares": 1}'
NAN_TRADE = b'{"market": "%s", "outcome": "YES", "side": "buy", "shares": 1, "max_total": NaN}'


def test_hostile_bodies_to_every_function(target: Target, db_url: str) -> None:
    """Raw bodies to every function, as an anonymous client and as a trader."""
    t = target
    t.start()

    @fuzz_settings(EXAMPLES["bodies"])
    @given(call=function_calls(t), auth=st.booleans(),
           ctype=st.sampled_from([None, "application/json", "application/json; charset=utf-8"]),
           chunked=st.sampled_from([False, False, False, True]))
    @example(call=("quote", SURROGATE_QUOTE), auth=False, ctype="application/json", chunked=False)
    @example(call=("trade", SURROGATE_QUOTE), auth=True, ctype="application/json", chunked=False)
    @example(call=("get_market", DEEP_MARKET), auth=False, ctype=None, chunked=False)
    @example(call=("quote", DEEP_MARKET), auth=True, ctype=None, chunked=True)
    @example(call=("trade", NAN_TRADE % t.market.encode()), auth=True, ctype="application/json",
             chunked=False)
    def run(call: tuple[str, bytes], auth: bool, ctype: str | None, chunked: bool) -> None:
        name, body = call
        headers = {}
        if auth:
            headers["Authorization"] = f"Bearer {t.token}"
        if ctype:
            headers["Content-Type"] = ctype
        send(t, "POST", post_path(name), headers, body, chunked)

    run()
    assert set(t.functions) >= {"quote", "trade", "get_market", "signup"}
    assert_not_vacuous(t, 0.3)
    t.assert_log_clean()


def test_the_known_hostile_bodies_are_bad_input_to_every_function(target: Target,
                                                                  db_url: str) -> None:
    """The past defects and their kin, to every function, by exact answer: each is a 400 of
    the argument check, before any function runs."""
    t = target
    t.start()
    known = [SURROGATE_QUOTE, DEEP_MARKET, NAN_TRADE % t.market.encode(),
             b'{"\\udfff": 1}', b'{"market": "a", "market": "a"}', b'{"market": Infinity}',
             b'{"market": "\xff"}', b'{"market": "\xed\xa0\x80"}', b'{"market": "x"',
             b'["market"]', b'"market"', b"1e999999", b"{" * 30_000]
    auth = {"Authorization": f"Bearer {t.token}", "Content-Type": "application/json"}
    for name in sorted(t.functions):
        for body in known:
            r = t.http.post(post_path(name), content=body, headers=auth)
            assert r.status_code == 400 and r.json()["code"] == "PGRST102", (name, body, r.text)
            assert set(r.json()) == ERROR_KEYS
            t.assert_unchanged_unless(False, f"a refused call wrote: {name} {body[:100]!r}")
    t.assert_log_clean()


# ------------------------------------------------------------------------------------------
# Headers

CONTENT_TYPES = [
    None, None, None, "application/json", "application/json", "application/json; charset=utf-8",
    "application/json; charset=latin1", "text/plain", "multipart/form-data; boundary=xyz",
    "application/x-www-form-urlencoded", "",
    "application/JSON", ";application/json", "application/json;;;", "application/json ;x",
    "application/jsonx", "application/json, text/plain", "*/*", "application/vnd.pgrst+json",
    "application/json; charset=utf-16", b"application/json; charset=\xff",
]
FORWARDED = [
    None, "", "1.2.3.4", "::1", "fe80::1%eth0", "garbage", "1.2.3.4, 5.6.7.8", ",,,",
    "999.1.1.1", "1.2.3.4:80", "[::1]", "unknown", "1.1.1.1," * 500, "0.0.0.0",
    "255.255.255.255", "::ffff:1.2.3.4", "2001:db8::1%25x", "127.0.0.1", "10.0.0.1, 127.0.0.1",
    "1.2.3.4\tx", "; drop table bj.users; --", b"\xff\xfe", "1" * 3000, "::", "0::0:0:0:0:0:0:0",
]


def authorizations(t: Target) -> st.SearchStrategy[str | bytes | None]:
    tokens = sorted(t.tokens)
    return st.one_of(
        st.none(), st.just("Bearer " + t.token),
        st.sampled_from(tokens).map(lambda k: "Bearer " + t.tokens[k]),
        st.sampled_from(["", "Bearer", "Bearer \t x", "bearer", "Basic dXNlcjpwYXNz",
                         "Bearer a.b.c", "Bearer ..", "Token x", "Bearer null", "Bearer %00",
                         b"Bearer \xff\xfe", "Bearer " + "a." * 3000,
                         "bearer " + t.token, "BEARER " + t.token, "Bearer  " + t.token,
                         "Token " + t.token, t.token, "Bearer " + t.token + " extra"]),
        # (h11 sends no header value that starts or ends with white space)
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=80).map(
            lambda s: ("Bearer " + s).rstrip()),
    )


def plausible_bodies(t: Target) -> st.SearchStrategy[tuple[str, bytes]]:
    """Bodies that mostly pass the argument check, so that the headers decide."""
    @built_once
    def body(fn: Fn) -> st.SearchStrategy[bytes]:
        optional = sorted(set(fn.args) - set(fn.required))
        names = st.lists(st.sampled_from(optional), unique=True, max_size=2).map(
            lambda more: [*fn.required, *more]) if optional else st.just(list(fn.required))
        pairs = names.flatmap(lambda ns: st.tuples(*(
            plausible_arg(n, fn.args[n], t).map(lambda v, n=n: f'"{n}": {v}') for n in ns)))
        return pairs.map(lambda kv: ("{" + ", ".join(kv) + "}").encode())
    return st.sampled_from(sorted(t.functions)).flatmap(
        lambda name: st.tuples(st.just(name), body(t.functions[name])))


def test_hostile_headers(target: Target, db_url: str) -> None:
    """Tokens valid, expired, forged, unsigned, malformed; content types; forwarded addresses
    (believed here from 127.0.0.1, so they reach the database)."""
    t = target
    t.start()

    @fuzz_settings(EXAMPLES["headers"])
    @given(call=plausible_bodies(t), auth=authorizations(t), ctype=st.sampled_from(CONTENT_TYPES),
           forwarded=st.sampled_from(FORWARDED), accept=st.sampled_from(
               [None, "text/html", "application/json", "*/*", "application/octet-stream"]))
    def run(call: tuple[str, bytes], auth: str | bytes | None, ctype: str | bytes | None,
            forwarded: str | bytes | None, accept: str | None) -> None:
        name, body = call
        headers: dict = {}
        for key, value in (("Authorization", auth), ("Content-Type", ctype),
                           ("X-Forwarded-For", forwarded), ("Accept", accept)):
            if value is not None:
                headers[key] = value
        send(t, "POST", post_path(name), headers, body)

    run()
    assert_not_vacuous(t, 0.3)
    t.assert_log_clean()


# ------------------------------------------------------------------------------------------
# Query strings

RAW_VALUES = ["%00", "%ED%A0%80", "%ED%BF%BF", "%FF", "%C0%80", "%", "%zz", "%u0041", "+", "%2B",
              "a%00b", "%F0%9F%98%80", "1e999999", "NaN", "Infinity", "-Infinity", "[]", "{}",
              "%5B%5D", "null", "true", "", "%22%22", "1%2C2", "%0A", "%0D%0A", "%09", "%20",
              "9" * 400, "%EF%BB%BF", "'", "%27%20or%201%3D1", "a=b", "==", "&", "%26", "%3B",
              "(", ")", "%25", "..%2F..%2F", "%E2%80%AE"]


def as_query_value(value: str) -> str:
    """A plausible JSON value as a query parameter: a string's text, or the number."""
    return urllib.parse.quote(json.loads(value) if value.startswith('"') else value, safe="")


QUERY_JUNK = ["", "x", "market[]", "%00", "%ED%A0%80", "select", "order", "limit", "MARKET",
              "market%00", "%6Darket"]
QUERY_HOSTILE = st.one_of(
    st.sampled_from(RAW_VALUES),
    st.integers(0, 9000).map(lambda n: "a" * n),
    st.integers(0, 2500).map(lambda n: "%00" * n),
    st.integers(0, 1300).map(lambda n: "%ED%A0%80" * n),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="#"),
            max_size=30))


@built_once
def query_value(name: str, kind: str, t: Target) -> st.SearchStrategy[str]:
    return plausible_arg(name, kind, t).map(as_query_value)


@built_once
def query_names(fn: Fn, junk: bool) -> st.SearchStrategy[str]:
    return st.sampled_from(QUERY_JUNK if junk or not fn.args else list(fn.args))


@built_once
@st.composite
def query_strings(draw: st.DrawFn, fn: Fn, t: Target) -> str:
    # the required arguments, plausible, now and then one left out; then any parameters
    params = [(n, draw(query_value(n, fn.args[n], t)), "=") for n in fn.required]
    if params and one_in(draw, 5):
        del params[draw(st.integers(0, len(params) - 1))]
    for _ in range(draw(st.integers(0, 4))):  # more: mostly the function's, of any value
        name = draw(query_names(fn, one_in(draw, 4)))
        value = draw(QUERY_HOSTILE if one_in(draw, 2) or name not in fn.args
                     else query_value(name, fn.args[name], t))
        params.append((name, value, draw(st.sampled_from(["=", "=", "=", "", "=="]))))
    params = draw(st.permutations(params))
    if params and one_in(draw, 4):  # a parameter repeated
        params += [params[0]] * draw(st.integers(1, 50))
    sep = draw(st.sampled_from(["&"] * 6 + ["&&", ";", "&amp;"]))
    query = sep.join(f"{k}{eq}{v}" if eq else k for k, v, eq in params)
    return query[:URL_CAP - 100]


def test_hostile_query_strings(target: Target, db_url: str) -> None:
    """GET (and HEAD) with raw query strings: NUL and surrogate escapes, repeated and unknown
    parameters, very long values; on the write functions too (a 405)."""
    t = target
    calls = st.sampled_from(sorted(t.functions)).flatmap(
        lambda name: st.tuples(st.just(name), query_strings(t.functions[name], t)))
    t.start()

    @fuzz_settings(EXAMPLES["queries"])
    @given(call=calls, method=st.sampled_from(["GET", "GET", "GET", "HEAD"]),
           auth=st.sampled_from([None] * 3 + ["valid"] * 3 + ["expired", "forged", "alg_none"]))
    @example(call=("quote", f"market={t.market}%00&outcome=YES&side=buy&shares=1"),
             method="GET", auth=None)
    @example(call=("get_market", "market=%ED%A0%80&market=%ED%A0%80"), method="GET", auth=None)
    @example(call=("price_history", f"market={t.market}&bucket=1%20second&since=-infinity"),
             method="GET", auth=None)
    def run(call: tuple[str, str], method: str, auth: str | None) -> None:
        name, query = call
        headers = {"Authorization": "Bearer " + t.tokens[auth]} if auth else {}
        send(t, method, f"/api/v1/rpc/{name}?{query}", headers, None)

    run()
    assert_not_vacuous(t, 0.1)
    t.assert_log_clean()


# ------------------------------------------------------------------------------------------
# The stream's Last-Event-ID

def cursor_garbage(t: Target) -> st.SearchStrategy[str | bytes]:
    snapshot, _, at = t.cursor.partition("@")
    return st.one_of(
        st.sampled_from([
            t.cursor, snapshot, "", "a b", "abc", "1:2:", "1:2:3@4", "0:0:", "0:0:@0", "5:1:",
            "1:2:5", "1:5:9", "x:y:z@w", "-5:-1:@-1", "1:1:1,2,3@1", "1:3:2,2,2",
            "9999999999999999999:9999999999999999999:", "18446744073709551615:1:",
            "1:18446744073709551616:", "1@99999999999999999", "1@" + "9" * 40, "1@-1",
            f"{snapshot}@99999999999999999", f"{snapshot}@0", f"{snapshot}@", "@", "@1", "1e5",
            "1@1e400", "NaN", "%00", b"\xc3\xa9", b"\xff\xfe", b"\xed\xa0\x80", "1" * 4000,
            t.cursor + "," * 100, t.cursor * 50, "1:2:" + ",".join(["1"] * 2000),
            "; select pg_sleep(10); --", "null", "[]", "{}", "%00", "1%00", "%ED%A0%80",
            "%", "%zz", "%FF", t.cursor + "%00",
            f"{snapshot}@{at}0", f"{snapshot}0@{at}",
        ]),
        st.text(st.sampled_from("0123456789:@,-+. eE"), max_size=60).map(str.strip),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40).map(
            str.strip),
    )


def test_hostile_last_event_ids(target: Target, db_url: str) -> None:
    """The stream resumed from any cursor (Last-Event-ID, or ?since= as it is or raw, with
    %00 and surrogate escapes): refused with the JSON error before it starts, or started; only
    the status and headers are read, then the stream is closed."""
    t = target
    t.start()

    @fuzz_settings(EXAMPLES["stream"])
    @given(last=cursor_garbage(t),
           via=st.sampled_from(["header", "header", "query", "raw", "raw", "both"]),
           forwarded=st.sampled_from([None, "garbage", "1.2.3.4"]))
    @example(last="%00", via="raw", forwarded=None)
    @example(last=t.cursor + "%00", via="raw", forwarded=None)
    @example(last="%ED%A0%80", via="raw", forwarded=None)
    def run(last: str | bytes, via: str, forwarded: str | None) -> None:
        headers: dict = {} if forwarded is None else {"X-Forwarded-For": forwarded}
        params = None
        url = "/api/v1/stream"
        text = last.decode("latin-1") if isinstance(last, bytes) else last
        if via in ("header", "both"):
            headers["Last-Event-ID"] = last
        if via in ("query", "both"):
            params = {"since": text}
        if via == "raw":  # percent escapes as they are: %00 is a NUL, %ED%A0%80 no character
            url += "?since=" + urllib.parse.quote(text, safe="%:@,;=+")
        what = describe("GET", url, headers, None) + f" params={params!r}"
        with t.http.stream("GET", url, headers=headers, params=params) as r:
            if r.status_code >= 300:
                r.read()
            code = check_answer(r, what, stream=True)
        t.seen[("GET", "stream", r.status_code, code)] += 1
        t.assert_unchanged_unless(r.status_code < 300, f"a refused stream ({r.status_code}) "
                                  f"wrote: {what}")

    run()
    assert t.seen[("GET", "stream", 200, None)] > 0, t.seen
    t.assert_log_clean()


def test_a_head_of_the_stream_answers_and_frees_its_connection(db_url: str,
                                                                tmp_path: Path) -> None:
    """HEAD /api/v1/stream answers what a GET would, and ends: the client's next request on the
    same connection is answered (a stream going on behind an answer without a body holds the
    connection, and a subscriber, for good). On a server of its own, whose log is checked."""
    proc, base, log = serve(db_url, tmp_path)
    try:
        cursor = httpx.get(base + "/rpc/changes", timeout=10).json()["cursor"]
        for last in (None, cursor, "garbage"):
            headers = {"Last-Event-ID": last} if last else {}
            with httpx.Client(base_url=base, timeout=3) as client:
                r = client.head("/api/v1/stream", headers=headers)
                check_answer(r, f"HEAD /api/v1/stream headers={headers}", stream=True)
                try:
                    after = client.get("/healthz")
                except httpx.ReadTimeout:
                    pytest.fail(f"HEAD /api/v1/stream headers={headers} was answered "
                                f"{r.status_code}, then its connection answered nothing more")
                assert after.status_code == 200
    finally:
        stop(proc)
    text = log.read_text(errors="replace")
    assert BAD_LINE.search(text) is None, "the server logged:\n" + text[:6000]


def test_the_server_stops_with_subscribers_connected_and_logs_no_error(
        db_url: str, tmp_path: Path) -> None:
    """A restart meets connected streams: the server ends them and stops, and its log holds no
    ERROR line and no traceback."""
    proc, base, log = serve(db_url, tmp_path)
    with ExitStack() as streams:
        try:
            cursor = httpx.get(base + "/rpc/changes", timeout=10).json()["cursor"]
            for headers in ({}, {"Last-Event-ID": cursor}):
                client = streams.enter_context(httpx.Client(base_url=base, timeout=10))
                r = streams.enter_context(client.stream("GET", "/api/v1/stream",
                                                        headers=headers))
                assert r.status_code == 200, headers
        finally:
            stop(proc)
    text = log.read_text(errors="replace")
    bad = BAD_LINE.search(text)
    assert bad is None, "stopped with streams open, the server logged:\n" + text[:6000]
