"""The bots' runner: calls admin.run_bot() in a loop on a connection of its own, one run per
transaction, and waits a moment whenever no bot is due. Each run is the database's work from
end to end (docs/bots.md); this only keeps calling. Several workers' runners never run one bot
twice (the database picks with SKIP LOCKED). BETJEE_BOT_DUTY (0 to 1, default 0.5) is the
share of the time it may spend running bots: after a run that took t it rests t·(1 − d)/d, so
that bots never take the database from people, whatever their number."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import psycopg
from psycopg import AsyncConnection

log = logging.getLogger("betjee.bots")
IDLE_S = 0.1   # between looks while no bot is due
RETRY_S = 0.5  # between attempts to reach the database while it is away


async def run(conninfo: str) -> None:
    duty = min(1.0, max(0.01, float(os.environ.get("BETJEE_BOT_DUTY", "0.5"))))
    lost = False
    while True:
        try:
            async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
                if lost:
                    log.info("bot runner connected again")
                    lost = False
                while True:
                    started = time.monotonic()
                    row = await (await conn.execute("select admin.run_bot()")).fetchone()
                    if row[0] is None:
                        await asyncio.sleep(IDLE_S)
                    elif duty < 1:
                        await asyncio.sleep((time.monotonic() - started) * (1 - duty) / duty)
        except asyncio.CancelledError:
            raise
        except (psycopg.Error, OSError) as exc:
            if not lost:
                log.warning("bot runner lost the database: %s", exc)
                lost = True
            await asyncio.sleep(RETRY_S)
