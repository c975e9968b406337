"""Backups and point-in-time recovery (dba/backup.sh, dba/restore.sh, the WAL archiving of
scripts/cluster.sh), on a throw-away PostgreSQL cluster of the test's own (the shared one is
never restarted): trade, note the time, resolve a market wrongly, restore to the noted time; the
wrong resolution is gone, the trades are there, the invariants hold. Also: a cluster is restarted
for new settings once and never when it has them, WAL is not kept while nobody takes backups,
the restore refuses what it cannot do, --replace puts the restored data in place of the cluster,
and retention keeps the newest backups and the WAL they need."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import DB, ROOT, SECRET, _free_port, rpc_sql, unique

PG_BIN = Path("/usr/lib/postgresql/15/bin")
AS_OWNER = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Cluster:
    """The test's cluster: scripts/cluster.sh with BETJEE_PGDATA, BETJEE_PGSOCK, PGPORT_BETJEE
    and BETJEE_BACKUP_DIR in ROOT/.backup-test-<pid>."""
    dir: Path = field(default_factory=lambda: ROOT / f".backup-test-{os.getpid()}")
    restored: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data, self.sock, self.backups = self.dir / "data", self.dir / "sock", self.dir / "backups"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DATABASE_URL", "BETJEE_DB", "BETJEE_BACKUP_URL", "BETJEE_BACKUP_KEEP")}
        self.env.update(BETJEE_PGDATA=str(self.data), BETJEE_PGSOCK=str(self.sock),
                        PGPORT_BETJEE=str(_free_port()), BETJEE_BACKUP_DIR=str(self.backups))

    def run(self, script: str, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        """scripts/cluster.sh or dba/*.sh with this cluster's environment."""
        out = subprocess.run([str(ROOT / script), *args], env={**self.env, **env}, text=True,
                             capture_output=True, timeout=180, check=False)
        if check:
            assert out.returncode == 0, f"{script} {' '.join(args)}: {out.stdout}\n{out.stderr}"
        return out

    def url(self, dbname: str = "betjee") -> str:
        return self.run("scripts/cluster.sh", "url", dbname).stdout.strip()

    def backup_names(self) -> list[str]:
        return sorted(p.parent.name for p in (self.backups / "base").glob("*/info"))

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def stop_restored(self) -> None:
        for data in self.restored:
            if (data / "postmaster.pid").exists():
                subprocess.run([*AS_OWNER, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast",
                                "-w", "stop"], capture_output=True, check=False)


def q(url: str, sql: str, *args) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def q1(url: str, sql: str, *args):
    return q(url, sql, *args)[0][0]


def setting(url: str, name: str) -> str:
    return q1(url, "select current_setting(%s)", name)


def switch_and_archive(url: str, archive: Path) -> str:
    """Close the current WAL file and wait until the server has archived it into archive."""
    segment = q1(url, "select pg_walfile_name(pg_switch_wal())")
    deadline = time.monotonic() + 30
    while not (archive / segment).exists() or q1(
            url, "select coalesce(last_archived_wal, '') < %s collate \"C\" from pg_stat_archiver", segment):
        assert time.monotonic() < deadline, f"{segment} not archived: {q(url, 'select * from pg_stat_archiver')}"
        time.sleep(0.1)
    return segment


def with_user(url: str, user: str) -> str:
    params = conninfo_to_dict(url)
    params["user"] = user
    return make_conninfo(**params)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The throw-away cluster, migrated, configured as conftest's db_url is, with a DBA login."""
    c = Cluster()
    try:
        shutil.rmtree(c.dir, ignore_errors=True)
        c.dir.mkdir()
        c.run("scripts/cluster.sh", "start")
        url = c.url()
        subprocess.run([*DB, "up", url], check=True, capture_output=True,
                       env={**c.env, "BETJEE_JWT_SECRET": SECRET})
        with psycopg.connect(url, autocommit=True) as conn:
            for key, value in (("bcrypt_cost", "4"), ("trade_cooldown_ms", "0")):
                conn.execute("select admin.configure(%s, %s)", [key, value])
            conn.execute("create role betjee_dba login in role service_role")
        yield c
    finally:
        c.stop_restored()
        c.run("scripts/cluster.sh", "stop", check=False)
        shutil.rmtree(c.dir, ignore_errors=True)


@dataclass
class Scene:
    market: str
    user: int
    trades: list[int]
    balance: Decimal
    noted: str


