"""The HTTP layer against the real server and database: PostgREST's wire conventions, every
status of the mapping reached by a real request, tokens, and refusals that change nothing."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import psycopg

from tests.conftest import SECRET, logical_messages_since, start_server


def signup(http: httpx.Client) -> dict:
    from tests.conftest import unique
    r = http.post("/api/v1/rpc/signup", json={"username": unique("h"), "password": "password123"})
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def state(db: psycopg.Connection) -> tuple:
    return db.execute("""select (select count(*) from bj.ledger) as l, (select count(*) from bj.trades) as t,
                                (select sum(balance) from bj.users) as b,
                                (select string_agg(q::text, ',' order by id) from bj.markets) as q""").fetchone()


def test_signup_trade_and_me_over_http(http, make_market):
    market = make_market()
    me = signup(http)
    assert me["balance"] == 1000
    quote = http.get("/api/v1/rpc/quote", params={"market": market, "outcome": "YES",
                                                   "side": "buy", "shares": "10"}).json()
    r = http.post("/api/v1/rpc/trade", headers=bearer(me["token"]),
                  json={"market": market, "outcome": "YES", "side": "buy", "shares": 10})
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["total"] == quote["total"] == 5.210535
    assert '"amount": 5.124948' in r.text, "numbers are rendered by PostgreSQL, not a float"
    account = http.post("/rpc/me", headers=bearer(me["token"])).json()
    assert account["positions"][0]["shares"] == 10


def trades_are_durable_when_answered(http: httpx.Client, db, market: str, token: str) -> int:
    """Five trades over HTTP; each time, the WAL on disk at the moment of the answer holds the
    trade's commit record. Returns how many of the forwarder's confirming commits were written."""
    db.execute("create extension if not exists pg_walinspect")
    first = db.execute("select pg_current_wal_flush_lsn() as l").fetchone()["l"]
    for _ in range(5):
        start = db.execute("select pg_current_wal_flush_lsn() as l").fetchone()["l"]
        r = http.post("/api/v1/rpc/trade", headers=bearer(token),
                      json={"market": market, "outcome": "YES", "side": "buy", "shares": 1})
        flushed = db.execute("select pg_current_wal_flush_lsn() as l").fetchone()["l"]
        assert r.status_code == 200, r.text
        xid = db.execute("select xmin::text::bigint as x from bj.trades where id = %s",
                         [r.json()["trade_id"]]).fetchone()["x"]
        commits = db.execute("""select count(*) as n from pg_get_wal_records_info(%s, %s)
                                 where resource_manager = 'Transaction' and record_type = 'COMMIT'
                                   and xid::text::bigint = %s""", [start, flushed, xid]).fetchone()
        assert commits["n"] == 1, "durable before it was answered"
    return logical_messages_since(db, first)


def test_a_write_is_answered_only_once_its_commit_is_on_disk(http, make_market, db):
    """Writes commit without waiting for the disk (their locks go at once); the answer waits
    for a second commit whose flush covers the write's commit record."""
    market, me = make_market(), signup(http)
    assert trades_are_durable_when_answered(http, db, market, me["token"]) == 5
    # a read sent with POST has nothing to make durable, and pays for no second commit
    start = db.execute("select pg_current_wal_flush_lsn() as l").fetchone()["l"]
    assert http.post("/api/v1/rpc/get_market", json={"market": market}).status_code == 200
    assert logical_messages_since(db, start) == 0


def test_without_the_right_to_confirm_writes_commit_the_ordinary_way(db_url, db, make_market):
    market = make_market()
    fn = "pg_catalog.pg_logical_emit_message(boolean, text, text)"
    db.execute(f"revoke execute on function {fn} from authenticator")
    db.execute("notify betjee_schema")  # as a migration would: running servers look again
    proc, base = start_server(db_url)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            me = signup(http)
            assert trades_are_durable_when_answered(http, db, market, me["token"]) == 0
    finally:
        proc.terminate()
        proc.wait(10)
        db.execute(f"grant execute on function {fn} to authenticator")
        db.execute("notify betjee_schema")


def test_exact_decimals_survive_the_round_trip(http, make_market):
    market = make_market()
    me = signup(http)
    r = http.post("/api/v1/rpc/trade", headers=bearer(me["token"]),
                  content=f'{{"market": "{market}", "outcome": "NO", "side": "buy", "shares": 0.100001}}',
                  ).json()
    assert r["shares"] == 0.100001
    r = http.post("/api/v1/rpc/trade", headers=bearer(me["token"]),
                  json={"market": market, "outcome": "NO", "side": "buy", "shares": "0.0000001"})
    assert r.status_code == 400 and r.json()["code"] == "BJ020"


