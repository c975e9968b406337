"""The live stream: a subscriber sees another client's trade as it commits; a reconnect with
Last-Event-ID receives exactly what it missed, while trades keep committing from several
connections, with no gap and no repeat."""

from __future__ import annotations

import json
import queue
import threading
import time
from decimal import Decimal
from typing import Self

import httpx
import psycopg
import pytest

from tests.conftest import logical_messages_since, rpc_sql


class Subscriber(threading.Thread):
    """Reads server-sent events into a queue of (id, data) until stopped."""

    def __init__(self, base: str, last_id: str | None = None) -> None:
        super().__init__(daemon=True)
        self.base, self.last_id = base, last_id
        self.events: queue.Queue = queue.Queue()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError:
            pass  # the server went away at the end of the run

    def _read(self) -> None:
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        with httpx.stream("GET", self.base + "/api/v1/stream", headers=headers, timeout=30) as r:
            event_id, data = None, None
            for line in r.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "":
                    self.events.put((event_id, data))
                    data = None

    def first_id(self) -> str:
        event_id, data = self.events.get(timeout=10)
        assert data is None, "the stream opens with its cursor"
        return event_id

    def batches(self, until: float) -> list[tuple[str, dict]]:
        out = []
        while time.monotonic() < until:
            try:
                event_id, data = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if data is not None:
                out.append((event_id, data))
        return out


def test_a_subscriber_sees_another_clients_trade(server, db, make_market, make_user):
    market, user = make_market(), make_user()["user_id"]
    sub = Subscriber(server)
    sub.start()
    sub.first_id()
    rpc_sql(db, user, "trade", market=market, outcome="YES", side="buy", shares=Decimal(5))
    deadline = time.monotonic() + 5
    seen = None
    while seen is None and time.monotonic() < deadline:
        for _, batch in sub.batches(time.monotonic() + 0.5):
            for m in batch["markets"]:
                if m["code"] == market:
                    seen = m
    sub.stop.set()
    assert seen is not None, "the trade reached the stream"
    assert seen["version"] == 1 and seen["outcomes"][0]["shares"] == 5


