#!/usr/bin/env bash
# The archive_command of the embedded cluster (scripts/cluster.sh), usable on any server:
#   archive_command = '"/path/to/dba/archive_wal.sh" "/backups/wal" "%p" "%f" "SYSTEM_ID"'
# Copies one finished WAL file into ARCHIVE (durably: a temporary name, fsync, rename, fsync of
# the folder) and answers 0 only once it is there. While ARCHIVE's parent, the backups folder,
# does not exist, nobody takes backups: the file is not kept and the answer is 0, so PostgreSQL
# recycles it (no WAL piles up). A backups folder without its ARCHIVE (an unmounted disk, a
# folder made by hand) or an ARCHIVE of another cluster (its SYSTEM_ID file names another
# system identifier) is refused: PostgreSQL keeps the file and retries, and says why in its log.
# A file archived before is accepted again only with the same contents.
set -euo pipefail
archive="$1" path="$2" file="$3" system_id="${4:-}"

[ -d "$(dirname "$archive")" ] || exit 0
if [ ! -d "$archive" ]; then
  echo "archive_wal: $archive is missing (the backups folder exists): $file kept until it is there" >&2
  exit 1
fi
if [ -n "$system_id" ] && [ -f "$archive/SYSTEM_ID" ] && [ "$(cat "$archive/SYSTEM_ID")" != "$system_id" ]; then
  echo "archive_wal: $archive holds the WAL of cluster $(cat "$archive/SYSTEM_ID"), not of $system_id" >&2
  exit 1
fi
if [ -e "$archive/$file" ]; then
  if cmp -s "$path" "$archive/$file"; then exit 0; fi
  echo "archive_wal: $archive/$file exists with other contents" >&2
  exit 1
fi
tmp="$archive/.$file.tmp"
cp "$path" "$tmp"
sync "$tmp"
mv "$tmp" "$archive/$file"
sync "$archive"
