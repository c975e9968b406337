#!/usr/bin/env bash
# make lint: plpgsql_check over every PL/pgSQL function of the project (errors fail, warnings
# are listed), then ruff over the Python.
set -euo pipefail
cd "$(dirname "$0")/.."
url="$BETJEE_ADMIN_URL"
psql "$url" -qc "set client_min_messages = warning; create extension if not exists plpgsql_check" >/dev/null
psql "$url" -v ON_ERROR_STOP=1 -qAt -F ' ' -f scripts/lint.sql
.venv/bin/ruff check api tests scripts