def test_a_reconnect_with_last_event_id_gets_exactly_what_it_missed(server, db_url, db, make_market, make_user):
    markets = [make_market() for _ in range(4)]
    users = [make_user()["user_id"] for _ in range(4)]
    first = Subscriber(server)
    first.start()
    cursor = first.first_id()
    first.stop.set()

    stop = threading.Event()
    counts = [0] * 4

    def trader(i: int) -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.is_set():
                rpc_sql(conn, users[i], "trade", market=markets[i], outcome="YES", side="buy",
                        shares=Decimal("0.5"))
                counts[i] += 1
    threads = [threading.Thread(target=trader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # trades commit while nobody listens
    second = Subscriber(server, last_id=cursor)
    second.start()
    assert second.first_id() == cursor
    time.sleep(1.0)  # and keep committing across the reconnect
    stop.set()
    for t in threads:
        t.join()
    batches = second.batches(time.monotonic() + 2)
    second.stop.set()

    seen: dict[str, list[int]] = {m: [] for m in markets}
    for _, batch in batches:
        for m in batch["markets"]:
            if m["code"] in seen:
                seen[m["code"]].append(m["version"])
    for i, m in enumerate(markets):
        versions = seen[m]
        assert versions, f"{m} changed while away and must arrive"
        assert versions == sorted(set(versions)), f"no repeats: {versions}"
        assert versions[-1] == counts[i], "the last state seen is the final one"
    bounds = [tuple(int(x) for x in e.split(":")[:2]) for e, _ in batches]
    assert bounds == sorted(set(bounds)), "event ids (snapshots) only move forward"


def test_a_slow_subscriber_is_dropped_not_buffered_without_bound():
    import asyncio

    from api import stream

    async def scenario() -> tuple[bool, int, int]:
        broadcaster = stream.Broadcaster("", 1.0, lambda: None)
        broadcaster.cursor = "100"
        broadcaster.connected.set()
        slow, _ = broadcaster.subscribe()
        for i in range(stream.QUEUE_SIZE + 5):
            broadcaster._publish(str(100 + i), str(101 + i), '{"markets": [1]}')
        return slow.dropped, slow.queue.qsize(), len(broadcaster.subscribers)

    dropped, queued, remaining = asyncio.run(scenario())
    assert dropped and queued == 256 and remaining == 0


def versions_seen(db, market: str, cursor: str | None) -> tuple[str, list[int]]:
    r = rpc_sql(db, None, "changes", since=cursor)
    return r["cursor"], [m["version"] for m in r["markets"] if m["code"] == market]


def test_polling_hands_out_a_change_at_once_and_once_despite_a_long_transaction(db_url, db, make_market, make_user):
    market, user = make_market(), make_user()["user_id"]
    cursor, _ = versions_seen(db, market, None)
    rpc_sql(db, user, "trade", market=market, outcome="YES", side="buy", shares=Decimal(1))
    with psycopg.connect(db_url) as old:  # a transaction that started earlier and is still open
        old.execute("select pg_current_xact_id()")
        rpc_sql(db, user, "trade", market=market, outcome="YES", side="buy", shares=Decimal(1))
        cursor, first = versions_seen(db, market, cursor)
        cursor, second = versions_seen(db, market, cursor)
        old.rollback()
    cursor, third = versions_seen(db, market, cursor)
    assert first == [2], "a committed change comes at once, at its latest version"
    assert second == [] and third == [], "and never again"


def test_a_market_that_never_stops_trading_comes_in_every_poll(db_url, db, make_market, make_user):
    market = make_market()
    users = [make_user()["user_id"] for _ in range(4)]
    stop = threading.Event()

    def trader(user: int) -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.is_set():
                rpc_sql(conn, user, "trade", market=market, outcome="YES", side="buy",
                        shares=Decimal("0.1"))
    threads = [threading.Thread(target=trader, args=(u,)) for u in users]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        cursor, _ = versions_seen(db, market, None)
        polls = []
        for _ in range(20):
            time.sleep(0.05)
            cursor, seen = versions_seen(db, market, cursor)
            polls.append(seen)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert all(len(seen) == 1 for seen in polls), f"in every poll: {polls}"
    versions = [seen[0] for seen in polls]
    assert versions == sorted(set(versions)), f"each time a newer state: {versions}"


def test_a_malformed_or_impossible_cursor_is_bad_input(db):
    for cursor in ("abc", "-1", "10:5:", "10:20:25", "1:2:3:4", "1" * 25, "10:20:@", "10:20:@x",
                   "@5", "10:20:@-5", "10:20:@" + "9" * 18):
        with pytest.raises(psycopg.Error) as err:
            rpc_sql(db, None, "changes", since=cursor)
        assert err.value.sqlstate == "BJ021", cursor


def test_a_cursor_of_the_earlier_kind_still_reads(db, make_market, make_user):
    """A transaction-id boundary, as earlier versions handed out, is the snapshot that sees
    exactly the transactions below it."""
    market, user = make_market(), make_user()["user_id"]
    boundary = rpc_sql(db, None, "changes")["cursor"].split(":")[0]
    rpc_sql(db, user, "trade", market=market, outcome="YES", side="buy", shares=Decimal(1))
    cursor, seen = versions_seen(db, market, boundary)
    assert seen == [1] and cursor.count(":") == 2
    snapshot_only = cursor.split("@")[0]  # the cursor before it carried a time
    rpc_sql(db, user, "trade", market=market, outcome="YES", side="buy", shares=Decimal(1))
    _, seen = versions_seen(db, market, snapshot_only)
    assert seen == [2]


def markets_in(answer: dict, *codes: str) -> list[tuple[str, str]]:
    return [(m["code"], m["status"]) for m in answer["markets"] if m["code"] in codes]


def sleep_past(db: psycopg.Connection, market: str) -> None:
    """Until the database's clock has passed the market's close_at."""
    left = db.execute("select extract(epoch from close_at - clock_timestamp())::float8 as s"
                      " from bj.markets where code = %s", [market]).fetchone()["s"]
    time.sleep(max(0.0, left) + 0.05)


def test_a_market_reaching_its_close_at_comes_once_as_closed(db, make_market):
    """Nothing writes the market's row when its close_at passes; the feed still announces it."""
    market = make_market(close_in="1 second")
    cursor = rpc_sql(db, None, "changes")["cursor"]
    before = rpc_sql(db, None, "changes", since=cursor)
    sleep_past(db, market)
    after = rpc_sql(db, None, "changes", since=before["cursor"])
    again = rpc_sql(db, None, "changes", since=after["cursor"])
    assert markets_in(before, market) == []
    assert markets_in(after, market) == [(market, "closed")], "in the first answer after it closed"
    assert markets_in(again, market) == [], "and in no later one"


def test_a_catch_up_leaves_a_closing_after_its_end_to_the_live_answers(db, make_market, make_user):
    """Catching up from c0 to c1 (the live stream's cursor) brings what closed between their
    times; a market that traded before c1 but closed after it comes in the first live answer,
    and not in both."""
    early, late = make_market(close_in="1 second"), make_market(close_in="2 seconds")
    user = make_user()["user_id"]
    c0 = rpc_sql(db, None, "changes")["cursor"]
    rpc_sql(db, user, "trade", market=late, outcome="YES", side="buy", shares=Decimal(1))
    sleep_past(db, early)
    c1 = rpc_sql(db, None, "changes", since=c0)["cursor"]
    sleep_past(db, late)
    caught_up = rpc_sql(db, None, "changes_between", since=c0, until=c1)
    live = rpc_sql(db, None, "changes", since=c1)
    assert caught_up["cursor"] == c1
    assert markets_in(caught_up, early, late) == [(early, "closed")]
    assert markets_in(live, early, late) == [(late, "closed")]


def test_a_subscriber_sees_a_market_close_when_its_close_at_passes(server, db, make_market):
    market = make_market(close_in="1 second")
    sub = Subscriber(server)
    sub.start()
    sub.first_id()
    sleep_past(db, market)
    batches = sub.batches(time.monotonic() + 1.5)
    sub.stop.set()
    seen = [m["status"] for _, batch in batches for m in batch["markets"] if m["code"] == market]
    assert seen and seen[-1] == "closed" and seen.count("closed") == 1, f"announced once: {seen}"


def test_a_stream_resumed_from_a_malformed_cursor_is_refused(server):
    r = httpx.get(server + "/api/v1/stream", headers={"Last-Event-ID": "10:5:"}, timeout=10)
    assert r.status_code == 400 and r.json()["code"] == "BJ021"


def wait_for(sub: Subscriber, market: str, seconds: float = 30) -> dict:
    """The first batch that carries the market. (A bound only against a hang: nothing here
    depends on how soon it comes.)"""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            _, batch = sub.events.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        if batch is not None and any(m["code"] == market for m in batch["markets"]):
            return batch
    raise AssertionError(f"{market} never reached the stream")


def commit_is_flushed(db, start: str, xid: int) -> bool:
    """Whether the commit record of transaction xid lies in the WAL on disk after start."""
    return db.execute("""select count(*) = 1 as d from pg_get_wal_records_info(%s, pg_current_wal_flush_lsn())
                          where resource_manager = 'Transaction' and record_type = 'COMMIT'
                            and xid::text::bigint = %s""", [start, xid]).fetchone()["d"]


def test_the_stream_shows_a_change_only_once_it_is_on_disk(server, db_url, db, make_market, make_user):
    """Writes over HTTP commit before their WAL is flushed (the answer waits for the flush), so
    the stream must wait too: a trade committed without waiting for the disk, with the WAL
    writer slowed down, reaches subscribers only after a flush that covers its commit record.
    (The commit record itself is looked up: the WAL insert position read after the commit can
    lie past records that others wrote later and that are rightly not flushed yet.)"""
    market, user = make_market(), make_user()["user_id"]
    db.execute("create extension if not exists pg_walinspect")
    db.execute("alter system set wal_writer_delay = '10s'")
    db.execute("select pg_reload_conf()")
    try:
        time.sleep(0.5)  # the WAL writer reads its settings between rounds
        sub = Subscriber(server)
        sub.start()
        sub.first_id()
        start = db.execute("select pg_current_wal_flush_lsn()::text as l").fetchone()["l"]
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("set synchronous_commit = off")
            receipt = rpc_sql(conn, user, "trade", market=market, outcome="YES", side="buy",
                              shares=Decimal(1))
        xid = db.execute("select xmin::text::bigint as x from bj.trades where id = %s",
                         [receipt["trade_id"]]).fetchone()["x"]
        wait_for(sub, market)
        on_disk = commit_is_flushed(db, start, xid)
        sub.stop.set()
        assert on_disk, "its commit was on disk when the stream showed it"
    finally:
        db.execute("alter system reset wal_writer_delay")
        db.execute("select pg_reload_conf()")


def test_an_idle_exchange_costs_the_stream_no_writes(server, db, make_market, make_user):
    """The stream writes a confirming commit only with a batch it publishes: one per batch, none
    while nothing changes. Counted against the batches a subscriber receives, so a change made
    elsewhere meanwhile (a market reaching its close_at) is a batch like any other."""
    db.execute("create extension if not exists pg_walinspect")
    sub = Subscriber(server)
    sub.start()
    sub.first_id()
    market, user = make_market(), make_user()["user_id"]
    wait_for(sub, market)  # the market's creation is published (and confirmed) before we count

    start = db.execute("select pg_current_wal_flush_lsn() as l").fetchone()["l"]
    idle = sub.batches(time.monotonic() + 1.0)  # ten polls
    assert all(batch["markets"] for _, batch in idle), "nothing is sent while nothing changes"
    assert logical_messages_since(db, start, "betjee.stream") == len(idle), "no batch, no write"

    start = db.execute("select pg_current_wal_flush_lsn() as l").fetchone()["l"]
    rpc_sql(db, user, "trade", market=market, outcome="YES", side="buy", shares=Decimal(1))
    wait_for(sub, market)
    more = sub.batches(time.monotonic() + 0.3)
    sub.stop.set()
    assert logical_messages_since(db, start, "betjee.stream") == 1 + len(more), \
        "one batch, one confirming commit"


def test_a_stream_rebuilds_the_book_from_its_numbered_changes_across_a_reconnect(server, db_url, db, make_market,
                                                                                 make_user):
    """Traders place and cancel on a book while a subscriber listens, leaves, and resumes with
    Last-Event-ID: the book's changes it receives are numbered 1, 2, 3 ... without a gap or a
    repeat, and applied in order they are the book as it rests at the end."""
    market = make_market(("A", "B", "C"), pricing="book")
    users = [make_user()["user_id"] for _ in range(3)]
    first = Subscriber(server)
    first.start()
    cursor = first.first_id()
    stop = threading.Event()

    def trader(i: int) -> None:
        import random
        rng = random.Random(i)
        mine: list[int] = []
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.is_set():
                if mine and rng.random() < 0.3:
                    try:
                        rpc_sql(conn, users[i], "cancel_order", order_id=mine.pop(rng.randrange(len(mine))))
                    except psycopg.Error as exc:
                        assert exc.sqlstate == "BJ007", exc  # filled meanwhile
                    continue
                r = rpc_sql(conn, users[i], "place_order", market=market, outcome=rng.choice("ABC"),
                            side=rng.choice(["buy", "sell"]), shares=Decimal(rng.randint(1, 9)),
                            price=Decimal(rng.randint(20, 40)) / 100)
                if r["status"] == "open":
                    mine.append(r["order_id"])
                time.sleep(0.01)
    threads = [threading.Thread(target=trader, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    heard = first.batches(time.monotonic() + 0.3)
    first.stop.set()
    time.sleep(0.7)  # changes commit while nobody listens
    second = Subscriber(server, last_id=heard[-1][0] if heard else cursor)
    second.start()
    second.first_id()
    time.sleep(0.7)
    stop.set()
    for t in threads:
        t.join()
    heard += second.batches(time.monotonic() + 2)
    second.stop.set()

    changes = [c for _, batch in heard for c in batch["book"] if c["market"] == market]
    book_seq = db.execute("select book_seq from bj.markets where code = %s", [market]).fetchone()["book_seq"]
    assert book_seq > 20
    assert [c["seq"] for c in changes] == list(range(1, book_seq + 1))
    levels: dict[tuple, tuple] = {}
    for c in changes:
        for lv in c["levels"]:
            levels[(lv["outcome"], lv["side"], Decimal(str(lv["price"])))] = (Decimal(str(lv["shares"])), lv["orders"])
    book = rpc_sql(db, None, "book", market=market, depth=100)
    assert book["seq"] == book_seq
    shown = {(o["outcome"], side, Decimal(str(lv["price"]))): (Decimal(str(lv["shares"])), lv["orders"])
             for o in book["outcomes"] for side, key in (("buy", "bids"), ("sell", "asks")) for lv in o[key]}
    assert {k: v for k, v in levels.items() if v[1] > 0} == shown


def test_the_server_closes_an_expired_order_and_the_stream_shows_its_level_gone(server, db, make_market, make_user):
    market, user = make_market(pricing="book"), make_user()["user_id"]
    sub = Subscriber(server)
    sub.start()
    sub.first_id()
    balance = db.execute("select balance from bj.users where id = %s", [user]).fetchone()["balance"]
    order = rpc_sql(db, user, "place_order", market=market, outcome="YES", side="buy", shares=Decimal(10),
                    price=Decimal("0.3"), time_in_force="gtd",
                    expires_at=db.execute("select clock_timestamp() + interval '1.5 s' as t").fetchone()["t"])
    assert order["status"] == "open"
    levels = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (levels and levels[-1]["orders"] == 0):
        for _, batch in sub.batches(time.monotonic() + 0.5):
            levels += [lv for c in batch["book"] if c["market"] == market for lv in c["levels"]]
    sub.stop.set()
    assert [(lv["shares"], lv["orders"]) for lv in levels] == [(10, 1), (0, 0)], levels
    row = db.execute("select status, reason from bj.orders where id = %s", [order["order_id"]]).fetchone()
    assert (row["status"], row["reason"]) == ("cancelled", "expired")
    assert db.execute("select balance from bj.users where id = %s", [user]).fetchone()["balance"] == balance


# ---- a new client: the markets as they are, then what changes, with nothing in between

def at_least_markets(db, make_market, n: int) -> None:
    """Enough markets that the first page is not all of them."""
    have = db.execute("select count(*) as n from bj.markets").fetchone()["n"]
    for _ in range(n - have):
        make_market()


def keep_newest(view: dict[str, dict], markets: list[dict]) -> None:
    for m in markets:
        held = view.get(m["code"])
        if held is None or held["version"] <= m["version"]:
            view[m["code"]] = m


def as_it_is(db) -> dict[str, tuple]:
    """Every market's version and quantities in the database, as the client must end with."""
    return {r["code"]: (r["version"], [str(x) for x in r["q"]])
            for r in db.execute("select code, version, q from bj.markets")}


def as_seen(view: dict[str, dict]) -> dict[str, tuple]:
    return {c: (m["version"], [str(Decimal(str(o["shares"])).quantize(Decimal("0.000001"))) for o in m["outcomes"]])
            for c, m in view.items()}


class Traders:
    """Threads trading on some markets until stopped."""

    def __init__(self, db_url: str, markets: list[str], users: list[int]) -> None:
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._trade, args=(db_url, markets[i::len(users)], u))
                        for i, u in enumerate(users)]

    def _trade(self, db_url: str, markets: list[str], user: int) -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            i = 0
            while not self.stop.is_set():
                rpc_sql(conn, user, "trade", market=markets[i % len(markets)], outcome="YES", side="buy",
                        shares=Decimal("0.3"))
                i += 1

    def __enter__(self) -> Self:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def test_a_new_subscriber_reading_pages_after_its_cursor_ends_with_every_market_as_it_is(
        server, db_url, db, make_market, make_user):
    """The stream's first frame is a cursor; the pages of list_markets read after it, and the
    batches that follow, bring every market, and each market's last state seen is its state in
    the database, while trades commit on several markets throughout."""
    at_least_markets(db, make_market, 12)
    traded = [make_market() for _ in range(6)]
    users = [make_user()["user_id"] for _ in range(3)]
    view: dict[str, dict] = {}
    with Traders(db_url, traded, users):
        time.sleep(0.3)
        sub = Subscriber(server)
        sub.start()
        sub.first_id()
        after, pages = None, 0
        while True:
            r = httpx.get(server + "/api/v1/rpc/list_markets",
                          params={"max_rows": 5, **({"after": after} if after else {})}, timeout=10)
            assert r.status_code == 200, r.text
            page = r.json()
            keep_newest(view, page)
            pages += 1
            time.sleep(0.02)  # trades commit between the pages
            if len(page) < 5:
                break
            after = page[-1]["code"]
        time.sleep(0.3)
    for _, batch in sub.batches(time.monotonic() + 1.5):
        keep_newest(view, batch["markets"])
    sub.stop.set()
    assert pages > 2
    final = as_it_is(db)
    assert as_seen(view) == final, "every market, each as it is in the end"
    assert all(final[m][0] > 0 for m in traded)


def test_a_poller_starting_without_a_cursor_ends_with_every_market_as_it_is(db_url, db, make_market, make_user):
    """changes() without a cursor: the cursor and the first page; then the other pages with
    list_markets, then the answer to the cursor: every market, as it is, while trades commit."""
    at_least_markets(db, make_market, 60)
    traded = [make_market() for _ in range(6)]
    users = [make_user()["user_id"] for _ in range(3)]
    view: dict[str, dict] = {}
    with Traders(db_url, traded, users):
        time.sleep(0.3)
        first = rpc_sql(db, None, "changes")
        assert first["more"] is True and len(first["markets"]) == 50 and first["book"] == []
        keep_newest(view, first["markets"])
        after = first["markets"][-1]["code"]
        while True:
            page = rpc_sql(db, None, "list_markets", max_rows=20, after=after)
            keep_newest(view, page)
            if len(page) < 20:
                break
            after = page[-1]["code"]
        time.sleep(0.2)
    keep_newest(view, rpc_sql(db, None, "changes", since=first["cursor"])["markets"])
    assert as_seen(view) == as_it_is(db), "every market, each as it is in the end"
