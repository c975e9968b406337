"""Server-sent events of market changes.

One dedicated connection (never a pooled one) LISTENs for schema changes and polls
api.changes a few times a second, so trades never pay for a NOTIFY. Each batch of changes is
one event whose id is the cursor it ends at (the snapshot it was read in); it fans out to
per-subscriber bounded queues. Writes over HTTP commit before their WAL is on disk, so the
cursor moves only with a batch, which is made durable (as the forwarder makes a write durable
before answering) before anyone sees it: the stream never shows a state, nor hands out a
cursor, that a crash could take back; and an idle exchange costs the stream no writes. A
subscriber that falls behind is dropped rather than buffered without bound: it reconnects
with Last-Event-ID and catches up from its cursor with api.changes_between, without gaps or
repeats. A new subscriber's first frame is the live cursor and nothing else: the client reads
the markets themselves after it (api.list_markets, a page at a time), so that what it reads is
no older than the cursor, and a new stream costs no more than a subscription.

With read replicas (api/replicas.py), the changes are read on a replica that has replayed at
least as far as the state the cursor was read in (the feed keeps to one while it can), else on
the primary; the schema's notifications and the sweep stay on the primary, where they can be
had and written. A replica holds only WAL the primary has flushed, so what it shows needs no
confirming. Each cursor is kept with its WAL position (`position`), which says how far a
server must have replayed to carry on from it (architecture.md §17).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
from psycopg import AsyncConnection

from api import replicas as standbys
from api.rpc import CAN_CONFIRM

log = logging.getLogger("betjee.stream")
# The forwarder's confirming transaction (api.rpc.DURABLE), under the stream's name in the WAL.
DURABLE = ("select pg_logical_emit_message(true, 'betjee.stream', current_database()::text)"
           "::text")
# The change feed, with a WAL position no earlier than any commit its snapshot sees: on the
# primary where WAL is inserted (confirming moves it on to the message's), on a replica where
# replay has reached. (One statement: the position is read after the snapshot is taken.)
CHANGES = "select api.changes(%s)::text, pg_current_wal_insert_lsn()::text"
CHANGES_REPLAYED = "select api.changes(%s)::text, pg_last_wal_replay_lsn()::text"
QUEUE_SIZE = 256
HEARTBEAT_S = 15.0
RETRY_S = 0.5  # between attempts to reach the database while it is away
SWEEP_S = 1.0  # between closings of expired orders (admin.expire_orders)


class Broadcaster:
    """The one connection that polls for changes. `connected` is set while it has the
    database; when it gets the database back after losing it, it calls on_reconnect."""

    def __init__(self, conninfo: str, interval: float, on_schema: Callable[[], Awaitable[None]],
                 on_reconnect: Callable[[], None] = lambda: None,
                 replicas: standbys.Replicas | None = None):
        self.conninfo = conninfo
        self.replicas = replicas
        self.feed: tuple[standbys.Replica, AsyncConnection] | None = None  # the replica read
        self.position = 0  # the cursor's WAL position
        self.polls: Counter[str] = Counter()  # reads of the feed by database (GET /metrics)
        self.interval = interval
        self.on_schema = on_schema
        self.on_reconnect = on_reconnect
        self.cursor: str | None = None
        self.confirm = False
        self.subscribers: set[Subscriber] = set()
        self.events_sent = 0  # change events written to streams (GET /metrics)
        self.connected = asyncio.Event()

    async def run(self) -> None:
        lost = False
        while True:
            try:
                await self._serve(lost)
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:  # the database went away: retry
                if not lost:
                    log.warning("stream connection lost: %s", exc)
                lost = True
                self.connected.clear()
                await asyncio.sleep(RETRY_S)

    async def _serve(self, lost: bool) -> None:
        async with await AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            await conn.execute("listen betjee_schema")
            self.confirm = (await (await conn.execute(CAN_CONFIRM)).fetchone())[0]
            if self.cursor is None:  # (the first answer: a cursor, and a page nobody needs)
                self.cursor = await self._changes(conn, None)
            self.connected.set()
            if lost:
                log.warning("stream connection back")
                self.on_reconnect()
            loop = asyncio.get_running_loop()
            next_sweep = loop.time()
            while True:
                notified = False
                async for _ in conn.notifies(timeout=self.interval, stop_after=1):
                    notified = True
                if notified:  # a migration: the catalog, and the right to confirm, may change
                    self.confirm = (await (await conn.execute(CAN_CONFIRM)).fetchone())[0]
                    await self.on_schema()
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + SWEEP_S
                    await self._sweep(conn)
                await self._changes(conn, self.cursor)

    @staticmethod
    async def _sweep(conn: AsyncConnection) -> None:
        """Close the orders whose time has come (the rule and its locking are in SQL)."""
        try:
            await conn.execute("select admin.expire_orders()")
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled,
                psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected,
                psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFunction) as exc:
            log.warning("closing expired orders: %s", exc)  # next time, then

    async def _changes(self, conn: AsyncConnection, since: str | None) -> str:
        row = await self._on_replica(since) if self.replicas else None
        on_primary = row is None
        if on_primary:
            row = await self._read(conn, CHANGES, since)
            self.polls["primary"] += 1
        payload, position = row
        batch = json.loads(payload)
        cursor = batch["cursor"]
        if since is not None and not _anything(batch):
            return since  # nothing new: the cursor stays where it was made durable
        if self.confirm and on_primary:
            # every commit (and abort) this snapshot sees precedes this flush in the WAL
            position = (await (await conn.execute(DURABLE)).fetchone())[0]
        if since is not None:
            self._publish(since, cursor, payload)
        self.cursor, self.position = cursor, standbys.position(position)
        return cursor

    @staticmethod
    async def _read(conn: AsyncConnection, query: str, since: str | None) -> tuple[str, str]:
        async with conn.transaction():  # read as a visitor; confirm as the login role
            await conn.execute("set local role anon")
            return await (await conn.execute(query, [since])).fetchone()

    async def _on_replica(self, since: str | None) -> tuple[str, str] | None:
        """The feed read on a replica that has replayed as far as the cursor, None if none
        can (the primary reads it then). The feed keeps to its replica while it serves."""
        current = self.feed and self.feed[0]
        replica = current if current and current.serving else self.replicas.pick(self.position)
        if self.feed and current is not replica:
            await self._drop_feed()
        if replica is None:
            return None
        try:
            if self.feed is None:
                self.feed = (replica, await AsyncConnection.connect(
                    replica.conninfo, autocommit=True, connect_timeout=2))
            conn = self.feed[1]
            async with conn.transaction():
                await conn.execute("set local role anon")
                if not await self.replicas.replayed(conn, self.position):
                    return None
                row = await (await conn.execute(CHANGES_REPLAYED, [since])).fetchone()
        except (psycopg.Error, OSError) as exc:
            self.replicas.failed(replica, exc)
            await self._drop_feed()
            return None
        self.polls[replica.name] += 1
        return row

    async def _drop_feed(self) -> None:
        if self.feed is not None:
            _, conn = self.feed
            self.feed = None
            try:
                await conn.close()
            except (psycopg.Error, OSError):
                pass

    def _publish(self, since: str, cursor: str, payload: str) -> None:
        for sub in list(self.subscribers):
            try:
                sub.queue.put_nowait((since, cursor, payload))
            except asyncio.QueueFull:  # too slow: drop it; it resumes from its cursor
                sub.dropped = True
                self.subscribers.discard(sub)

    def close(self) -> None:
        """End every subscriber's stream at once: the server is stopping."""
        for sub in list(self.subscribers):
            while sub.queue.full():
                sub.queue.get_nowait()
            sub.queue.put_nowait(None)
        self.subscribers.clear()

    def source(self) -> standbys.Replica | None:
        """The replica the feed reads on (None: the primary)."""
        return self.feed[0] if self.feed else None

    def subscribe(self) -> tuple[Subscriber, str | None]:
        sub = Subscriber()
        self.subscribers.add(sub)
        return sub, self.cursor

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)


class Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False


def _anything(batch: dict) -> bool:
    """Whether a batch of api.changes holds a change: of a market, or of a book (a market that
    never stops changing comes in the live batches, and its book's changes in the catch-up)."""
    return bool(batch["markets"] or batch.get("book"))


def event(cursor: str, payload: str) -> str:
    return f"id: {cursor}\nevent: changes\ndata: {payload}\n\n"


async def events(broadcaster: Broadcaster, sub: Subscriber, first_id: str, live_from: str,
                 missed: str | None) -> AsyncIterator[str]:
    """A subscriber's stream: its cursor, what it missed up to live_from, then every live batch."""
    try:
        yield f"retry: 1000\nid: {first_id}\n\n"
        if missed is not None and _anything(json.loads(missed)):
            broadcaster.events_sent += 1
            yield event(live_from, missed)
        while not (sub.dropped and sub.queue.empty()):
            try:
                item = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            if item is None:  # the server is stopping
                break
            _since, cursor, payload = item
            broadcaster.events_sent += 1
            yield event(cursor, payload)
    finally:
        broadcaster.unsubscribe(sub)