def trade_note_and_resolve_wrongly(c: Cluster, backup_between: bool) -> Scene:
    """A market and a trader who buys YES (once before a backup when backup_between, once after);
    the time is noted; then a DBA resolves the market to NO by mistake, with dba/resolve.sql, as
    a login in service_role; the WAL of that resolution is archived."""
    url = c.url()
    market = unique("bk")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select admin.create_market(%s, %s)", [market, "restored?"])
        user = conn.execute("select (bj.signup(%s, 'password123', null) ->> 'user_id')::bigint",
                            [unique("u")]).fetchone()[0]
        trades = [rpc_sql(conn, user, "trade", market=market, outcome="YES", side="buy",
                          shares=Decimal(10))["trade_id"]]
    if backup_between:
        out = c.run("dba/backup.sh")
        assert "verified" in out.stdout, out.stdout
    with psycopg.connect(url, autocommit=True) as conn:
        trades.append(rpc_sql(conn, user, "trade", market=market, outcome="YES", side="buy",
                              shares=Decimal(5))["trade_id"])
        balance = conn.execute("select balance from bj.users where id = %s", [user]).fetchone()[0]
        noted = conn.execute("select now()::text").fetchone()[0]  # a transaction after the trade's commit
    out = subprocess.run(["psql", with_user(url, "betjee_dba"), "-X", "-v", f"market={market}",
                          "-v", "outcome=NO", "-f", str(ROOT / "dba" / "resolve.sql")],
                         capture_output=True, text=True, check=True)
    assert "committed" in out.stdout, out.stdout
    assert q1(url, "select status from bj.markets where code = %s", market) == "resolved"
    switch_and_archive(url, c.backups / "wal")
    return Scene(market, user, trades, balance, noted)


def assert_as_before_the_resolution(url: str, scene: Scene) -> None:
    assert q(url, "select status, payouts, settled_at from bj.markets where code = %s",
             scene.market) == [("open", None, None)], "the wrong resolution is still there"
    assert sorted(t for (t,) in q(url, "select id from bj.trades where market_id = "
                                  "(select id from bj.markets where code = %s)", scene.market)) \
        == sorted(scene.trades)
    assert q1(url, "select balance from bj.users where id = %s", scene.user) == scene.balance
    assert q(url, "select * from admin.check_invariants()") == []


def test_a_cluster_is_restarted_once_for_new_settings_and_never_when_it_has_them(cluster):
    pid = cluster.postmaster()
    cluster.run("scripts/cluster.sh", "start")
    assert cluster.postmaster() == pid, "a cluster with the right settings was restarted"

    # a cluster made before WAL archiving was set up: restarted once, then left be
    conf = cluster.data / "postgresql.conf"
    text = conf.read_text()
    conf.write_text("".join(line for line in text.splitlines(keepends=True)
                            if not line.startswith(("archive_mode", "archive_command"))))
    assert not re.search(r"^archive_", conf.read_text(), re.MULTILINE)
    cluster.run("scripts/cluster.sh", "start")
    restarted = cluster.postmaster()
    assert restarted != pid
    assert setting(cluster.url(), "archive_mode") == "on"
    assert "pg_stat_statements,pg_cron" in setting(cluster.url(), "shared_preload_libraries")
    cluster.run("scripts/cluster.sh", "start")
    assert cluster.postmaster() == restarted
    assert conf.read_text().count("\narchive_mode") == 1

    # another backups folder only changes archive_command: a reload, not a restart; the folder
    # last named is kept by a start that names none
    other = cluster.dir / "other-backups"
    cluster.run("scripts/cluster.sh", "start", BETJEE_BACKUP_DIR=str(other))
    assert cluster.postmaster() == restarted
    deadline = time.monotonic() + 10
    while f'"{other}/wal"' not in setting(cluster.url(), "archive_command"):
        assert time.monotonic() < deadline, setting(cluster.url(), "archive_command")
        time.sleep(0.1)
    assert cluster.run("scripts/cluster.sh", "backup-dir", BETJEE_BACKUP_DIR="").stdout.strip() == str(other)
    cluster.run("scripts/cluster.sh", "start")
    assert cluster.postmaster() == restarted
    assert f'"{cluster.backups}/wal"' in conf.read_text()


