#!/usr/bin/env bash
# The embedded PostgreSQL cluster kept inside the checkout: .pgdata (data, log) and .pgsock
# (its Unix socket), port $PGPORT_BETJEE (54329); BETJEE_PGDATA and BETJEE_PGSOCK place
# another one (the crash tests start their own). As root the server runs as the unprivileged
# system user `postgres`. Ignored entirely when DATABASE_URL is set.
# WAL is archived (dba/archive_wal.sh) into the wal/ folder of the backups folder once
# dba/backup.sh has made it; until then nothing is kept (docs/dba.md, "Backups").
#   cluster.sh start | stop | status | url [dbname] | backup-dir
# dba/backup.sh and dba/restore.sh source it for its settings and helpers.
set -euo pipefail
shopt -s inherit_errexit
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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

die() { echo "$*" >&2; exit 1; }

# A folder named in a server setting and in the shell command it runs: refused if it holds a
# character either would read (quotes, $, `, \, %).
safe_path() {
  case "$1" in
    *[\"\'\$\`\\%]* | *$'\n'*) die "unusable folder name (quote, \$, \`, \\ or %): $1" ;;
  esac
  echo "$1"
}

# The backups folder of this cluster: BETJEE_BACKUP_DIR; else the one its archive_command names
# (the last one chosen, so a later start without the variable keeps archiving there); else
# .backups beside the data folder.
backup_dir() {
  local named=""
  if [ -n "${BETJEE_BACKUP_DIR:-}" ]; then safe_path "$(realpath -m "$BETJEE_BACKUP_DIR")"; return; fi
  [ -r "$data/postgresql.conf" ] \
    && named=$(sed -n "s|^archive_command = '\"[^\"]*\" \"\([^\"]*\)/wal\".*|\1|p" "$data/postgresql.conf" | tail -1)
  safe_path "${named:-$(dirname "$data")/.backups}"
}

# The settings this script keeps in postgresql.conf, one per line: those read at start first
# (restart), then archive_command (reload). Statement statistics (admin.slow_calls), pg_cron
# (each database's housekeeping, scheduled by scripts/db.py up in database postgres, run by
# background workers), and WAL archiving: always on, into <backups>/wal, which
# dba/archive_wal.sh fills only once dba/backup.sh has made it (the tests write a lot of WAL:
# none of it is kept while nobody takes backups).
settings() {
  local libs="pg_stat_statements" sysid archive helper
  [ -f "$bin/../lib/pg_cron.so" ] && libs="$libs,pg_cron"
  echo "shared_preload_libraries = '$libs'"
  case "$libs" in *pg_cron*) printf "cron.database_name = 'postgres'\ncron.use_background_workers = on\n" ;; esac
  echo "archive_mode = on"
  sysid=$(as_owner env LC_ALL=C "$bin/pg_controldata" "$data" | sed -n 's/^Database system identifier: *//p')
  archive=$(backup_dir)
  helper=$(safe_path "$root/dba/archive_wal.sh")
  echo "archive_command = '\"$helper\" \"$archive/wal\" \"%p\" \"%f\" \"$sysid\"'"
}
SETTINGS='^(shared_preload_libraries|cron\.[a-z_]+|archive_mode|archive_command)[[:space:]]*='
RELOADED='^archive_command[[:space:]]*='

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
  # a cluster made before one of these settings gets it: restarted once if a setting read at
  # start changed, reloaded if only archive_command did; a cluster that has them all is left be
  local conf="$data/postgresql.conf" wanted missing kept
  wanted=$(settings)
  missing=$(grep -vxF -f "$conf" <<< "$wanted" || true)
  if [ -n "$missing" ]; then
    kept=$(grep -vE "$SETTINGS" "$conf" || true)
    printf '%s\n%s\n' "$kept" "$wanted" > "$conf"  # (rewritten in place: its owner stays)
    if running; then
      if grep -qvE "$RELOADED" <<< "$missing"; then
        as_owner "$bin/pg_ctl" -D "$data" -m fast -w restart -l "$data/server.log" >/dev/null
      else
        as_owner "$bin/pg_ctl" -D "$data" reload >/dev/null
      fi
    fi
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
  case "$wanted" in
    *pg_cron*) psql "$(url postgres)" -qc "set client_min_messages = warning; create extension if not exists pg_cron" >/dev/null ;;
  esac
}

stop() {
  if running; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; echo "stopped"; fi
}

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running && echo "running on $sock port $port" || echo "stopped" ;;
  url) url "${2:-}" ;;
  backup-dir) backup_dir ;;
  *) echo "usage: $0 start|stop|status|url [dbname]|backup-dir" >&2; exit 2 ;;
esac
