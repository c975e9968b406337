"""Read replicas: which database answers a read (architecture.md §17).

With BETJEE_REPLICA_URL set (libpq URLs of hot standbys of the primary, separated by spaces),
calls of read-only functions (STABLE or IMMUTABLE: every GET, and a POST of such a function) go
to a replica; everything else, and whatever a replica cannot answer, to the primary.

A watcher asks the primary for its WAL position and each replica for the position it has
replayed, every POLL_S. A replica serves while it answers, is in recovery, and has replayed what
the primary had written at most max lag ago (BETJEE_REPLICA_MAX_LAG_S). Several serving replicas
take turns.

Read-your-writes: a write's answer carries the primary's WAL position past its commit, which is
remembered for the caller (the token's user, and the client's address) and sent back in the
`betjee_lsn` cookie, so that another server process knows it too. The caller's reads go to a
replica that has replayed past that position, else to the primary: nobody waits for a replica.
A remembered position is forgotten after max lag, when every replica still serving has passed it.

A replica that loses its connection in a call serves nothing until the watcher hears from it
again; that call, and any a replica refuses for being a standby, is answered by the primary.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("betjee.replicas")
POLL_S = 0.1
# How long a database may take to answer the watcher, or a replica's pool to lend a connection,
# before the primary answers instead.
ANSWER_S = 1.0
COOKIE = "betjee_lsn"
REPLAYED = "select pg_last_wal_replay_lsn()::text"
# What a replica refuses that the primary answers: its connection lost or the server stopping,
# a read cancelled by the replay of a conflicting change (recovery conflict), a write attempted
# on a standby, a function that needs a server not in recovery.
ELSEWHERE = ("08", "57P01", "57P02", "57P03", "40001", "40P01", "25006", "55000", "XX000")
LOST = ("08", "57P01", "57P02", "57P03")


def position(text: str | None) -> int:
    """A WAL position (pg_lsn, `16/B374D848`, or the cookie's hex) as a number; 0 if none."""
    if not text:
        return 0
    try:
        if "/" in text:
            high, low = text.split("/")
            return int(high, 16) << 32 | int(low, 16)
        return int(text, 16) if len(text) <= 16 else 0
    except ValueError:
        return 0


def lost(exc: BaseException) -> bool:
    """Whether an error means the connection (or its server) is gone."""
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        return state.startswith(LOST) or (not state and isinstance(
            exc, (psycopg.OperationalError, psycopg.InterfaceError)))
    return isinstance(exc, (OSError, TimeoutError))


def elsewhere(exc: psycopg.Error) -> bool:
    """Whether the primary should answer a read this replica failed."""
    return lost(exc) or (exc.sqlstate or "").startswith(ELSEWHERE)


@dataclass(eq=False)
class Replica:
    name: str  # replica1, replica2, ...: its place in BETJEE_REPLICA_URL (the metrics' label)
    conninfo: str
    pool: AsyncConnectionPool
    replay: int = 0  # the WAL position it had replayed when last asked
    lag: float = math.inf  # seconds behind the primary, as last judged
    serving: bool = False
    conn: AsyncConnection | None = field(default=None, repr=False)  # the watcher's


class Replicas:
    def __init__(self, primary: str, conninfos: list[str], pool_size: int, max_lag: float) -> None:
        self.primary = primary
        self.max_lag = max_lag
        self.members = [
            Replica(f"replica{i}", c, AsyncConnectionPool(
                c, min_size=1, max_size=pool_size, timeout=ANSWER_S, reconnect_timeout=2,
                open=False, kwargs={"autocommit": True}))
            for i, c in enumerate(conninfos, 1)]
        self.conn: AsyncConnection | None = None  # the watcher's, to the primary
        self.samples: deque[tuple[float, int]] = deque()  # (when asked, the primary's position)
        self.writes: dict[str, tuple[int, float]] = {}  # caller -> (position, when), oldest first
        self.turn = 0

    async def open(self) -> None:
        for r in self.members:
            await r.pool.open(wait=False)

    async def close(self) -> None:
        for conn in [self.conn, *(r.conn for r in self.members)]:
            if conn is not None:
                await conn.close()
        for r in self.members:
            await r.pool.close()

    # ---- routing

    def pick(self, at_least: int = 0, prefer: Replica | None = None) -> Replica | None:
        """A serving replica known to have replayed at least that position (the preferred one
        if it qualifies, else the next in turn), or None: the primary, then."""
        able = [r for r in self.members if r.serving and r.replay >= at_least]
        if not able:
            return None
        if prefer in able:
            return prefer
        self.turn += 1
        return able[self.turn % len(able)]

    @staticmethod
    async def replayed(conn: AsyncConnection, at: int) -> bool:
        """Whether the replica of this connection has replayed at least that position: a
        statement after this one reads a state no older. (What the watcher knows is a round
        old; a stream's cursor just read on a replica is newer than that.)"""
        row = await (await conn.execute(REPLAYED)).fetchone()
        return position(row[0]) >= at

    def needed(self, callers: list[str], cookie: str | None) -> int:
        """The position a caller's read must see: of its last write, remembered or in its cookie."""
        return max([position(cookie)] + [self.writes[c][0] for c in callers if c in self.writes])

    def wrote(self, callers: list[str], at: int) -> None:
        now = time.monotonic()
        for caller in callers:
            before = self.writes.pop(caller, (0, 0.0))[0]
            self.writes[caller] = (max(at, before), now)  # (moved to the end: newest last)

    def failed(self, replica: Replica, exc: BaseException) -> None:
        if lost(exc) and replica.serving:
            replica.serving = False
            log.warning("%s lost, reads go elsewhere until it answers: %s", replica.name, exc)

    # ---- the watcher

    async def watch(self) -> None:
        while True:
            started = time.monotonic()
            await self.round()
            await asyncio.sleep(max(0.0, POLL_S - (time.monotonic() - started)))

    async def round(self) -> None:
        """Ask every database where it is, then judge each replica."""
        asked = time.monotonic()
        primary, *replays = await asyncio.gather(
            self._ask(None), *(self._ask(r) for r in self.members))
        if primary is not None:
            self.samples.append((asked, primary))
        now = time.monotonic()
        for r, replay in zip(self.members, replays):
            if replay is None:
                r.serving, r.lag = False, math.inf
                continue
            r.replay = replay
            # behind by the time since the newest position of the primary it has replayed
            r.lag = next((now - t for t, p in reversed(self.samples) if p <= replay), math.inf)
            serving = r.lag <= self.max_lag
            if serving and not r.serving:
                await r.pool.check()  # its connections from before it was lost are dead
                log.info("%s serves reads (%.3f s behind)", r.name, r.lag)
            elif r.serving and not serving:
                log.warning("%s is %.1f s behind the primary: reads go elsewhere", r.name, r.lag)
            r.serving = serving
        # what a serving replica has replayed is no older than max lag: older samples and
        # remembered writes are of no more use
        while len(self.samples) > 1 and self.samples[0][0] < now - self.max_lag:
            self.samples.popleft()
        while self.writes:
            caller, (_, when) = next(iter(self.writes.items()))
            if when >= asked - self.max_lag:
                break
            del self.writes[caller]

    async def _ask(self, replica: Replica | None) -> int | None:
        """The primary's WAL position, or the replica's replayed one; None if it does not
        answer in time (or is not a standby)."""
        conninfo = replica.conninfo if replica else self.primary
        conn = replica.conn if replica else self.conn
        query = ("select pg_is_in_recovery(), pg_last_wal_replay_lsn()::text" if replica
                 else "select not pg_is_in_recovery(), pg_current_wal_lsn()::text")
        try:
            if conn is None or conn.closed:
                conn = await AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=2)
                if replica:
                    replica.conn = conn
                else:
                    self.conn = conn
            right, at = await (await asyncio.wait_for(conn.execute(query), ANSWER_S)).fetchone()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            if conn is not None and not conn.closed:
                await conn.close()  # (a timed-out query leaves it unusable)
            if replica and replica.serving:
                log.warning("%s does not answer: %s", replica.name, exc)
            return None
        if not right:
            if replica and replica.serving:
                log.warning("%s is not a standby (promoted?): it serves no reads", replica.name)
            return None
        return position(at)
