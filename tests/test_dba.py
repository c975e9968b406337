"""The DBA's psql scripts in dba/: each prints what it does, and a dry run commits nothing.
Every script runs as a DBA's own login, a member of service_role and nothing more (no
superuser, no table: docs/dba.md), as a real DBA would run them."""

from __future__ import annotations

import subprocess
from decimal import Decimal

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import ROOT, rpc_sql

DBA = "betjee_dba"


@pytest.fixture(scope="module")
def dba_url(db_url: str) -> str:
    """The URL of a DBA login: `create role … login in role service_role`, as docs/dba.md says."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_roles where rolname = %s", [DBA]).fetchone():
            conn.execute(f"create role {DBA} login in role service_role")
    params = conninfo_to_dict(db_url)
    params["user"] = DBA
    params.pop("password", None)
    return make_conninfo(**params)


def test_the_dba_login_is_no_superuser_and_reads_no_table(dba_url):
    with psycopg.connect(dba_url, autocommit=True) as conn:
        assert conn.execute("select rolsuper, rolbypassrls from pg_roles where rolname = current_user").fetchone() \
            == (False, False)
        for table in ("bj.users", "bj.markets", "bj.trades", "bj.ledger"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select 1 from {table} limit 1")


def psql(url: str, script: str, **variables: str) -> str:
    args = ["psql", url, "-X", "-f", str(ROOT / "dba" / script)]
    for key, value in variables.items():
        args += ["-v", f"{key}={value}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return out.stdout


def test_resolve_script_previews_dry_runs_and_resolves(dba_url, db_url, db, make_market, make_user):
    market = make_market()
    winner, loser = make_user()["user_id"], make_user()["user_id"]
    rpc_sql(db, winner, "trade", market=market, outcome="YES", side="buy", shares=Decimal(10))
    rpc_sql(db, loser, "trade", market=market, outcome="NO", side="buy", shares=Decimal(4))
    balance = db.execute("select balance from bj.users where id = %s", [winner]).fetchone()["balance"]

    out = psql(dba_url, "resolve.sql", market=market, outcome="YES", dry_run="1")
    assert "dry run: nothing was committed" in out and "10.000000" in out
    assert db.execute("select status from bj.markets where code = %s", [market]).fetchone()["status"] == "open"

    out = psql(dba_url, "resolve.sql", market=market, outcome="YES")
    assert "committed" in out
    assert db.execute("select balance from bj.users where id = %s", [winner]).fetchone()["balance"] == balance + 10
    assert "all invariants hold" in psql(dba_url, "check.sql")


def test_void_script_refunds(dba_url, db_url, db, make_market, make_user):
    market, user = make_market(), make_user()["user_id"]
    rpc_sql(db, user, "trade", market=market, outcome="NO", side="buy", shares=Decimal(7))
    out = psql(dba_url, "void.sql", market=market)
    assert "committed" in out
    assert db.execute("select balance from bj.users where id = %s", [user]).fetchone()["balance"] == 1000


def test_create_and_close_scripts(dba_url, db_url, db):
    code = "dba" + str(abs(hash(db_url)) % 10**6)
    psql(dba_url, "create_market.sql", code=code, title="made by a DBA", outcomes="{A,B,C}", liquidity="50")
    row = db.execute("select outcomes, liquidity from bj.markets where code = %s", [code]).fetchone()
    assert row["outcomes"] == ["A", "B", "C"] and row["liquidity"] == 50
    psql(dba_url, "close_market.sql", market=code)
    assert db.execute("select status from bj.markets where code = %s", [code]).fetchone()["status"] == "closed"


def test_the_readmes_dba_examples_run_one_after_another(dba_url, db_url, db):
    """Each command of the README's DBA corner, in its order, against the demo markets: none
    may fail because an earlier one already settled its market."""
    import re
    import shlex
    psql(dba_url, "seed.sql")
    for name in ("bot1", "bot2"):
        if not db.execute("select 1 from bj.users where username = %s", [name]).fetchone():
            db.execute("select bj.signup(%s, 'password123', null)", [name])
    commands = re.findall(r'^    (psql "\$\(make -s dburl\)" .*?)(?:\s+#.*)?$',
                          (ROOT / "README.md").read_text(), re.MULTILINE)
    assert len(commands) >= 6
    for command in commands:
        args = shlex.split(command.replace('"$(make -s dburl)"', shlex.quote(dba_url)))
        out = subprocess.run([*args[:2], "-X", *args[2:]], cwd=ROOT, capture_output=True,
                             text=True, check=False)
        assert out.returncode == 0, (command, out.stderr)


def test_a_book_market_by_script_goes_in_play_and_lapses_its_lapse_orders(dba_url, db_url, db, make_user):
    code = "dbb" + str(abs(hash(db_url)) % 10**6)
    psql(dba_url, "create_market.sql", code=code, title="a book", pricing="book", tick="0.001",
         maker_fee_rate="0.001")
    row = db.execute("select pricing, tick, maker_fee_rate, phase from bj.markets where code = %s", [code]).fetchone()
    assert (row["pricing"], row["tick"], row["maker_fee_rate"], row["phase"]) == ("book", Decimal("0.001"), Decimal("0.001"), "pre")
    user = make_user()["user_id"]
    lapse = rpc_sql(db, user, "place_order", market=code, outcome="YES", side="buy", shares=Decimal(5),
                    price=Decimal("0.305"), persistence="lapse")
    keep = rpc_sql(db, user, "place_order", market=code, outcome="YES", side="buy", shares=Decimal(5),
                   price=Decimal("0.3"))
    out = psql(dba_url, "set_phase.sql", market=code, phase="in_play")
    assert "in_play" in out and " 1" in out, out
    status = {r["id"]: r["status"] for r in db.execute(
        "select id, status from bj.orders where id in (%s, %s)", [lapse["order_id"], keep["order_id"]])}
    assert status == {lapse["order_id"]: "cancelled", keep["order_id"]: "open"}
    bad = subprocess.run(["psql", dba_url, "-X", "-v", f"market={code}", "-v", "phase=half_time",
                          "-f", str(ROOT / "dba" / "set_phase.sql")], check=False, capture_output=True, text=True)
    assert bad.returncode != 0 and "phase must be pre or in_play" in bad.stderr


def test_slow_calls_counts_the_http_layers_calls_per_function(http, dba_url, db_url, make_market):
    """admin.slow_calls (pg_stat_statements, loaded in the embedded cluster) sums a function's
    statements whatever named arguments they carried, for this database only."""
    from psycopg.rows import dict_row

    make_market()
    with psycopg.connect(dba_url, autocommit=True, row_factory=dict_row) as conn:

        def calls() -> dict[str, dict]:
            return {r["call"]: r for r in conn.execute("select * from admin.slow_calls(1000)")}

        before = calls()
        for _ in range(5):
            assert http.get("/api/v1/rpc/list_markets").status_code == 200
        assert http.get("/api/v1/rpc/list_markets", params={"status": "open"}).status_code == 200
        after = calls()
        row = after["api.list_markets"]
        assert row["calls"] - before.get("api.list_markets", {"calls": 0})["calls"] == 6
        assert 0 < row["mean_ms"] <= row["max_ms"] <= row["total_ms"]
        by_total = [r["total_ms"] for r in conn.execute("select * from admin.slow_calls(1000, 'total')")]
        assert by_total == sorted(by_total, reverse=True) and len(by_total) == len(after)
        by_mean = [r["mean_ms"] for r in conn.execute("select * from admin.slow_calls(3)")]
        assert len(by_mean) == min(3, len(after)) and by_mean == sorted(by_mean, reverse=True)
        try:
            conn.execute("select * from admin.slow_calls(10, 'median')")
            raise AssertionError("an unknown order was accepted")
        except psycopg.Error as exc:
            assert exc.sqlstate == "BJ021"
    # not a trader's: the function is the DBA's alone
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("set role authenticated")
        try:
            conn.execute("select * from admin.slow_calls()")
            raise AssertionError("a trader read the statement statistics")
        except psycopg.Error as exc:
            assert exc.sqlstate == "42501"


def test_each_database_keeps_house_every_minute_by_pg_cron(db_url):
    """scripts/db.py up schedules a database's housekeeping (admin.prune_idempotency and
    admin.collect_debts) in the embedded cluster's
    pg_cron (database postgres), and a checkpoint of its invariants every hour; the
    housekeeping job runs; dropping the database unschedules both."""
    import os
    import time

    from scripts.db import checkpoint_schedule
    from tests.conftest import ADMIN_URL, DB

    def cron(sql: str, *args):
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            name = conn.execute("select current_setting('cron.database_name', true)").fetchone()[0]
        assert name, "the embedded cluster loads pg_cron"
        params = conninfo_to_dict(ADMIN_URL)
        params["dbname"] = name
        with psycopg.connect(make_conninfo(**params), autocommit=True) as conn:
            return conn.execute(sql, args).fetchall()

    name = conninfo_to_dict(db_url)["dbname"]
    job = f"betjee-housekeeping:{name}"
    assert cron("select schedule, command, database, active from cron.job where jobname = %s", job) == [
        ("* * * * *", ("select admin.prune_idempotency(), admin.roll_candles(), admin.refresh_leaderboard(),"
                       " admin.collect_debts()"), name, True)]
    assert cron("select schedule, command, database, active from cron.job where jobname = %s",
                f"betjee-checkpoint:{name}") == [
        (checkpoint_schedule(name), "call admin.checkpoint_invariants()", name, True)]
    deadline = time.monotonic() + 75
    while not cron("""select 1 from cron.job_run_details d join cron.job j using (jobid)
                       where j.jobname = %s and d.status = 'succeeded'""", job):
        assert time.monotonic() < deadline, cron(
            "select status, return_message from cron.job_run_details d join cron.job j using (jobid) where j.jobname = %s", job)
        time.sleep(1)
    scratch = f"betjee_cron_{os.getpid()}"
    env = {**os.environ, "BETJEE_NO_CRON": "0"}
    url = subprocess.run([*DB, "create", ADMIN_URL, scratch], check=True, capture_output=True, text=True,
                         env=env).stdout.strip()
    subprocess.run([*DB, "up", url], check=True, capture_output=True, env=env)
    jobs = [f"betjee-housekeeping:{scratch}", f"betjee-checkpoint:{scratch}"]
    assert cron("select count(*) from cron.job where jobname = any(%s)", jobs) == [(2,)]
    subprocess.run([*DB, "drop", ADMIN_URL, scratch], check=True, env=env)
    assert cron("select count(*) from cron.job where jobname = any(%s)", jobs) == [(0,)]


def test_unresolve_script_dry_runs_then_unresolves_as_the_dba(dba_url, db, make_market, make_user):
    market = make_market()
    winner, loser = make_user()["user_id"], make_user()["user_id"]
    rpc_sql(db, winner, "trade", market=market, outcome="YES", side="buy", shares=Decimal(10))
    rpc_sql(db, loser, "trade", market=market, outcome="NO", side="buy", shares=Decimal(4))
    before = db.execute("select balance from bj.users where id = %s", [winner]).fetchone()["balance"]
    psql(dba_url, "resolve.sql", market=market, outcome="YES")

    out = psql(dba_url, "unresolve.sql", market=market)
    assert "a reason is required" in out
    out = psql(dba_url, "unresolve.sql", market=market, reason="wrong outcome", dry_run="1")
    assert "dry run: nothing was committed" in out and "10.000000" in out
    assert db.execute("select status from bj.markets where code = %s", [market]).fetchone()["status"] == "resolved"

    out = psql(dba_url, "unresolve.sql", market=market, reason="wrong outcome")
    assert "committed" in out and f"unresolve | {DBA}" in out.replace("  ", " ")
    assert db.execute("select status from bj.markets where code = %s", [market]).fetchone()["status"] == "closed"
    assert db.execute("select balance from bj.users where id = %s", [winner]).fetchone()["balance"] == before
    log = db.execute("select actor, reason from bj.settlement_log s join bj.markets m on m.id = s.market_id"
                     " where m.code = %s order by s.id desc limit 1", [market]).fetchone()
    assert log == {"actor": DBA, "reason": "wrong outcome"}
