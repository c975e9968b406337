"""Fixtures: the run's database (created by scripts/test.sh, or here when pytest runs alone),
connections as the owner and as client roles, and the invariant check after every test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent


def _admin_url() -> str:
    url = os.environ.get("BETJEE_ADMIN_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    out = subprocess.run([str(ROOT / "scripts" / "cluster.sh"), "url"], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


ADMIN_URL = _admin_url()


def with_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def db_url() -> str:
    url = os.environ.get("BETJEE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    name = f"betjee_pytest_{os.getpid()}"
    db = [sys.executable, str(ROOT / "scripts" / "db.py")]
    url = subprocess.run([*db, "create", ADMIN_URL, name], check=True, capture_output=True,
                         text=True).stdout.strip()
    subprocess.run([*db, "up", url], check=True)
    yield url
    subprocess.run([*db, "drop", ADMIN_URL, name], check=True)
