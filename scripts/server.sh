#!/usr/bin/env bash
# The HTTP server that `make run` started: its pid is in .run/server.pid.
#   server.sh stop     end it (SIGTERM, then up to 10 s for its graceful shutdown)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pidfile="$root/.run/server.pid"

stop() {
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  # only the server we started: the pid must still be a uvicorn serving api.app
  if ps -p "$pid" -o args= 2>/dev/null | grep -q "uvicorn api.app:app"; then
    kill "$pid"
    for _ in $(seq 100); do ps -p "$pid" >/dev/null 2>&1 || break; sleep 0.1; done
    echo "stopped the HTTP server ($pid)"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  stop) stop ;;
  *) echo "usage: $0 stop" >&2; exit 2 ;;
esac
