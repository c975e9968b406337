"""Routes and lifespan: the forwarder. It verifies the token, picks the role, calls
api.<function> with named arguments, returns its JSON as it came, maps SQLSTATEs to HTTP
statuses, and relays market changes to streams. Nothing else."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from contextlib import asynccontextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from api import docs, rpc, stream
from api.auth import AuthError, identify, secret
from api.errors import Statuses, error

MAX_BODY = int(os.environ.get("BETJEE_MAX_BODY", "65536"))
access_log = logging.getLogger("betjee.access")



def api_conninfo() -> str:
    """The HTTP layer logs in as `authenticator`, which may only SET ROLE anon/authenticated."""
    if os.environ.get("BETJEE_API_DATABASE_URL"):
        return os.environ["BETJEE_API_DATABASE_URL"]
    params = conninfo_to_dict(os.environ["BETJEE_DATABASE_URL"])
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
    pool = AsyncConnectionPool(conninfo, min_size=min(2, size), max_size=size, timeout=5,
                               open=False, kwargs={"autocommit": True})
    await pool.open(wait=False)
    app.state.pool = pool

    async def refresh() -> None:
        try:
            async with pool.connection() as conn:
                catalog = await rpc.Catalog.load(conn)
            app.state.catalog, app.state.statuses = catalog, Statuses(catalog.statuses)
        except (psycopg.Error, PoolTimeout) as exc:
            logging.getLogger("betjee").warning("catalog not loaded: %s", exc)

    await refresh()
    app.state.refresh = refresh
    app.state.broadcaster = stream.Broadcaster(
        conninfo, int(os.environ.get("BETJEE_STREAM_INTERVAL_MS", "100")) / 1000, refresh)
    task = asyncio.create_task(app.state.broadcaster.run())
    yield
    task.cancel()
    await pool.close()


async def call_rpc(request: Request) -> Response:
    started = time.perf_counter()
    response = await forward(request)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(json.dumps({"method": request.method, "path": request.url.path,
                                    "status": response.status_code,
                                    "ms": round((time.perf_counter() - started) * 1000, 2),
                                    "ip": request.client.host if request.client else None}))
    return response


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
    try:
        who = identify(request.headers.get("authorization"), app.state.key)
    except AuthError as exc:
        return error(401, "PGRST301", str(exc), headers={"WWW-Authenticate": "Bearer"})
    readonly = request.method == "GET"
    if readonly and not fn.readonly:
        return error(405, "PGRST101", f"api.{name} changes data: call it with POST")
    try:
        if readonly:
            args = dict(request.query_params)
        else:
            ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
            if ctype != "application/json":
                return error(415, "PGRST107", "send the arguments as application/json")
            if int(request.headers.get("content-length") or 0) > MAX_BODY:
                return error(413, "PGRST413", f"the body exceeds {MAX_BODY} bytes")
            body = await request.body()
            if len(body) > MAX_BODY:
                return error(413, "PGRST413", f"the body exceeds {MAX_BODY} bytes")
            args = rpc.parse_body(body)
        ip = request.client.host if request.client else None
        async with app.state.pool.connection() as conn:
            result = await rpc.call(conn, fn, args, who, ip, readonly,
                                    app.state.catalog.early_release)
    except rpc.BadArguments as exc:
        return error(400, "PGRST102", str(exc), hint=exc.hint)
    except PoolTimeout:
        return unreachable("no database connection became free in time")
    except psycopg.Error as exc:
        return database_error(exc, f"api.{name}", who.anonymous)
    return Response(result, media_type="application/json")


def database_error(exc: psycopg.Error, call: str, anonymous: bool) -> Response:
    if (exc.sqlstate or "").startswith("08") or (
            exc.sqlstate is None and isinstance(exc, (psycopg.OperationalError,
                                                      psycopg.InterfaceError))):
        return unreachable(str(exc))
    diag = exc.diag
    status = app.state.statuses.status(exc.sqlstate, anonymous)
    if status >= 500:
        logging.getLogger("betjee").error("%s failed: %s", call, exc)
    return error(status, exc.sqlstate or "XX000", diag.message_primary or str(exc),
                 diag.message_detail, diag.message_hint,
                 headers={"Retry-After": "1"} if status == 503 else None)


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


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(docs.openapi(app.state.catalog))


async def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(docs.page(app.state.catalog))


async def changes_stream(request: Request) -> Response:
    """Live market changes; with Last-Event-ID, first what changed since that cursor."""
    last_id = request.headers.get("last-event-id") or request.query_params.get("since")
    broadcaster = app.state.broadcaster
    try:
        await asyncio.wait_for(broadcaster.ready.wait(), timeout=10)
    except TimeoutError:
        return unreachable("the stream has not connected to the database yet")
    sub, live_from = broadcaster.subscribe()
    missed = None
    if last_id is not None:  # what changed between the client's cursor and the live one
        try:
            async with app.state.pool.connection() as conn, conn.transaction():
                await conn.execute("set local role anon")
                row = await (await conn.execute("select api.changes_between(%s, %s)::text",
                                                [last_id, live_from])).fetchone()
            missed = row[0]
        except PoolTimeout:
            broadcaster.unsubscribe(sub)
            return unreachable("no database connection became free in time")
        except psycopg.Error as exc:
            broadcaster.unsubscribe(sub)
            return database_error(exc, "api.changes_between", True)
    return StreamingResponse(stream.events(broadcaster, sub, last_id or live_from, live_from, missed),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


origins = [o.strip() for o in os.environ.get("BETJEE_CORS_ORIGINS", "").split(",") if o.strip()]
routes = [
    Route("/healthz", healthz),
    Route("/api/v1/rpc/{function}", call_rpc, methods=["GET", "POST"]),
    Route("/rpc/{function}", call_rpc, methods=["GET", "POST"]),
    Route("/api/v1/openapi.json", openapi),
    Route("/api/v1/docs", docs_page),
    Route("/api/v1/stream", changes_stream),
]
app = Starlette(routes=routes, lifespan=lifespan, middleware=[
    Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
               allow_headers=["authorization", "content-type", "last-event-id"])])