def test_no_wal_is_kept_while_nobody_takes_backups(cluster):
    url = cluster.url()
    before = q(url, "select archived_count, failed_count from pg_stat_archiver")[0]
    for _ in range(3):
        q1(url, "select pg_switch_wal()")
        q(url, "select admin.configure('trade_cooldown_ms', '0')")  # some WAL in each file
    deadline = time.monotonic() + 20
    while q1(url, "select archived_count from pg_stat_archiver") < before[0] + 3:
        assert time.monotonic() < deadline, q(url, "select * from pg_stat_archiver")
        time.sleep(0.1)
    assert q1(url, "select failed_count from pg_stat_archiver") == before[1]
    assert not cluster.backups.exists(), "WAL was archived without a backups folder"
    ready = [p.name for p in (cluster.data / "pg_wal" / "archive_status").glob("*.ready")]
    assert len(ready) <= 1, f"WAL files waiting to be archived: {ready}"


def test_restoring_to_the_noted_time_undoes_a_wrong_resolution(cluster):
    """The backup is taken between the two trades: the second is replayed from the archive."""
    scene = trade_note_and_resolve_wrongly(cluster, backup_between=True)
    live_pid = cluster.postmaster()
    into = cluster.dir / "restored"
    port = str(_free_port())
    cluster.restored.append(into)
    out = cluster.run("dba/restore.sh", "--time", scene.noted, "--into", str(into), "--port", port)
    assert "recovery stopping before commit" in out.stdout, out.stdout
    restored = f"postgresql:///betjee?host={cluster.sock}&port={port}&user=postgres"
    assert restored in out.stdout

    assert_as_before_the_resolution(restored, scene)
    assert q1(restored, "select pg_is_in_recovery()") is False
    assert q1(restored, "select pg_last_xact_replay_timestamp() <= %s::timestamptz", scene.noted)
    assert setting(restored, "archive_mode") == "off"
    assert setting(restored, "listen_addresses") == ""
    assert "recovery_target_time" not in (into / "postgresql.auto.conf").read_text(), \
        "the target outlives the restore: a restart or a backup of this copy would reuse it"
    with psycopg.connect(restored, autocommit=True) as conn:  # the copy takes writes
        rpc_sql(conn, scene.user, "trade", market=scene.market, outcome="NO", side="buy", shares=Decimal(1))
        assert conn.execute("select * from admin.check_invariants()").fetchall() == []

    # the live cluster is untouched
    assert cluster.postmaster() == live_pid
    assert q1(cluster.url(), "select status from bj.markets where code = %s", scene.market) == "resolved"


def test_a_restore_refuses_what_it_cannot_do(cluster):
    if not cluster.backup_names():
        cluster.run("dba/backup.sh")
    names = cluster.backup_names()
    info = dict(line.split("=", 1) for line in
                (cluster.backups / "base" / names[0] / "info").read_text().splitlines())
    into = cluster.dir / "refused"
    cluster.restored.append(into)
    before_first = q1(cluster.url(), "select (%s::timestamptz - interval '1 second')::text", info["finished"])

    out = cluster.run("dba/restore.sh", "--time", before_first, "--into", str(into), check=False)
    assert out.returncode != 0 and "no backup ended before" in out.stderr, out
    out = cluster.run("dba/restore.sh", "--time", before_first, "--backup", names[0], "--into", str(into),
                      check=False)
    assert out.returncode != 0 and f"backup {names[0]} ended at {info['finished']}" in out.stderr, out
    out = cluster.run("dba/restore.sh", "--backup", "20000101T000000Z", "--into", str(into), check=False)
    assert out.returncode != 0 and "no backup 20000101T000000Z" in out.stderr, out
    out = cluster.run("dba/restore.sh", "--time", "2999-01-01 00:00:00+00", "--into", str(into), check=False)
    assert out.returncode != 0 and "in the future" in out.stderr, out
    out = cluster.run("dba/restore.sh", "--time", "not a time", "--into", str(into), check=False)
    assert out.returncode != 0 and "cannot read the time" in out.stderr, out
    assert not into.exists(), "a refused restore wrote something"

    into.mkdir()
    (into / "something").write_text("kept")
    out = cluster.run("dba/restore.sh", "--into", str(into), check=False)
    assert out.returncode != 0 and "is not empty" in out.stderr, out
    assert [p.name for p in into.iterdir()] == ["something"]


