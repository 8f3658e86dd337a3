#!/usr/bin/env bash
# Quick start on a fresh machine: installs what is needed, builds, formats a default
# volume (SQLite metadata + a local object directory), mounts it, and shows it working.
# Safe to run again: an existing volume is reused and a previous mount is replaced.
#   SLUICE_HOME  where the volume lives (default ~/.sluice/quickstart)
#   SLUICE_MNT   where it is mounted   (default /tmp/sluice)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "== building"
bash scripts/build.sh >/dev/null
SLUICE=$PWD/build/sluice
HOME_DIR=${SLUICE_HOME:-$HOME/.sluice/quickstart}
MNT=${SLUICE_MNT:-/tmp/sluice}
META="sqlite3://$HOME_DIR/meta.db"
STORAGE="file://$HOME_DIR/objects"
mkdir -p "$HOME_DIR" "$MNT"

if grep -qs " $MNT fuse.sluice " /proc/mounts; then
  "$SLUICE" umount "$MNT"
fi
if ! "$SLUICE" status "$META" >/dev/null 2>&1; then
  echo "== formatting volume 'quickstart' ($META, data in $STORAGE)"
  "$SLUICE" format "$META" quickstart --storage "$STORAGE"
fi
echo "== mounting at $MNT"
"$SLUICE" mount "$META" "$MNT" --log "$HOME_DIR/mount.log"

echo "== writing and reading back a file"
head -c 10M /dev/urandom > "$HOME_DIR/sample.bin"
cp "$HOME_DIR/sample.bin" "$MNT/sample.bin"
echo "hello from sluice" > "$MNT/hello.txt"
cat "$MNT/hello.txt"
cmp "$HOME_DIR/sample.bin" "$MNT/sample.bin" && echo "10 MiB file read back intact"
ls -l "$MNT"
echo "== sluice info $MNT/sample.bin"
"$SLUICE" info "$MNT/sample.bin"
echo "== sluice status"
"$SLUICE" status "$META"
echo
echo "Sluice is mounted at $MNT. Unmount with: $SLUICE umount $MNT"
