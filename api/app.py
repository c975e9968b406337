"""Routes and lifespan: the forwarder. It verifies the token, picks the role, calls
api.<function> with named arguments, returns its JSON as it came, maps SQLSTATEs to HTTP
statuses, and relays market changes to streams. Nothing else."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import time
from contextlib import asynccontextmanager

import jwt
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from api import docs, metrics, replicas, rpc, runner, stream, web
from api.address import client_address, trusted_proxies
from api.auth import ANON, AuthError, identify, secret
from api.errors import Statuses, error

MAX_BODY = int(os.environ.get("BETJEE_MAX_BODY", "65536"))
# How long a call waits for a pooled connection, or for its turn at a limited call (a password
# hash), before it is answered 503; and, while the database is known to be down, only briefly.
WAIT_S = 5.0
WAIT_DOWN_S = 0.5
# SQLSTATEs of a connection the database ended or lost: a connection exception, or the server
# shutting down (an administrator's command, the postmaster's exit), crashing or starting up.
CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
access_log = logging.getLogger("betjee.access")
log = logging.getLogger("betjee")

def api_conninfo() -> str:
    """The HTTP layer logs in as `authenticator`, which may only SET ROLE anon/authenticated."""
    if os.environ.get("BETJEE_API_DATABASE_URL"):
        return os.environ["BETJEE_API_DATABASE_URL"]
    return as_authenticator(os.environ["BETJEE_DATABASE_URL"])


def replica_conninfos() -> list[str]:
    """BETJEE_REPLICA_URL: URLs of hot standbys, separated by spaces (a comma belongs to a
    multi-host URL), each logged in to as the primary is: as `authenticator`, unless the
    primary's login is given whole (BETJEE_API_DATABASE_URL), when they are used as given."""
    urls = os.environ.get("BETJEE_REPLICA_URL", "").split()
    if os.environ.get("BETJEE_API_DATABASE_URL"):
        return urls
    return [as_authenticator(url) for url in urls]


def as_authenticator(url: str) -> str:
    params = conninfo_to_dict(url)
    params["user"] = "authenticator"
    params.pop("password", None)
    if os.environ.get("BETJEE_AUTHENTICATOR_PASSWORD"):
        params["password"] = os.environ["BETJEE_AUTHENTICATOR_PASSWORD"]
    params.setdefault("application_name", "betjee-api")
    return make_conninfo(**params)


@asynccontextmanager
async def lifespan(app: Starlette):
    if not logging.getLogger("betjee").handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("betjee").addHandler(handler)
        logging.getLogger("betjee").setLevel(os.environ.get("BETJEE_LOG_LEVEL", "INFO"))
    conninfo = api_conninfo()
    app.state.key = secret()
    app.state.catalog = rpc.Catalog()
    app.state.statuses = Statuses()
    # A small pool serves more: trades on one market queue on its row lock, and more
    # connections than about twice the cores only add contention (measured in make bench).
    size = int(os.environ.get("BETJEE_POOL") or 2 * (os.cpu_count() or 2))
    # reconnect_timeout: a connection lost with the database is retried with a growing delay
    # for this long, then given up and made again on demand, so nothing waits long once the
    # database is back.
    pool = AsyncConnectionPool(conninfo, min_size=min(2, size), max_size=size, timeout=WAIT_S,
                               reconnect_timeout=2, open=False, kwargs={"autocommit": True})
    await pool.open(wait=False)
    app.state.pool = pool
    # read replicas (none unless BETJEE_REPLICA_URL names them): api/replicas.py
    app.state.replicas = None
    watcher = None
    if replica_conninfos():
        app.state.replicas = replicas.Replicas(
            conninfo, replica_conninfos(), size,
            float(os.environ.get("BETJEE_REPLICA_MAX_LAG_S", "5")))
        await app.state.replicas.open()
        watcher = asyncio.create_task(app.state.replicas.watch())
    app.state.trusted = trusted_proxies()
    app.state.limits = {}

    async def refresh() -> None:
        try:
            async with pool.connection(timeout=WAIT_DOWN_S if database_down() else WAIT_S) as conn:
                catalog = await rpc.Catalog.load(conn)
            app.state.catalog, app.state.statuses = catalog, Statuses(catalog.statuses)
            app.state.limits = {name: Limit(n) for name, n in catalog.limits.items()}
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("catalog not loaded: %s", exc)

    await refresh()
    app.state.refresh = refresh
    app.state.pool_check = None
    app.state.broadcaster = stream.Broadcaster(
        conninfo, int(os.environ.get("BETJEE_STREAM_INTERVAL_MS", "100")) / 1000, refresh,
        check_pool_soon, app.state.replicas)
    app.state.metrics = metrics.Metrics(app.state)
    task = asyncio.create_task(app.state.broadcaster.run())
    end_streams_on_stop(app.state.broadcaster)
    # the bots' runner (BETJEE_BOT_RUNNER=0: none in this process)
    bots = None
    if os.environ.get("BETJEE_BOT_RUNNER", "1") != "0":
        bots = asyncio.create_task(runner.run(conninfo))
    yield
    task.cancel()
    if bots:
        bots.cancel()
    if watcher:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await app.state.replicas.close()
    await pool.close()


