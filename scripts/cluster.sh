#!/usr/bin/env bash
# The embedded PostgreSQL cluster kept inside the checkout: .pgdata (data, log) and .pgsock
# (its Unix socket), port $PGPORT_BETJEE (54329); BETJEE_PGDATA and BETJEE_PGSOCK place
# another one (the crash tests start their own). As root the server runs as the unprivileged
# system user `postgres`. Ignored entirely when DATABASE_URL is set.
#   cluster.sh start | stop | status | url [dbname]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data="${BETJEE_PGDATA:-$root/.pgdata}"
sock="${BETJEE_PGSOCK:-$root/.pgsock}"
port="${PGPORT_BETJEE:-54329}"
dbname="${BETJEE_DB:-betjee}"
bin=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# As root, the data and socket folders belong to `postgres`, which must be able to reach
# them: grant it traverse-only access to each ancestor folder that denies it.
grant_traverse() {
  local d="$1"
  while [ "$d" != "/" ]; do
    if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
      setfacl -m u:postgres:x "$d" 2>/dev/null || chmod o+x "$d"
    fi
    d=$(dirname "$d")
  done
}

url() {
  local db="${1:-$dbname}"
  echo "postgresql:///$db?host=$sock&port=$port&user=postgres"
}

# Running: pg_ctl says so, and its postmaster is not a killed process its parent has not yet
# reaped (a zombie still answers pg_ctl's probe).
running() {
  [ -n "$bin" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 || return 1
  local pid
  pid=$(head -1 "$data/postmaster.pid" 2>/dev/null) || return 1
  [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != "Z" ]
}

start() {
  [ -n "$bin" ] || { echo "PostgreSQL 15 is not installed (run scripts/deps.sh)" >&2; exit 1; }
  if [ "$(id -u)" -eq 0 ]; then grant_traverse "$(dirname "$data")"; grant_traverse "$(dirname "$sock")"; fi
  mkdir -p "$sock"
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$data" "$sock"; fi
    chmod 700 "$data"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$data/postgresql.conf" <<CONF
# betjee embedded cluster
listen_addresses = ''
port = $port
unix_socket_directories = '$sock'
max_connections = 300
shared_buffers = 256MB
fsync = on
log_min_messages = warning
CONF
  fi
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$sock"; fi
  # statement statistics (admin.slow_calls) and pg_cron (each database's housekeeping, scheduled
  # by scripts/db.py up in database postgres, run by background workers): loaded at start, so a
  # cluster made before these settings gets them and is restarted once
  local libs="pg_stat_statements" conf="$data/postgresql.conf"
  [ -f "$bin/../lib/pg_cron.so" ] && libs="$libs,pg_cron"
  if ! grep -qx "shared_preload_libraries = '$libs'" "$conf"; then
    local kept
    kept=$(grep -v -e "^shared_preload_libraries" -e "^cron\." "$conf")
    {
      echo "$kept"
      echo "shared_preload_libraries = '$libs'"
      case "$libs" in *pg_cron*) printf "cron.database_name = 'postgres'\ncron.use_background_workers = on\n" ;; esac
    } > "$conf"  # (rewritten in place: its owner stays)
    if running; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w restart -l "$data/server.log" >/dev/null; fi
  fi
  if ! running; then
    # a server that was killed leaves its pid file behind: it names no running server now;
    # its backends may take a moment to exit and free the shared memory: try again until then
    rm -f "$data/postmaster.pid"
    local tries=0
    until as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null 2>&1; do
      tries=$((tries + 1))
      if [ $tries -ge 20 ]; then
        echo "PostgreSQL did not start; see $data/server.log" >&2
        exit 1
      fi
      rm -f "$data/postmaster.pid"
      sleep 0.5
    done
  fi
  psql "$(url postgres)" -qAtc "select 1 from pg_database where datname = '$dbname'" | grep -q 1 \
    || psql "$(url postgres)" -qc "create database \"$dbname\"" >/dev/null
  case "$libs" in
    *pg_cron*) psql "$(url postgres)" -qc "set client_min_messages = warning; create extension if not exists pg_cron" >/dev/null ;;
  esac
}

stop() {
  if running; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; echo "stopped"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running && echo "running on $sock port $port" || echo "stopped" ;;
  url) url "${2:-}" ;;
  *) echo "usage: $0 start|stop|status|url [dbname]" >&2; exit 2 ;;
esac
