#!/usr/bin/env bash
# A base backup of the exchange's PostgreSQL: with the WAL archived since, dba/restore.sh brings
# it back as it was at any moment after the backup ended (docs/dba.md, "Backups").
#   dba/backup.sh          take one (make backup): pg_basebackup, plain format, the WAL it needs
#                          streamed in, a manifest with CRC32C checksums, checked by
#                          pg_verifybackup; then keep the newest BETJEE_BACKUP_KEEP
#   dba/backup.sh --list   the backups and the archive
# Of the embedded cluster (started, with WAL archiving into the backups folder, if need be), or
# of the server at BETJEE_BACKUP_URL (else DATABASE_URL): a libpq URL of a role with REPLICATION
# that may connect to its database; that server archives its WAL itself (docs/dba.md).
#   BETJEE_BACKUP_DIR         the backups folder (default: .backups in the checkout):
#                             base/<UTC time>/data (the backup) and info, wal/ (the archive)
#   BETJEE_BACKUP_KEEP        base backups kept (default 3): older ones are deleted once a new
#                             one is verified, and with them the archived WAL only they needed
#   BETJEE_BACKUP_CHECKPOINT  fast (default) or spread (no I/O burst, a slower start)
set -euo pipefail
source "$(cd "$(dirname "$0")/.." && pwd)/scripts/cluster.sh"

keep="${BETJEE_BACKUP_KEEP:-3}"
server_url="${BETJEE_BACKUP_URL:-${DATABASE_URL:-}}"
[[ "$keep" =~ ^[1-9][0-9]*$ ]] || die "BETJEE_BACKUP_KEEP must be a whole number from 1: $keep"

# As root, everything here runs as the embedded cluster's owner, postgres: it writes the archive
# and runs the restored copies, so it must own and read the backups.
if [ -n "$server_url" ]; then
  dir=$(safe_path "$(realpath -m "${BETJEE_BACKUP_DIR:-$root/.backups}")")
  sql_url="$server_url"
  source_name="the server at $(sed -E 's|://[^@/]*@|://|; s|password=[^ &]*||' <<< "$server_url")"
else
  [ -n "$bin" ] || die "PostgreSQL 15 is not installed (run scripts/deps.sh)"
  dir=$(backup_dir)
  sql_url=$(url postgres)
  source_name="the embedded cluster ($data)"
