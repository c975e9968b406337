"""Migrations apply, roll back to nothing, and apply again; each verify script passes."""

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from tests.conftest import ADMIN_URL, ROOT, with_dbname

DB = [sys.executable, str(ROOT / "scripts" / "db.py")]

PROJECT_OBJECTS = """
select 'schema ' || nspname from pg_namespace
 where nspname in ('bj', 'auth', 'api', 'admin', 'analytics', 'extensions')
union all
select 'relation ' || c.oid::regclass::text from pg_class c
 join pg_namespace n on n.oid = c.relnamespace
 where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
   and c.relname not like '\\_yoyo%' and c.relname not like 'yoyo%'
union all
select 'function ' || p.oid::regprocedure::text from pg_proc p
 join pg_namespace n on n.oid = p.pronamespace
 where n.nspname not in ('pg_catalog', 'information_schema')
union all
select 'extension ' || extname from pg_extension where extname <> 'plpgsql'
"""


def run(*args: str) -> None:
    subprocess.run([*DB, *args], check=True, cwd=ROOT)


def test_migrations_roll_back_to_nothing_and_apply_again():
    name = f"betjee_roundtrip_{uuid.uuid4().hex[:8]}"
    url = with_dbname(ADMIN_URL, name)
    run("create", ADMIN_URL, name)
    try:
        run("up", url)
        run("verify", url)
        run("down", url)
        with psycopg.connect(url) as conn:
            left = [r[0] for r in conn.execute(PROJECT_OBJECTS)]
        assert left == []
        run("up", url)
        run("verify", url)
    finally:
        run("drop", ADMIN_URL, name)


def test_every_migration_has_a_rollback_and_a_verify():
    for m in sorted((ROOT / "migrations").glob("[0-9]*.sql")):
        if m.name.endswith(".rollback.sql"):
            continue
        assert m.with_suffix(".rollback.sql").exists(), m.name
        assert (ROOT / "migrations" / "verify" / m.name).exists(), m.name
    assert Path(ROOT / "migrations" / "verify").is_dir()


def test_the_committed_schema_is_what_the_migrations_build():
    """docs/schema.sql shows every table whole; it must be what the migrations build now."""
    name = f"betjee_schema_{uuid.uuid4().hex[:8]}"
    url = with_dbname(ADMIN_URL, name)
    run("create", ADMIN_URL, name)
    try:
        run("up", url, "--migrations-only")
        built = subprocess.run([*DB, "schema", url], capture_output=True, text=True, check=True,
                               cwd=ROOT).stdout
        assert built == (ROOT / "docs" / "schema.sql").read_text(), "run make schema"
    finally:
        run("drop", ADMIN_URL, name)
