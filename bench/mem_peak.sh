#!/usr/bin/env bash
# Peak memory of a mount under load: formats a throwaway volume (SQLite metadata, file://
# objects) under /var/tmp, mounts it with --buffer-size BUF and a disk cache, writes four
# files of SIZE/4 MiB in parallel, then reads them back in parallel twice (page cache
# dropped before each pass: first from the object store, then from the disk cache), and
# prints the mount process's peak RSS (VmHWM). Needs root (drops the page cache).
#
#   bash bench/mem_peak.sh [SIZE_MIB=3072] [BUF=300M] [extra mount options...]
set -euo pipefail
SIZE=${1:-3072}
BUF=${2:-300M}
shift $(( $# > 2 ? 2 : $# ))
BIN=${SLUICE:-$(dirname "$0")/../build/sluice}
D=$(mktemp -d /var/tmp/sluice-mem.XXXXXX)
cleanup() {
  "$BIN" umount "$D/mnt" >/dev/null 2>&1 || umount -l "$D/mnt" 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT
"$BIN" format "sqlite3://$D/meta.db" memvol --storage "file://$D/objects" >/dev/null
mkdir "$D/mnt"
out=$("$BIN" mount "sqlite3://$D/meta.db" "$D/mnt" --buffer-size "$BUF" \
      --cache-dir "$D/cache" --log "$D/mount.log" "$@")
pid=$(sed -n 's/.*(pid \([0-9]*\),.*/\1/p' <<<"$out")
per=$((SIZE / 4))
for i in 1 2 3 4; do
  dd if=/dev/urandom of="$D/mnt/f$i" bs=1M count=$per status=none &
done
wait
sync
rm -rf "$D"/cache/*  # written blocks were cached: make the first pass read the store
for pass in store disk; do
  echo 3 >/proc/sys/vm/drop_caches
  for i in 1 2 3 4; do cat "$D/mnt/f$i" >/dev/null & done
  wait
done
grep VmHWM "/proc/$pid/status" | awk -v b="$BUF" -v s="$SIZE" \
  '{printf "peak RSS %d MiB (--buffer-size %s, %d MiB written and read twice)\n", $2/1024, b, s}'
