"""Routes and lifespan."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@asynccontextmanager
async def lifespan(app: Starlette):
    pool = AsyncConnectionPool(os.environ["BETJEE_DATABASE_URL"], min_size=1, max_size=10,
                               open=False)
    await pool.open(wait=False)
    app.state.pool = pool
    yield
    await pool.close()


async def healthz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.pool.connection(timeout=2) as conn:
            await conn.execute("select 1")
    except Exception:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/healthz", healthz)], lifespan=lifespan)
