#!/usr/bin/env bash
# The exchange as it was at a moment: a base backup of dba/backup.sh, then the archived WAL
# replayed up to that moment (recovery_target_time), after which the server is promoted and takes
# writes on a new timeline (docs/dba.md, "Backups").
#   dba/restore.sh [--time TIME] [--backup NAME] [--into DIR] [--port N] [--no-start]
#       into a NEW data folder (default .restore/<backup>-<now> in the checkout), started beside
#       the embedded cluster on a port of its own (default: the first free one after it), local
#       connections only, archiving nothing; the live cluster is not touched
#   dba/restore.sh --replace [--time TIME] [--backup NAME]
#       in place of the embedded cluster's data: the cluster is stopped, its data folder moved
#       aside (never deleted), the restored one started where it was
# TIME: a timestamp with its time zone, such as '2026-12-02 07:23:01.5+00' (select now() prints
# one); every transaction committed up to it is kept, none after. Without it, all the archived WAL
# is replayed. NAME: a backup that dba/backup.sh --list shows; by default the newest that ended
# before TIME. The backups folder is BETJEE_BACKUP_DIR, else the embedded cluster's.
set -euo pipefail
source "$(cd "$(dirname "$0")/.." && pwd)/scripts/cluster.sh"

usage() { sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; }
target="" name="" into="" new_port="" start_it=1 replace=0
while [ $# -gt 0 ]; do
  case "$1" in
    --time | --backup | --into | --port) [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value" ;;&
    --time) target="$2"; shift 2 ;;
    --backup) name="$2"; shift 2 ;;
    --into) into="$2"; shift 2 ;;
    --port) new_port="$2"; shift 2 ;;
    --no-start) start_it=0; shift ;;
    --replace) replace=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[ -n "$bin" ] || die "PostgreSQL 15 is not installed (run scripts/deps.sh)"
ctl="$bin/pg_ctl"  # as the user who runs the restored server
[ "$(id -u)" -ne 0 ] || ctl="runuser -u postgres -- $ctl"
if [ $replace = 1 ] && { [ -n "$into" ] || [ -n "$new_port" ] || [ $start_it = 0 ]; }; then
  die "--replace restores into the embedded cluster's own folder and port, and starts it: no --into, --port or --no-start"
fi
case "$target" in *"'"* | *$'\n'*) die "cannot read the time: $target" ;; esac
[[ -z "$new_port" || "$new_port" =~ ^[0-9]+$ ]] || die "--port must be a number: $new_port"