def test_every_status_of_the_mapping(http, make_market, db):
    market = make_market()
    me = signup(http)
    auth = bearer(me["token"])
    trade = {"market": market, "outcome": "YES", "side": "buy", "shares": 1}
    cases = [
        (http.post("/rpc/trade", headers=auth, json={**trade, "shares": "abc"}), 400, "22P02"),
        (http.post("/rpc/trade", headers=auth, json={**trade, "outcome": "MAYBE"}), 400, "BJ011"),
        (http.post("/rpc/trade", headers=auth, json={**trade, "bogus": 1}), 400, "PGRST102"),
        (http.post("/rpc/trade", headers=auth, content=b"{not json"), 400, "PGRST102"),
        (http.post("/rpc/trade", headers=auth, json=[1, 2]), 400, "PGRST102"),
        (http.post("/rpc/trade", json=trade), 401, "42501"),
        (http.post("/rpc/me", headers=bearer("x.y.z")), 401, "PGRST301"),
        (http.post("/rpc/trade", headers=auth, json={**trade, "market": "nope"}), 404, "BJ010"),
        (http.post("/rpc/no_such_function", json={}), 404, "PGRST202"),
        (http.get("/rpc/trade", headers=auth, params=trade), 405, "PGRST101"),
        (http.post("/rpc/trade", headers=auth, json={**trade, "shares": 100000}), 409, "BJ001"),
        (http.post("/rpc/trade", headers=auth, json={**trade, "max_total": 0.1}), 409, "BJ003"),
        (http.post("/rpc/trade", headers=auth, content=json.dumps(trade).encode() + b" " * 70000,
                   ), 413, "PGRST413"),
        (http.post("/rpc/trade", headers={**auth, "content-type": "text/plain"}, content=b"{}"),
         415, "PGRST107"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert set(response.json()) == {"code", "message", "details", "hint"}
    db.execute("select admin.close_market(%s)", [market])
    r = http.post("/rpc/trade", headers=auth, json=trade)
    assert (r.status_code, r.json()["code"]) == (409, "BJ002")


def test_rate_limit_is_429(http, make_market, db):
    market = make_market()
    me = signup(http)
    db.execute("select admin.configure('trade_cooldown_ms', '60000')")
    try:
        trade = {"market": market, "outcome": "YES", "side": "buy", "shares": 1}
        assert http.post("/rpc/trade", headers=bearer(me["token"]), json=trade).status_code == 200
        r = http.post("/rpc/trade", headers=bearer(me["token"]), json=trade)
        assert (r.status_code, r.json()["code"]) == (429, "BJ030")
    finally:
        db.execute("select admin.configure('trade_cooldown_ms', '0')")


def test_a_wiped_account_is_forbidden(http, db):
    me = signup(http)
    db.execute("select * from admin.wipe_users(%s)", [[me["username"]]])
    r = http.post("/rpc/me", headers=bearer(me["token"]))
    assert (r.status_code, r.json()["code"]) == (403, "BJ026")
    r = http.post("/rpc/login", json={"username": me["username"], "password": "password123"})
    assert (r.status_code, r.json()["code"]) == (403, "BJ026")


def test_forged_expired_and_unsigned_tokens_are_refused(http, db, make_market):
    me = signup(http)
    claims = jwt.decode(me["token"], SECRET, algorithms=["HS256"])
    market = make_market()
    before = state(db)
    now = int(time.time())
    forged = jwt.encode({**claims}, "another-secret-" + "y" * 40, algorithm="HS256")
    expired = jwt.encode({**claims, "iat": now - 100, "exp": now - 10}, SECRET, algorithm="HS256")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    unsigned = f"{header}.{body}."
    elevated = jwt.encode({**claims, "role": "service_role"}, SECRET, algorithm="HS256")
    for token in (forged, expired, unsigned, elevated, me["token"] + "x"):
        r = http.post("/rpc/trade", headers=bearer(token),
                      json={"market": market, "outcome": "YES", "side": "buy", "shares": 1})
        assert r.status_code == 401, (token, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    assert state(db) == before, "a refused request changes nothing"


def test_refused_calls_change_nothing(http, db, make_market):
    market = make_market()
    me = signup(http)
    before = state(db)
    for args in ({"shares": 100000}, {"shares": -1}, {"spend": 10, "shares": 1}, {"max_total": 0.01, "shares": 5}):
        r = http.post("/rpc/trade", headers=bearer(me["token"]),
                      json={"market": market, "outcome": "YES", "side": "buy", **args})
        assert 400 <= r.status_code < 500
    assert state(db) == before


def test_get_runs_read_only_and_post_aliases(http, make_market):
    market = make_market()
    a = http.get("/api/v1/rpc/get_market", params={"market": market}).json()
    b = http.post("/rpc/get_market", json={"market": market}).json()
    assert a == b and a["code"] == market
    assert [o["price"] for o in a["outcomes"]] == [0.5, 0.5]


def test_markets_are_listed_a_page_at_a_time_and_bad_pages_are_400(http, db, make_market):
    made = [make_market() for _ in range(3)]
    codes = [r["code"] for r in db.execute("select code from bj.markets order by id")]
    first = http.get("/api/v1/rpc/list_markets").json()
    assert [m["code"] for m in first] == codes[:50], "the first 50, in the order they were created"
    page = http.get("/api/v1/rpc/list_markets", params={"max_rows": 2, "after": made[0]}).json()
    assert [m["code"] for m in page] == made[1:]
    assert http.post("/rpc/list_markets", json={"max_rows": 2, "after": made[0]}).json() == page
    assert http.get("/api/v1/rpc/list_markets", params={"after": made[-1]}).json() == [], "after the last: none"
    before = state(db)
    for params, code in (({"max_rows": 0}, "BJ021"), ({"max_rows": 501}, "BJ021"), ({"after": "no-such-market"}, "BJ021"),
                         ({"after": ""}, "BJ021"), ({"status": "mine"}, "BJ021"), ({"max_rows": "many"}, "22P02"),
                         ({"max_rows": 10**10}, "22003")):
        r = http.get("/api/v1/rpc/list_markets", params=params)
        assert (r.status_code, r.json()["code"]) == (400, code), (params, r.text)
    assert state(db) == before


def test_openapi_describes_every_function_from_the_catalog(http, db):
    doc = http.get("/api/v1/openapi.json").json()
    names = {r["proname"] for r in db.execute(
        "select proname from pg_proc where pronamespace = 'api'::regnamespace")}
    assert {p.rsplit("/", 1)[1] for p in doc["paths"]} == names
    trade = doc["paths"]["/api/v1/rpc/trade"]["post"]
    assert "slippage" in trade["description"]
    assert set(trade["requestBody"]["content"]["application/json"]["schema"]["required"]) == {
        "market", "outcome", "side"}
    assert "get" in doc["paths"]["/api/v1/rpc/quote"] and "get" not in doc["paths"]["/api/v1/rpc/trade"]
    page = http.get("/api/v1/docs")
    assert page.status_code == 200 and "/api/v1/rpc/trade" in page.text


def test_database_unreachable_is_503(db_url):
    proc, base = start_server("host=127.0.0.1 port=1 dbname=nothing user=nobody connect_timeout=1")
    try:
        assert httpx.get(base + "/healthz", timeout=10).status_code == 503
        r = httpx.post(base + "/rpc/get_market", json={"market": "x"}, timeout=15)
        assert r.status_code == 503 and r.json()["code"] == "PGRST001"
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_transient_database_error_is_503_with_retry_after():
    """A statement timeout, a deadlock or a serialization failure: try again shortly."""
    from api.app import app, database_error
    from api.errors import Statuses
    app.state.statuses = Statuses()
    for exc in (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
                psycopg.errors.DeadlockDetected("deadlock detected"),
                psycopg.errors.SerializationFailure("could not serialize access")):
        r = database_error(exc, "api.trade", False)
        assert (r.status_code, r.headers.get("retry-after")) == (503, "1"), exc
        assert json.loads(r.body)["code"] == exc.sqlstate
    assert "retry-after" not in database_error(psycopg.errors.CheckViolation("no"), "api.trade",
                                               False).headers


def test_orders_over_http(http, make_market):
    market = make_market()
    me = signup(http)
    auth = bearer(me["token"])
    http.post("/rpc/trade", headers=auth, json={"market": market, "outcome": "YES", "side": "buy", "shares": 20})
    order = http.post("/rpc/place_order", headers=auth, json={
        "market": market, "outcome": "YES", "kind": "stop_loss", "shares": 20, "trigger_price": 0.4}).json()
    assert order["status"] == "open" and order["direction"] == "long"
    assert [o["order_id"] for o in http.post("/rpc/me", headers=auth).json()["orders"]] == [order["order_id"]]
    cancelled = http.post("/rpc/cancel_order", headers=auth, json={"order_id": order["order_id"]}).json()
    assert cancelled["status"] == "cancelled"
    again = http.post("/rpc/cancel_order", headers=auth, json={"order_id": order["order_id"]})
    assert (again.status_code, again.json()["code"]) == (409, "BJ007")
    assert http.post("/rpc/me", headers=auth).json()["orders"] == []


def test_the_book_over_http(http, make_market, db):
    """Limit orders, a batch, the book by GET, cancelling a list of ids given as a JSON array
    (or as an array literal in a query string), and bad arrays refused with 400."""
    market = make_market(pricing="book")
    maker, taker = signup(http), signup(http)
    mine, theirs = bearer(maker["token"]), bearer(taker["token"])
    batch = http.post("/api/v1/rpc/place_orders", headers=mine, json={"orders": [
        {"market": market, "outcome": "YES", "side": "sell", "shares": 5, "price": 0.6},
        {"market": market, "outcome": "YES", "side": "sell", "shares": 5, "price": 0.7},
        {"market": market, "outcome": "YES", "side": "buy", "shares": 5, "price": 0.2},
        {"market": market, "outcome": "MAYBE", "side": "buy", "shares": 5, "price": 0.2}]})
    assert batch.status_code == 200, batch.text
    *placed, refused = batch.json()
    assert [o["status"] for o in placed] == ["open"] * 3 and refused["code"] == "BJ011"
    book = http.get("/api/v1/rpc/book", params={"market": market, "outcome": "YES"}).json()
    assert [(a["price"], a["shares"]) for a in book["outcomes"][0]["asks"]] == [(0.6, 5), (0.7, 5)]
    taken = http.post("/api/v1/rpc/place_order", headers=theirs, json={
        "market": market, "outcome": "YES", "side": "buy", "shares": 2, "price": 0.65,
        "time_in_force": "ioc"}).json()
    assert (taken["status"], taken["filled"], taken["fills"][0]["counterparty"]) == ("filled", 2, "book")
    ids = [o["order_id"] for o in placed]
    for bad in ([[ids[0]]], [{"id": ids[0]}], ["one"]):
        r = http.post("/api/v1/rpc/cancel_orders", headers=mine, json={"order_ids": bad})
        assert r.status_code == 400, (bad, r.text)
    assert len(http.post("/api/v1/rpc/my_orders", headers=mine, json={}).json()) == 3
    done = http.post("/api/v1/rpc/cancel_orders", headers=mine, json={"order_ids": ids[:2]})
    assert done.status_code == 200 and sorted(done.json()["cancelled"]) == sorted(ids[:2]), done.text
    # someone else's ids cancel nothing
    assert http.post("/api/v1/rpc/cancel_orders", headers=theirs,
                     json={"order_ids": [ids[2]]}).json()["cancelled"] == []
    last = http.post("/api/v1/rpc/cancel_orders", headers=mine, json={"order_ids": f"{{{ids[2]}}}"})
    assert last.json()["cancelled"] == [ids[2]], last.text
    assert http.post("/api/v1/rpc/my_orders", headers=mine, json={}).json() == []
    schema = http.get("/api/v1/openapi.json").json()["paths"]["/api/v1/rpc/cancel_orders"]["post"]
    ids_schema = schema["requestBody"]["content"]["application/json"]["schema"]["properties"]["order_ids"]
    assert ids_schema == {"type": "array", "items": {"type": "integer", "format": "int64"}}


def test_a_migrated_function_is_served_without_a_restart(http, db):
    db.execute("""create function api.ping(word text default 'pong') returns jsonb
                  language sql stable security definer set search_path = ''
                  return jsonb_build_object('echo', word)""")
    try:
        db.execute("grant execute on function api.ping(text) to anon")
        db.execute("notify betjee_schema")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = http.get("/rpc/ping", params={"word": "hi"})
            if r.status_code == 200:
                break
            time.sleep(0.1)
        assert r.json() == {"echo": "hi"}
    finally:
        db.execute("drop function api.ping(text)")
        db.execute("notify betjee_schema")


def test_cors_allows_only_the_configured_origins(db_url):
    proc, base = start_server(db_url, BETJEE_CORS_ORIGINS="https://app.example")
    try:
        preflight = {"Access-Control-Request-Method": "POST"}
        ok = httpx.options(base + "/rpc/trade", headers={"Origin": "https://app.example", **preflight})
        assert ok.headers.get("access-control-allow-origin") == "https://app.example"
        other = httpx.options(base + "/rpc/trade", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers
    finally:
        proc.terminate()
        proc.wait(10)