fi
q() { as_owner psql "$sql_url" -XAtqw -v ON_ERROR_STOP=1 -c "$1"; }
info() { sed -n "s/^$2=//p" "$dir/base/$1/info"; }
backups() {
  local b
  for b in "$dir"/base/*/info; do
    [ -f "$b" ] && basename "$(dirname "$b")"
  done | sort
}

list() {
  [ -d "$dir/base" ] || { echo "no backups in $dir"; return; }
  printf '%-18s %-34s %8s  %s\n' backup "restorable to times after" size "WAL from"
  local b
  for b in $(backups); do
    printf '%-18s %-34s %8s  %s\n' "$b" "$(info "$b" finished)" "$(du -sh "$dir/base/$b" | cut -f1)" "$(info "$b" start_wal)"
  done
  local segs
  segs=$(find "$dir/wal" -maxdepth 1 -name '[0-9A-F]*' -printf '%f\n' 2>/dev/null | grep -E '^[0-9A-F]{24}$' | sort || true)
  echo "archive $dir/wal: $(grep -c . <<< "$segs" || true) WAL files, $(du -sh "$dir/wal" 2>/dev/null | cut -f1)" \
       "${segs:+($(head -1 <<< "$segs") to $(tail -1 <<< "$segs"))}"
}

# The backups folder with its archive, built aside and renamed into place (archive_wal.sh keeps
# WAL from the moment it sees the folder); one that holds another cluster's backups is refused.
prepare() {
  local system_id="$1" new archived
  if [ ! -d "$dir/wal" ]; then
    mkdir -p "$(dirname "$dir")"
    new=$(mktemp -d "$(dirname "$dir")/.$(basename "$dir").new.XXXXXX")
    mkdir "$new/wal" "$new/base"
    echo "$system_id" > "$new/wal/SYSTEM_ID"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$new"; fi
    if [ -d "$dir" ]; then
      mv -T "$new/wal" "$dir/wal"
      [ -d "$dir/base" ] || mv -T "$new/base" "$dir/base"
      rm -rf "$new"
    else
      mv -T "$new" "$dir"
    fi
  fi
  if [ "$(id -u)" -eq 0 ]; then grant_traverse "$dir"; fi
  archived=$(cat "$dir/wal/SYSTEM_ID" 2>/dev/null || true)
  [ -z "$archived" ] || [ "$archived" = "$system_id" ] \
    || die "$dir holds the backups of another cluster (system identifier $archived, this one is $system_id): choose another BETJEE_BACKUP_DIR"
  [ -e "$dir/.lock" ] || touch "$dir/.lock"
}

# Wait until the server has archived WAL file $1 (the backup's last): restoring to a time after
# the backup needs it and what follows. On a server without archiving, say what that means.
wait_archived() {
  local segment="$1" mode archived deadline=$((SECONDS + ${BETJEE_BACKUP_ARCHIVE_WAIT:-60}))
  mode=$(q "show archive_mode")
  if [ "$mode" = off ]; then
    echo "warning: archive_mode is off on $source_name: this backup restores only to its own end" >&2
    return 0
  fi
  while :; do
    archived=$(q "select coalesce(last_archived_wal, '') >= '$segment' collate \"C\" from pg_stat_archiver")
    [ "$archived" != t ] || return 0
    if [ $SECONDS -ge $deadline ]; then
      die "the backup is kept and verified, but WAL file $segment was not archived within ${BETJEE_BACKUP_ARCHIVE_WAIT:-60} s" \
          "($(q "select case when failed_count = 0 then 'no archiving failed' else format('%s failures, the last of %s at %s',
                 failed_count, last_failed_wal, last_failed_time) end from pg_stat_archiver")):" \
          "see the server's log; restoring to a later time needs the archive"
    fi
    sleep 0.2
  done
}

# Keep the newest $keep backups; then the archive needs nothing older than the oldest kept one's
# first WAL file (pg_archivecleanup; backup history files likewise; timeline histories stay).
retain() {
  local all removed=() b oldest start before after f
  mapfile -t all < <(backups)
  while [ ${#all[@]} -gt "$keep" ]; do
    removed+=("${all[0]}")
    rm -rf "${dir:?}/base/${all[0]}"
    all=("${all[@]:1}")
  done
  [ ${#removed[@]} -eq 0 ] || echo "removed backups ${removed[*]} (BETJEE_BACKUP_KEEP=$keep)"
  oldest="${all[0]}"
  start=$(info "$oldest" start_wal)
  [ -d "$dir/wal" ] && [ -n "$start" ] || return 0
  before=$(find "$dir/wal" -maxdepth 1 -type f | wc -l)
  as_owner "$bin/pg_archivecleanup" "$dir/wal" "$start"
  for f in "$dir"/wal/*.backup; do
    [ -f "$f" ] || continue
    f=$(basename "$f")
    if [[ "${f:8:16}" < "${start:8:16}" ]]; then rm -f "$dir/wal/$f"; fi
  done
  after=$(find "$dir/wal" -maxdepth 1 -type f | wc -l)
  echo "archive: $after files kept, $((before - after)) removed (those before $start, the first WAL file of the oldest backup kept, $oldest)"
}

backup() {
  local system_id previous name partial started ended finished epoch timezone label start_wal timeline end_lsn segment
  if [ -z "$server_url" ]; then
    previous=$(BETJEE_BACKUP_DIR="" backup_dir)
    if [ "$previous" != "$dir" ] && [ -d "$previous/wal" ]; then
      echo "WAL archiving moves from $previous/wal to $dir/wal: the backups in $previous restore only to times before now"
    fi
    BETJEE_BACKUP_DIR="$dir" start  # the cluster running, its archive_command naming $dir/wal
  fi
  system_id=$(q "select system_identifier from pg_control_system()")
  prepare "$system_id"
  exec 9<"$dir/.lock"
  flock -n 9 || die "another dba/backup.sh is running on $dir"
  rm -rf "$dir"/base/.*.partial

  name=$(date -u +%Y%m%dT%H%M%SZ)
  while [ -e "$dir/base/$name" ]; do sleep 0.2; name=$(date -u +%Y%m%dT%H%M%SZ); done
  partial="$dir/base/.$name.partial"
  trap 'rm -rf "$partial"' EXIT
  as_owner mkdir -m 700 "$partial"
  echo "backing up $source_name into $dir/base/$name"
  as_owner "$bin/pg_basebackup" -d "$sql_url" -D "$partial/data" \
    --format=plain --wal-method=stream --checkpoint="${BETJEE_BACKUP_CHECKPOINT:-fast}" \
    --manifest-checksums=CRC32C --label="betjee $name" --no-password
  # the server's clock once the backup has ended: every commit it holds is at or before this
  ended=$(q "select now(), extract(epoch from now()), current_setting('TimeZone')")
  IFS='|' read -r finished epoch timezone <<< "$ended"
  as_owner "$bin/pg_verifybackup" --quiet "$partial/data"

  label="$partial/data/backup_label"
  started=$(sed -n 's/^START TIME: //p' "$label")
  start_wal=$(sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]*\))$/\1/p' "$label")
  timeline=$(sed -n 's/^START TIMELINE: //p' "$label")
  end_lsn=$(grep -o '"End-LSN": "[0-9A-F/]*"' "$partial/data/backup_manifest" | tail -1 | cut -d'"' -f4)
  as_owner tee "$partial/info" >/dev/null <<INFO
name=$name
source=$source_name
system_id=$system_id
started=$started
finished=$finished
finished_epoch=$epoch
timezone=$timezone
timeline=$timeline
start_wal=$start_wal
end_lsn=$end_lsn
INFO
  as_owner mv -T "$partial" "$dir/base/$name"
  trap - EXIT
  echo "backup $name verified: $(du -sh "$dir/base/$name" | cut -f1); restorable to any time after $finished"

  segment=$(q "select pg_walfile_name('$end_lsn')")
  wait_archived "$segment"
  retain
}

case "${1:-}" in
  "") backup ;;
  --list) list ;;
  *) echo "usage: dba/backup.sh [--list]" >&2; exit 2 ;;
esac
