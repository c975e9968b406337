#!/usr/bin/env bash
# A local hot standby of the embedded cluster, for trying read replicas (docs/scaling.md):
# .pgreplica (data, log) and .pgreplica-sock (its Unix socket), port $PGPORT_BETJEE_REPLICA
# (54330), streaming from the primary over the primary's Unix socket. BETJEE_REPLICA_PGDATA and
# BETJEE_REPLICA_PGSOCK place another one; the primary is found as scripts/cluster.sh finds it
# (BETJEE_PGDATA, BETJEE_PGSOCK, PGPORT_BETJEE) and must be running for the first start. As
# root the standby runs as the system user `postgres`, as the primary does.
#   replica.sh start    the first time a base backup of the primary (pg_basebackup -R), then
#                       the standby; afterwards it starts the standby it has
#   replica.sh stop | status | url [dbname] | remove (stop, and delete the standby's folders)
# Serve reads from it: BETJEE_REPLICA_URL="$(scripts/replica.sh url)" make run
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data="${BETJEE_REPLICA_PGDATA:-$root/.pgreplica}"
sock="${BETJEE_REPLICA_PGSOCK:-$root/.pgreplica-sock}"
port="${PGPORT_BETJEE_REPLICA:-54330}"
primary_sock="${BETJEE_PGSOCK:-$root/.pgsock}"
primary_port="${PGPORT_BETJEE:-54329}"
dbname="${BETJEE_DB:-betjee}"
bin=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# As root, `postgres` must be able to reach the standby's folders (as scripts/cluster.sh does).
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
  echo "postgresql:///${1:-$dbname}?host=$sock&port=$port&user=postgres"
}

running() {
  [ -n "$bin" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 || return 1
  local pid
  pid=$(head -1 "$data/postmaster.pid" 2>/dev/null) || return 1
  [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != "Z" ]
}

# The first start: a copy of the running primary with the standby's settings (-R writes
# primary_conninfo and standby.signal), streaming over the primary's socket. The embedded
# primary's defaults allow it (wal_level replica, max_wal_senders 10, and initdb's pg_hba.conf
# trusts local replication connections).
base_backup() {
  if [ "$(id -u)" -eq 0 ]; then grant_traverse "$(dirname "$data")"; fi
  mkdir -p "$data"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$data"; fi
  chmod 700 "$data"
  if ! as_owner "$bin/pg_basebackup" -D "$data" -R -X stream -c fast \
       -h "$primary_sock" -p "$primary_port" -U postgres 2>&1; then
    rm -rf "$data"
    echo "the base backup failed: is the primary running (scripts/cluster.sh start)?" >&2
    exit 1
  fi
  : > "$data/server.log"  # (the primary's log came with the copy)
  # the last setting of a name wins: the copy's own port and socket follow the primary's
  cat >> "$data/postgresql.conf" <<CONF
# betjee local standby
port = $port
unix_socket_directories = '$sock'
hot_standby = on
# long reads on the standby are not cancelled by the replay of the primary's vacuum
hot_standby_feedback = on
# the primary's WAL archive is the primary's: a standby promoted one day archives nothing there
archive_mode = off
CONF
}

start() {
  [ -n "$bin" ] || { echo "PostgreSQL 15 is not installed (run scripts/deps.sh)" >&2; exit 1; }
  if [ "$(id -u)" -eq 0 ]; then grant_traverse "$(dirname "$sock")"; fi
  mkdir -p "$sock"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$sock"; fi
  [ -f "$data/PG_VERSION" ] || base_backup
  if ! running; then
    rm -f "$data/postmaster.pid"  # a killed server's, naming nothing that runs
    # -w: until it accepts connections (a hot standby does once its copy is consistent)
    if ! as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null; then
      echo "the standby did not start; see $data/server.log" >&2
      exit 1
    fi
  fi
}

stop() {
  if running; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; echo "stopped"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running && echo "running on $sock port $port" || echo "stopped" ;;
  url) url "${2:-}" ;;
  remove) stop >/dev/null; rm -rf "$data" "$sock" ;;
  *) echo "usage: $0 start|stop|status|url [dbname]|remove" >&2; exit 2 ;;
esac