def test_replace_puts_the_restored_data_in_place_of_the_cluster(cluster):
    if not cluster.backup_names():
        cluster.run("dba/backup.sh")
    scene = trade_note_and_resolve_wrongly(cluster, backup_between=False)
    url = cluster.url()
    timeline = q1(url, "select timeline_id from pg_control_checkpoint()")

    out = cluster.run("dba/restore.sh", "--replace", "--time", scene.noted)
    assert "the embedded cluster runs the restored data" in out.stdout, out.stdout
    assert_as_before_the_resolution(url, scene)
    assert q1(url, "select timeline_id from pg_control_checkpoint()") > timeline

    aside = [p for p in cluster.dir.iterdir() if p.name.startswith("data.before-restore-")]
    assert len(aside) == 1, "the data the cluster held is kept aside"
    assert re.search(r"^archive_mode = on$", (aside[0] / "postgresql.conf").read_text(), re.MULTILINE)

    # the restored cluster has the settings: scripts/cluster.sh start leaves it be
    pid = cluster.postmaster()
    cluster.run("scripts/cluster.sh", "start")
    assert cluster.postmaster() == pid
    # and archives on its new timeline into the same archive
    new_timeline = q1(url, "select timeline_id from pg_control_checkpoint()")
    assert switch_and_archive(url, cluster.backups / "wal").startswith(f"{new_timeline:08X}")
    assert (cluster.backups / "wal" / f"{new_timeline:08X}.history").exists()
    assert q(url, "select * from admin.check_invariants()") == []


def test_a_replace_that_fails_puts_the_cluster_back_on_its_own_data(cluster):
    """The archive misses the WAL the restore needs: the restored server stops short of the
    time; the cluster comes back on the data it held, which it goes on archiving."""
    if not cluster.backup_names():
        cluster.run("dba/backup.sh")
    url = cluster.url()
    newest = cluster.backup_names()[-1]
    start_wal = (cluster.backups / "base" / newest / "info").read_text().split("start_wal=")[1][:24]
    market = unique("kept")
    q(url, "select admin.create_market(%s, %s)", market, "made after the backup")
    switch_and_archive(url, cluster.backups / "wal")
    noted = q1(url, "select now()::text")
    hidden = cluster.dir / "hidden-wal"
    hidden.mkdir()
    for f in (cluster.backups / "wal").iterdir():
        if re.fullmatch(r"[0-9A-F]{24}", f.name) and f.name[8:] > start_wal[8:]:
            f.rename(hidden / f.name)
    try:
        out = cluster.run("dba/restore.sh", "--replace", "--time", noted, check=False)
    finally:
        for f in hidden.iterdir():
            f.rename(cluster.backups / "wal" / f.name)
    assert out.returncode != 0, out.stdout
    assert "recovery ended before configured recovery target was reached" in out.stderr, out.stderr
    assert "the embedded cluster is back on the data it held" in out.stderr, out.stderr
    assert q1(url, "select count(*) from bj.markets where code = %s", market) == 1
    assert [p for p in cluster.dir.iterdir() if p.name.startswith("data.failed-restore-")]
    switch_and_archive(url, cluster.backups / "wal")
    assert q(url, "select * from admin.check_invariants()") == []


def test_retention_keeps_the_newest_backups_and_the_wal_they_need(cluster):
    backups = cluster.backup_names
    while len(backups()) < 2:
        cluster.run("dba/backup.sh")
    before = backups()
    histories = sorted(p.name for p in (cluster.backups / "wal").glob("*.history"))
    out = cluster.run("dba/backup.sh", BETJEE_BACKUP_KEEP="2")
    kept = backups()
    assert len(kept) == 2 and kept[0] == before[-1] and kept[1] not in before, (before, kept)
    assert f"removed backups {' '.join(before[:-1])}" in out.stdout, out.stdout
    listed = cluster.run("dba/backup.sh", "--list").stdout
    assert re.findall(r"^(\d{8}T\d{6}Z) ", listed, re.MULTILINE) == kept, listed

    info = dict(line.split("=", 1) for line in
                (cluster.backups / "base" / kept[0] / "info").read_text().splitlines())
    segments = [p.name for p in (cluster.backups / "wal").iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name)]
    assert info["start_wal"] in segments
    assert all(s[8:] >= info["start_wal"][8:] for s in segments), (info["start_wal"], sorted(segments))
    assert sorted(p.name for p in (cluster.backups / "wal").glob("*.history")) == histories, \
        "timeline histories are kept"