def end_streams_on_stop(broadcaster: stream.Broadcaster) -> None:
    """uvicorn waits for every response to end before it stops, and a stream never ends by
    itself: on SIGTERM or SIGINT, end the streams, then let uvicorn's own handler go on."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum, frame, previous=previous) -> None:
            loop.call_soon_threadsafe(broadcaster.close)
            previous(signum, frame)
        signal.signal(sig, handler)


class Limit:
    """At most n calls of a function at once (the catalog's bj.call_limits); the others wait."""

    def __init__(self, n: int) -> None:
        self.slots = asyncio.Semaphore(max(1, n))


async def call_rpc(request: Request) -> Response:
    started = time.perf_counter()
    response = await forward(request)
    app.state.metrics.observe(request.path_params["function"], response.status_code, started)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(json.dumps({"method": request.method, "path": request.url.path,
                                    "status": response.status_code,
                                    "ms": round((time.perf_counter() - started) * 1000, 2),
                                    "ip": client_address(request, app.state.trusted)}))
    return response


def database_down() -> bool:
    """Whether the stream's connection has lost the database (and not yet found it again)."""
    broadcaster = getattr(app.state, "broadcaster", None)
    return broadcaster is not None and not broadcaster.connected.is_set()


async def forward(request: Request) -> Response:
    name = request.path_params["function"]
    if not app.state.catalog.functions:
        await app.state.refresh()
        if not app.state.catalog.functions:
            return unreachable("the function catalog could not be read")
    fn = app.state.catalog.functions.get(name)
    if fn is None:
        return error(404, "PGRST202", f"no function api.{name}",
                     hint="GET /api/v1/openapi.json lists them")
    # the bearer header, else the web app's session cookie
    header = request.headers.get("authorization")
    cookie = None if header else web.session_token(request)
    try:
        who = identify(header or (cookie and f"Bearer {cookie}"), app.state.key)
    except AuthError as exc:
        response = error(401, "PGRST301", str(exc), headers={"WWW-Authenticate": "Bearer"})
        if cookie:
            web.clear_session(response, request)
        return response
    readonly = request.method in ("GET", "HEAD")
    if readonly and not fn.readonly:
        return error(405, "PGRST101", f"api.{name} changes data: call it with POST",
                     headers={"Allow": "POST"})
    if cookie and not readonly and not web.same_origin(request):
        return cross_origin()
    if readonly:
        args = dict(request.query_params)
    else:
        args = await read_args(request)
        if isinstance(args, Response):
            return args
    return await invoke(name, fn, args, who, request, readonly)


async def read_args(request: Request) -> dict | Response:
    """A POST's JSON object of named arguments, read no further than MAX_BODY."""
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype != "application/json":
        return error(415, "PGRST107", "send the arguments as application/json")
    length = request.headers.get("content-length") or "0"
    if not length.isdigit() or int(length) > MAX_BODY:
        return error(413, "PGRST413", f"the body exceeds {MAX_BODY} bytes")
    body = bytearray()  # read no further than the limit (a chunked body has no length)
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return error(413, "PGRST413", f"the body exceeds {MAX_BODY} bytes")
    try:
        return rpc.parse_body(bytes(body))
    except rpc.BadArguments as exc:
        return error(400, "PGRST102", str(exc), hint=exc.hint)


async def invoke(name: str, fn: rpc.Function, args: dict, who, request: Request,
                 readonly: bool) -> Response:
    """Call api.<name> with the arguments as `who`, at most as many at once as its limit."""
    try:
        query = rpc.prepare(fn, args)
        limit = app.state.limits.get(name)
        if limit is None:
            answer = await call(fn, query, who, request, readonly)
        else:
            try:
                await asyncio.wait_for(limit.slots.acquire(), WAIT_S)
            except TimeoutError:
                return error(503, "PGRST504", f"too many api.{name} calls at once: try again",
                             headers={"Retry-After": "1"})
            try:
                answer = await call(fn, query, who, request, readonly)
            finally:
                limit.slots.release()
    except rpc.BadArguments as exc:
        return error(400, "PGRST102", str(exc), hint=exc.hint)
    except PoolTimeout:
        if database_down():
            return unreachable("no connection to the database")
        return error(503, "PGRST504", "the server is busy: no database connection became free "
                     "in time", headers={"Retry-After": "1"})
    except psycopg.Error as exc:
        return database_error(exc, f"api.{name}", who.anonymous)
    response = Response(answer.body, status_code=answer.status, headers=answer.headers,
                        media_type="application/json")
    if answer.position:  # a write, with replicas about: the caller's reads must see it
        response.set_cookie(replicas.COOKIE, format(replicas.position(answer.position), "x"),
                            max_age=math.ceil(app.state.replicas.max_lag), path="/",
                            httponly=True, samesite="strict", secure=web.secure(request))
    return response


def cross_origin() -> Response:
    return error(403, "PGRST403", "a write signed in by the session cookie must come from the "
                 "app's own pages", details="the request's Origin is missing or another site's",
                 hint="programs send Authorization: Bearer <token> instead of the cookie")


async def session(request: Request) -> Response:
    """The web app's login: POST {username, password} (with "signup": true, a new account)
    calls api.login (api.signup) and keeps the token in an httpOnly, SameSite=Strict cookie
    (Secure over HTTPS) instead of answering it; DELETE logs out (forgets the cookie). Only
    from the app's own pages."""
    if not web.same_origin(request):
        return cross_origin()
    if request.method == "DELETE":
        response = JSONResponse({"logged_in": False})
        web.clear_session(response, request)
        return response
    args = await read_args(request)
    if isinstance(args, Response):
        return args
    name = "signup" if args.pop("signup", False) is True else "login"
    fn = app.state.catalog.functions.get(name)
    if fn is None:
        return unreachable("the function catalog could not be read")
    response = await invoke(name, fn, args, ANON, request, readonly=False)
    if response.status_code != 200:
        return response
    answer = json.loads(response.body)
    token = answer.pop("token")
    # (the token is the database's own answer: its claims are read, not verified again)
    claims = jwt.decode(token, options={"verify_signature": False})
    out = JSONResponse({**answer, "logged_in": True, "user_id": int(claims["sub"])})
    for cookie in response.headers.getlist("set-cookie"):  # (the write's position)
        out.headers.append("set-cookie", cookie)
    web.set_session(out, request, token, int(claims["exp"] - time.time()))
    return out


async def call(fn: rpc.Function, query: rpc.Query, who, request: Request,
               readonly: bool) -> rpc.Answer:
    """On a replica if the function only reads and one has replayed the caller's last write
    (architecture.md §17), else on the primary."""
    ip = client_address(request, app.state.trusted)
    standbys = app.state.replicas
    callers = [f"address:{ip}"] + ([] if who.anonymous else [f"user:{who.claims['sub']}"])
    if fn.readonly and standbys is not None:
        replica = standbys.pick(standbys.needed(callers, request.cookies.get(replicas.COOKIE)))
        if replica is not None:
            try:
                answer = await on_replica(replica, lambda conn: rpc.call(
                    conn, fn, query, who, ip, readonly, early_release=False))
            except psycopg.Error:  # the function's own refusal, answered by the replica
                app.state.metrics.read(replica.name)
                raise
            if answer is not None:
                app.state.metrics.read(replica.name)
                return answer
    if fn.readonly:
        app.state.metrics.read("primary")
    wait = WAIT_DOWN_S if database_down() else WAIT_S
    async with app.state.pool.connection(timeout=wait) as conn:
        answer = await rpc.call(conn, fn, query, who, ip, readonly, app.state.catalog.early_release,
                                position=standbys is not None)
    if answer.position:
        standbys.wrote(callers, replicas.position(answer.position))
    return answer


async def on_replica(replica: replicas.Replica, work):
    """work(connection) on the replica; None when the primary must answer instead (the replica
    is lost, busy, or refuses what a standby cannot do). Reads only: trying twice is harmless."""
    try:
        async with replica.pool.connection(timeout=replicas.ANSWER_S) as conn:
            return await work(conn)
    except PoolTimeout:
        return None
    except psycopg.Error as exc:
        if not replicas.elsewhere(exc):
            raise
        app.state.replicas.failed(replica, exc)
        return None


def database_error(exc: psycopg.Error, call: str, anonymous: bool) -> Response:
    if (exc.sqlstate or "").startswith(CONNECTION_LOST) or (
            exc.sqlstate is None and isinstance(exc, (psycopg.OperationalError,
                                                      psycopg.InterfaceError))):
        # the connection died: cull the pool's other dead ones before the next calls meet them
        check_pool_soon()
        return unreachable(str(exc))
    diag = exc.diag
    status = app.state.statuses.status(exc.sqlstate, anonymous)
    if status >= 500:
        log.error("%s failed: %s", call, exc)
    return error(status, exc.sqlstate or "XX000", diag.message_primary or str(exc),
                 diag.message_detail, diag.message_hint,
                 headers={"Retry-After": "1"} if status == 503 else None)


def check_pool_soon() -> None:
    """Check the pool's idle connections in the background (once at a time) and replace the
    dead ones: after the database restarts, every pooled connection is dead."""
    task = app.state.pool_check
    if task is None or task.done():
        app.state.pool_check = asyncio.create_task(app.state.pool.check())


def unreachable(details: str) -> Response:
    return error(503, "PGRST001", "the database is unreachable", details=details,
                 headers={"Retry-After": "1"})


async def healthz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.pool.connection(timeout=2) as conn:
            await conn.execute("select 1")
    except (PoolTimeout, psycopg.Error):
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def serve_metrics(request: Request) -> Response:
    return await app.state.metrics.endpoint(request)


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(docs.openapi(app.state.catalog))


async def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(docs.page(app.state.catalog))


async def changes_stream(request: Request) -> Response:
    """Live market changes; with Last-Event-ID, first what changed since that cursor. While the
    stream has no connection to the database, 503: a client retries (its EventSource does)
    rather than holding a stream that shows nothing."""
    last_id = request.headers.get("last-event-id") or request.query_params.get("since")
    if request.method == "HEAD":  # a GET's headers, with no stream behind them
        return Response(media_type="text/event-stream", headers=STREAM_HEADERS)
    if last_id is not None and "\x00" in last_id:
        return error(400, "BJ021", "invalid argument", "a cursor is the value api.changes returned")
    broadcaster = app.state.broadcaster
    try:
        await asyncio.wait_for(broadcaster.connected.wait(), timeout=WAIT_DOWN_S * 4)
    except TimeoutError:
        return unreachable("the stream has no connection to the database")
    sub, live_from = broadcaster.subscribe()
    at = broadcaster.position  # where the live cursor's state lies in the WAL
    missed = None
    if last_id is not None:  # what changed between the client's cursor and the live one
        async def catch_up(conn: psycopg.AsyncConnection, replica: bool = False) -> str | None:
            async with conn.transaction():
                await conn.execute("set local role anon")
                if replica and not await replicas.Replicas.replayed(conn, at):
                    return None
                row = await (await conn.execute("select api.changes_between(%s, %s)::text",
                                                [last_id, live_from])).fetchone()
            return row[0]
        try:
            # on a replica that has replayed as far as the live cursor (or further: the feed's
            # own, mostly), else the primary: a server further behind would miss what lies
            # between
            replica = app.state.replicas and app.state.replicas.pick(prefer=broadcaster.source())
            if replica:
                missed = await on_replica(replica, lambda conn: catch_up(conn, replica=True))
            if missed is None:
                replica = None
                async with app.state.pool.connection() as conn:
                    missed = await catch_up(conn)
            app.state.metrics.read(replica.name if replica else "primary")
        except PoolTimeout:
            broadcaster.unsubscribe(sub)
            return unreachable("no database connection became free in time")
        except psycopg.Error as exc:
            broadcaster.unsubscribe(sub)
            return database_error(exc, "api.changes_between", True)
    return StreamingResponse(stream.events(broadcaster, sub, last_id or live_from, live_from, missed),
                             media_type="text/event-stream", headers=STREAM_HEADERS)


async def not_found(request: Request, exc: Exception) -> Response:
    return error(404, "PGRST125", f"no such path: {request.url.path}",
                 hint="calls are POST /api/v1/rpc/<function>; GET /api/v1/openapi.json lists them")


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return error(405, "PGRST117", f"{request.method} is not allowed here")


async def server_error(request: Request, exc: Exception) -> Response:
    """A defect of the server's own: the documented error body, never a page of text (the
    traceback goes to the log, where a defect belongs)."""
    return error(500, "PGRST500", "the server failed to answer this call")


class CORS(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the documented error body."""

    def preflight_response(self, request_headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        return error(400, "PGRST400", response.body.decode(), headers={
            k: v for k, v in response.headers.items() if k.lower().startswith("access-control")
            or k.lower() == "vary"})


origins = [o.strip() for o in os.environ.get("BETJEE_CORS_ORIGINS", "").split(",") if o.strip()]
routes = [
    Route("/healthz", healthz),
    Route("/metrics", serve_metrics),
    Route("/api/v1/rpc/{function}", call_rpc, methods=["GET", "POST"]),
    Route("/rpc/{function}", call_rpc, methods=["GET", "POST"]),
    Route("/api/v1/openapi.json", openapi),
    Route("/api/v1/docs", docs_page),
    Route("/api/v1/stream", changes_stream),
    Route("/api/v1/session", session, methods=["POST", "DELETE"]),
    Route("/", web.index),
    Mount("/assets", web.assets()),
    Mount("/static", web.static()),
]
app = Starlette(routes=routes, lifespan=lifespan, middleware=[
    Middleware(web.SecurityHeaders),
    # (a stream, text/event-stream, is never compressed: each event must leave at once)
    Middleware(GZipMiddleware, minimum_size=1024),
    Middleware(CORS, allow_origins=origins, allow_methods=["GET", "POST"],
               allow_headers=["authorization", "content-type", "last-event-id"])],
    exception_handlers={404: not_found, 405: method_not_allowed, 500: server_error})