dir=$(backup_dir)
[ -d "$dir/base" ] || die "no backups in $dir (dba/backup.sh takes them; BETJEE_BACKUP_DIR names another folder)"
info() { sed -n "s/^$2=//p" "$dir/base/$1/info"; }
mapfile -t all < <(for b in "$dir"/base/*/info; do [ -f "$b" ] && basename "$(dirname "$b")"; done | sort)
[ ${#all[@]} -gt 0 ] || die "no backups in $dir (dba/backup.sh takes them)"
# a backup being taken holds the folder's lock: wait for it (it may delete an old backup)
[ -e "$dir/.lock" ] || touch "$dir/.lock"
exec 9<"$dir/.lock"
flock -s -w 600 9 || die "dba/backup.sh has held $dir for 10 minutes: try again once it is done"

# Seconds since the epoch, "s.fraction", compared exactly (no floating point): is $1 <= $2?
not_after() {
  local a="${1%%.*}" b="${2%%.*}" fa fb
  fa=$(printf '%-9.9s' "$([[ $1 == *.* ]] && echo "${1#*.}")" | tr ' ' 0)
  fb=$(printf '%-9.9s' "$([[ $2 == *.* ]] && echo "${2#*.}")" | tr ' ' 0)
  (( a < b || (a == b && 10#$fa <= 10#$fb) ))
}
backup_end() { echo "$(info "$1" finished) ($1)"; }

if [ -n "$target" ]; then
  # read in the server's time zone, as PostgreSQL will read recovery_target_time
  [[ "$target" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2} ]] \
    && t=$(TZ="$(info "${all[-1]}" timezone)" date -d "$target" +%s.%N 2>/dev/null) \
    || die "cannot read the time '$target': give it as '2026-12-02 07:23:01+00' (select now() prints one)"
  not_after "$t" "$(date +%s.%N)" || die "$target is in the future: to replay everything archived, leave out --time"
  if [ -n "$name" ]; then
    [ -f "$dir/base/$name/info" ] || die "no backup $name in $dir (dba/backup.sh --list shows them)"
    not_after "$(info "$name" finished_epoch)" "$t" \
      || die "backup $name ended at $(info "$name" finished), after $target: a backup restores only to times after its end; choose an older one (dba/backup.sh --list)"
  else
    for ((i = ${#all[@]} - 1; i >= 0; i--)); do
      if not_after "$(info "${all[i]}" finished_epoch)" "$t"; then name="${all[i]}"; break; fi
    done
    [ -n "$name" ] || die "no backup ended before $target: the oldest ended at $(backup_end "${all[0]}"); nothing restores to an earlier time"
  fi
else
  name="${name:-${all[-1]}}"
  [ -f "$dir/base/$name/info" ] || die "no backup $name in $dir (dba/backup.sh --list shows them)"
fi
backup="$dir/base/$name"
system_id=$(info "$name" system_id)
if [ -n "$target" ]; then
  [ -d "$dir/wal" ] || die "no archived WAL in $dir/wal: backup $name restores only to its end (leave out --time)"
fi
if [ -f "$dir/wal/SYSTEM_ID" ] && [ "$(cat "$dir/wal/SYSTEM_ID")" != "$system_id" ]; then
  die "$dir/wal holds the WAL of cluster $(cat "$dir/wal/SYSTEM_ID"), backup $name is of cluster $system_id"
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [ $replace = 0 ]; then
  into=$(safe_path "$(realpath -m "${into:-$(dirname "$data")/.restore/$name-$stamp}")")
  [ "$into" != "$data" ] || die "$into is the embedded cluster's data folder: --replace restores there"
  if [ -e "$into" ] && [ -n "$(ls -A "$into")" ]; then
    die "$into is not empty: dba/restore.sh writes only into a new folder (--replace for the embedded cluster's own)"
  fi
  new_sock="$sock"
  mkdir -p "$new_sock"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$new_sock"; fi
  if [ -z "$new_port" ]; then
    new_port=$((port + 1))
    while [ -e "$new_sock/.s.PGSQL.$new_port.lock" ]; do new_port=$((new_port + 1)); done
  elif [ -e "$new_sock/.s.PGSQL.$new_port.lock" ]; then
    die "port $new_port is in use (a server has its socket in $new_sock): choose another --port"
  fi
fi
echo "checking backup $name (pg_verifybackup)"
as_owner "$bin/pg_verifybackup" --quiet "$backup/data" \
  || die "backup $name fails pg_verifybackup: choose another one (--backup, dba/backup.sh --list)"

# What went wrong, from the restored server's log. A --replace that fails puts the embedded
# cluster back on the data it held (the failed attempt kept aside), unless told to leave it be
# (a recovery that is still going on)
fail() {
  echo "$1; the end of $into/server.log:" >&2
  tail -n 15 "$into/server.log" >&2 || true
  if [ $replace = 1 ] && [ -n "${aside:-}" ] && [ -e "$aside" ]; then
    local failed="$data.failed-restore-$stamp"
    if [ "${2:-}" != leave ]; then
      as_owner "$bin/pg_ctl" -D "$into" -m fast -w stop >/dev/null 2>&1 || true
      if ! running && mv -T "$data" "$failed" && mv -T "$aside" "$data" && (start) 9<&- >/dev/null; then
        echo "the embedded cluster is back on the data it held; the failed restore is in $failed" >&2
        exit 1
      fi
    fi
    echo "what the embedded cluster held before is in $aside; to go back to it:" \
         "$ctl -D $data stop; mv $data $failed; mv $aside $data; scripts/cluster.sh start" >&2
  fi
  exit 1
}

# The embedded cluster's WAL written so far goes to the archive (a restore to a moment ago needs
# it), if it is the cluster the backup is of
archive_now() {
  local segment archived=""
  q() { psql "$(url postgres)" -XAtqw -v ON_ERROR_STOP=1 -c "$1"; }
  running && [ "$(q "select system_identifier from pg_control_system()")" = "$system_id" ] || return 0
  segment=$(q "select pg_walfile_name(pg_switch_wal())")
  for ((i = 0; i < 300; i++)); do
    archived=$(q "select coalesce(last_archived_wal, '') >= '$segment' collate \"C\" from pg_stat_archiver")
    [ "$archived" != t ] || return 0
    sleep 0.2
  done
  echo "warning: the embedded cluster's WAL file $segment is not archived after 60 s: what it holds is not replayed" >&2
}

if [ $replace = 1 ]; then
  into="$data" new_port="$port" new_sock="$sock"
  if [ -f "$data/PG_VERSION" ]; then
    here=$(as_owner env LC_ALL=C "$bin/pg_controldata" "$data" | sed -n 's/^Database system identifier: *//p')
    [ "$here" = "$system_id" ] \
      || die "backup $name is of cluster $system_id, the embedded cluster is $here: --replace refuses to put one in place of the other"
    if ! running; then
      echo "starting the embedded cluster to archive the WAL it holds"
      (start) 9<&- || echo "warning: it does not start: what it wrote after its last archived WAL file is lost" >&2
    fi
    archive_now
    if running; then
      echo "stopping the embedded cluster"
      stop >/dev/null
    fi
  fi
  if [ -e "$data" ]; then
    aside="$data.before-restore-$stamp"
    mv -T "$data" "$aside"
    echo "its data folder is now $aside"
  fi
else
  archive_now
fi

trap 'fail "dba/restore.sh stopped (line $LINENO)"' ERR
echo "restoring backup $name into $into"
mkdir -p "$(dirname "$into")"
[ -d "$into" ] || mkdir -m 700 "$into"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$into"; grant_traverse "$(dirname "$into")"; grant_traverse "$new_sock"; fi
chmod 700 "$into"
as_owner cp -a "$backup/data/." "$into/"
[ ! -f "$into/server.log" ] || as_owner truncate -s 0 "$into/server.log"
if [ ! -f "$into/postgresql.conf" ]; then
  # a server whose configuration lives elsewhere (Debian's /etc/postgresql): run on defaults
  echo "warning: backup $name has no postgresql.conf: the restored server runs on defaults" >&2
  as_owner touch "$into/postgresql.conf"
  [ -f "$into/pg_hba.conf" ] || echo "local all all peer" | as_owner tee "$into/pg_hba.conf" >/dev/null
  [ -f "$into/pg_ident.conf" ] || as_owner touch "$into/pg_ident.conf"
fi

# Recovery settings in postgresql.auto.conf (as pg_basebackup -R writes its own), each replacing
# any earlier one of the same name there (a backup of a restored server carries them)
keys='restore_command|recovery_target[a-z_]*'
[ $replace = 1 ] || keys="$keys|port|listen_addresses|unix_socket_directories|archive_mode"
conf="$into/postgresql.auto.conf"
kept=$(grep -vE "^($keys)[[:space:]]*=" "$conf" 2>/dev/null || true)
{
  [ -z "$kept" ] || echo "$kept"
  echo "# dba/restore.sh, $stamp: backup $name, WAL replayed to ${target:-the end of the archive}"
  echo "restore_command = 'cp \"$dir/wal/%f\" \"%p\"'"
  if [ -n "$target" ]; then echo "recovery_target_time = '$target'"; fi
  echo "recovery_target_action = 'promote'"
  if [ $replace = 0 ]; then
    echo "port = $new_port"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$new_sock'"
    echo "archive_mode = off"
  fi
} | as_owner tee "$conf" >/dev/null
as_owner touch "$into/recovery.signal"

if [ $start_it = 0 ]; then
  echo "ready; start it with: $ctl -D $into -l $into/server.log start"
  echo "it replays the WAL, then takes writes; on port $new_port, socket $new_sock"
  exit 0
fi

# Started without the lock's descriptor (the server would hold the lock as long as it runs)
echo "starting it on port $new_port: the WAL is replayed, then it takes writes"
as_owner "$bin/pg_ctl" -D "$into" -l "$into/server.log" -w -t 600 start >/dev/null 9<&- \
  || fail "the restored server did not start"
state() { as_owner env LC_ALL=C "$bin/pg_controldata" "$into" | sed -n 's/^Database cluster state: *//p'; }
deadline=$((SECONDS + ${BETJEE_RESTORE_WAIT:-600}))
until [ "$(state)" = "in production" ]; do
  as_owner "$bin/pg_ctl" -D "$into" status >/dev/null || fail "recovery failed"
  [ $SECONDS -lt $deadline ] \
    || fail "still recovering after ${BETJEE_RESTORE_WAIT:-600} s (it goes on: $ctl -D $into stop to stop it)" leave
  sleep 0.2
done

# The target served its purpose: a later restart, or a copy of this server, must not reuse it
restored_url="postgresql:///$dbname?host=$new_sock&port=$new_port&user=postgres"
admin="postgresql:///postgres?host=$new_sock&port=$new_port&user=postgres"
as_owner psql "$admin" -XAtqw -c "alter system reset recovery_target_time" \
  -c "alter system reset recovery_target_action" >/dev/null 2>&1 || true
replayed=$(as_owner psql "$admin" -XAtqw -c "select pg_last_xact_replay_timestamp()" 2>/dev/null || true)
timeline=$(as_owner env LC_ALL=C "$bin/pg_controldata" "$into" | sed -n "s/^Latest checkpoint's TimeLineID: *//p")
stopped=$(grep -o 'recovery stopping .*' "$into/server.log" | tail -1 || true)
echo "restored backup $name (it ended at $(info "$name" finished)), WAL replayed to ${target:-the end of the archive}"
echo "${stopped:+$stopped; }${replayed:+the last transaction replayed committed at $replayed; }now on timeline $timeline"
if [ $replace = 1 ]; then
  echo "the embedded cluster runs the restored data: $restored_url"
  [ -z "${aside:-}" ] || echo "what it held before is in $aside: delete it once you no longer need it"
  echo "its WAL goes on into $dir/wal on the new timeline: the backups there still restore (a new one is quicker: make backup)"
else
  echo "running in $into: psql \"$restored_url\""
  echo "local connections only, archiving nothing; stop it with: $ctl -D $into stop (then delete $into)"
fi
