#!/usr/bin/env bash
# File-system benchmark of issue #2: sequential write and read of a large file (read cold
# and warm) and create/stat/unlink rates of small files, on a Sluice mount beside the same
# run on a local directory. Prints a table with the ratio Sluice/local for each figure.
#
#   bench/fs_bench.sh [SIZE_MB=4096] [FILES=10000]
#
# Needs root (drop_caches, mounts) and a built tree (scripts/build.sh). It formats a
# throwaway volume under $BENCH_DIR (default /var/tmp/sluice-bench) and removes it after.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-4096}
FILES=${2:-10000}
SLUICE=$PWD/build/sluice
SMALL=$PWD/build/bench/smallfiles
WORK=${BENCH_DIR:-/var/tmp/sluice-bench}
rm -rf "$WORK"; mkdir -p "$WORK/local" "$WORK/mnt"
META="sqlite3://$WORK/meta.db"
"$SLUICE" format "$META" bench --storage "file://$WORK/objects" >/dev/null
# --cache-size 0: the cold read measures the object store path, not the local disk cache.
mount_it() { "$SLUICE" mount "$META" "$WORK/mnt" --log "$WORK/mount.log" --cache-size 0 "$@"; }
cleanup() { "$SLUICE" umount "$WORK/mnt" 2>/dev/null || umount -l "$WORK/mnt" 2>/dev/null || true; }
trap cleanup EXIT
mount_it

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# MB/s of a dd run, from its own byte count and elapsed time.
rate() { awk -v mb="$SIZE_MB" -v s="$1" 'BEGIN { printf "%.0f", mb / s }'; }
timed() { local t0=$(date +%s.%N); "$@" >/dev/null 2>&1; local t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }

declare -A R
for target in local sluice; do
  dir="$WORK/local"; [ $target = sluice ] && dir="$WORK/mnt"
  drop
  R[$target.write]=$(rate "$(timed dd if=/dev/zero of="$dir/big" bs=1M count="$SIZE_MB" conv=fsync)")
  if [ $target = sluice ]; then cleanup; mount_it; fi  # empty the mount's memory cache
  drop
  R[$target.cold]=$(rate "$(timed dd if="$dir/big" of=/dev/null bs=1M)")
  R[$target.warm]=$(rate "$(timed dd if="$dir/big" of=/dev/null bs=1M)")
  rm -f "$dir/big"
  read -r _ _ c s u < <("$SMALL" "$dir" "$FILES" | tr '=' ' ' | awk '{print $1, $2, $6, $8, $10}' | sed 's#/s##g')
  R[$target.create]=$c; R[$target.stat]=$s; R[$target.unlink]=$u
done

printf "%-28s %12s %12s %8s\n" "figure" "local" "sluice" "ratio"
for k in write:"seq write ${SIZE_MB} MiB (MB/s)" cold:"seq read cold (MB/s)" warm:"seq read warm (MB/s)" \
         create:"create ${FILES} files (/s)" stat:"stat (/s)" unlink:"unlink (/s)"; do
  key=${k%%:*}; label=${k#*:}
  l=${R[local.$key]}; s=${R[sluice.$key]}
  printf "%-28s %12s %12s %8s\n" "$label" "$l" "$s" "$(awk -v a="$s" -v b="$l" 'BEGIN{printf "%.2f", a/b}')"
done
