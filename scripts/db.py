"""Schema management: yoyo migrations, then the repeatable sql/ files, then the seed.

    python scripts/db.py up URL [--seed]     apply pending migrations and every sql/ file
    python scripts/db.py down URL            roll every migration back
    python scripts/db.py verify URL          run migrations/verify/*.sql (sqitch's verify)
    python scripts/db.py create URL NAME [TEMPLATE]
                                             create database NAME on URL's server (a copy of
                                             database TEMPLATE if given), print its URL
    python scripts/db.py drop URL NAME       drop database NAME
    python scripts/db.py env URL             print URL as PG* variables (for pg_prove)

URL is any libpq URL or conninfo string. yoyo runs its post-apply hooks only when some
migration is pending, so the repeatable files are applied here after every `up` instead.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from yoyo import get_backend, read_migrations

ROOT = Path(__file__).resolve().parent.parent
OWNER = "betjee_owner"


def yoyo_uri(url: str) -> str:
    params = conninfo_to_dict(url)
    dbname = params.pop("dbname", "")
    return f"postgresql+psycopg:///{quote(dbname)}?{urlencode(params)}"


def with_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


def apply_repeatable(url: str) -> None:
    """Every sql/*.sql, in file-name order, as the owner role, in one transaction."""
    with psycopg.connect(url) as conn:
        conn.execute(f"set local role {OWNER}")
        conn.execute("set local client_min_messages = warning")
        for path in sorted((ROOT / "sql").glob("*.sql")):
            try:
                conn.execute(path.read_text())
            except psycopg.Error as exc:
                raise SystemExit(f"{path.relative_to(ROOT)}: {exc}") from exc
        secret = os.environ.get("BETJEE_JWT_SECRET")
        if secret:
            conn.execute("select bj.set_jwt_secret(%s)", [secret])
        conn.execute("notify betjee_schema")


def up(url: str, seed: bool = False) -> None:
    backend = get_backend(yoyo_uri(url))
    migrations = read_migrations(str(ROOT / "migrations"))
    with backend.lock():
        backend.apply_migrations_only(backend.to_apply(migrations))
    apply_repeatable(url)
    if seed:
        with psycopg.connect(url) as conn:
            conn.execute((ROOT / "dba" / "seed.sql").read_text())


def down(url: str) -> None:
    backend = get_backend(yoyo_uri(url))
    migrations = read_migrations(str(ROOT / "migrations"))
    with backend.lock():
        backend.rollback_migrations(backend.to_rollback(migrations))


def verify(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for path in sorted((ROOT / "migrations" / "verify").glob("*.sql")):
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute(path.read_text())
            except psycopg.Error as exc:
                raise SystemExit(f"verify {path.name} failed: {exc}") from exc


def create(url: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
    print(with_dbname(url, name))


def drop(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def pg_env(url: str) -> dict[str, str]:
    """A libpq URL as the PG* environment variables psql and pg_prove read."""
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE",
             "password": "PGPASSWORD", "sslmode": "PGSSLMODE"}
    return {names[k]: str(v) for k, v in conninfo_to_dict(url).items() if k in names}


def env(url: str) -> None:
    for key, value in pg_env(url).items():
        print(f"export {key}={shlex.quote(value)}")


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, url, rest = argv[0], argv[1], argv[2:]
    if cmd == "up":
        up(url, seed="--seed" in rest)
    elif cmd == "down":
        down(url)
    elif cmd == "verify":
        verify(url)
    elif cmd == "create":
        create(url, rest[0], rest[1] if len(rest) > 1 else None)
    elif cmd == "env":
        env(url)
    elif cmd == "drop":
        drop(url, rest[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
