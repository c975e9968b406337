#!/usr/bin/env bash
# make test: a throw-away database for this run (the `make run` database is never touched),
# pgTAP over pgtap/ with pg_prove, then pytest; pytest's summary is the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
admin_url="$BETJEE_ADMIN_URL"
name="betjee_test_$$"
url=$(.venv/bin/python scripts/db.py create "$admin_url" "$name")
cleanup() { .venv/bin/python scripts/db.py drop "$admin_url" "$name" || true; }
trap cleanup EXIT

psql "$url" -qc "set client_min_messages = warning; create extension if not exists pgtap; create extension if not exists plpgsql_check" >/dev/null
.venv/bin/python scripts/db.py up "$url"
.venv/bin/python scripts/db.py verify "$url"

echo "== pgTAP"
(eval "$(.venv/bin/python scripts/db.py env "$url")"; pg_prove --ext .sql --failures pgtap/)
echo "== pytest"
BETJEE_TEST_DATABASE_URL="$url" BETJEE_ADMIN_URL="$admin_url" .venv/bin/python -m pytest "$@"
