#!/usr/bin/env bash
# Reloading a model from the disk cache (issue "Model loading": reads served from the disk
# cache avoid copies). A model switch back to a model this node loaded before: its blocks
# are in the disk cache, gone from memory and from the page cache. Loads the synthetic
# model (bench/gen_safetensors) in header order with bench/load_safetensors:
#   - local directory, page cache dropped (the baseline: the disk's speed);
#   - Sluice, in the mount that loaded it first (blocks trusted), page cache dropped,
#     with --verify-cache-checksum full (every block read into memory and verified) and
#     once (the default: read from the cache files, spliced where pipes allow);
#   - Sluice after a remount: once verifies each block again, none does not.
# Prints GB/s, the ratio to the local directory, and the mount process's CPU seconds.
#
#   bench/cache_reload.sh [SIZE_MIB=2048]
#
# Each case runs REPEAT times, in turns with the others; the table gives the median run
# (GB/s, and the mount's CPU in that run) and the range. The first local load of a run is
# often far faster than the others (a virtual disk's host cache still holding the freshly
# generated files), which is why the median and not the best counts.
#
# Environment: REPEAT (3), BENCH_DIR (/var/tmp),
# BUFFER (--buffer-size, 300M). Needs root (drop_caches, mounts) and a built tree.
set -euo pipefail
SIZE_MIB=${1:-2048}
REPEAT=${REPEAT:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sluice-reload.XXXXXX")
source "$ROOT/bench/lib.sh"
model_bench_start

LOCAL=$WORK/local
mkdir -p "$LOCAL"
log "generating a $SIZE_MIB MiB model"
"$GEN" "$LOCAL" --size-mib "$SIZE_MIB" >/dev/null
META="sqlite3://$WORK/vol.db"
MNT=$WORK/mnt
mkdir -p "$MNT"
MOUNTS+=("$MNT")
"$SLUICE" format "$META" models --storage "file://$WORK/objects" >/dev/null
"$SLUICE" mount "$META" "$MNT" --log "$WORK/mount.log" --cache-size 0 >/dev/null
cp -r "$LOCAL" "$MNT/model"
"$SLUICE" umount "$MNT"

cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
mount_it() {
  "$SLUICE" mount "$META" "$MNT" --log "$WORK/mount.log" --cache-dir "$WORK/cache" \
    --buffer-size "${BUFFER:-300M}" "$@" >/dev/null
  MPID=$(pgrep -n -f -- "mount $META $MNT")
}
# load DIR: one header-order load after dropping the page cache; sets GBS and CPU (the
# mount's CPU seconds during it, when a mount is up).
load() {
  drop_caches
  local c0=0
  [ -n "${MPID:-}" ] && c0=$(cpu "$MPID")
  GBS=$(json_get gb_per_s <<<"$("$LOAD" order "$1")")
  CPU=-
  [ -n "${MPID:-}" ] && CPU=$(awk -v a="$c0" -v b="$(cpu "$MPID")" 'BEGIN { printf "%.2f", b - a }')
  return 0
}
declare -A RUNS  # case -> "GBS CPU" lines
record() {
  RUNS[$1]+="$GBS $CPU"$'\n'
  log "$1: $GBS GB/s, mount cpu $CPU s"
}
for r in $(seq "$REPEAT"); do
  MPID=
  load "$LOCAL"; record "local directory"
  for v in full once; do
    rm -rf "$WORK/cache"
    mount_it --verify-cache-checksum "$v"
    "$SLUICE" warmup "$MNT/model" >/dev/null  # the whole model into the disk cache
    load "$MNT/model"; record "same mount, $v"
    "$SLUICE" umount "$MNT"
  done
  for v in once none; do
    mount_it --verify-cache-checksum "$v"
    load "$MNT/model"; record "remounted, $v"
    "$SLUICE" umount "$MNT"
  done
done

median() {  # case -> "GBS CPU MIN MAX" of its median run
  printf '%s' "${RUNS[$1]}" | sort -g | awk '{ g[NR] = $1; c[NR] = $2 }
    END { m = int((NR + 1) / 2); print g[m], c[m], g[1], g[NR] }'
}
read -r base _ _ _ <<<"$(median "local directory")"
printf '\n| case (%s MiB, page cache dropped; median of %s) | GB/s | range | × local | mount CPU s |\n|---|---|---|---|---|\n' \
  "$SIZE_MIB" "$REPEAT"
for c in "local directory" "same mount, full" "same mount, once" "remounted, once" "remounted, none"; do
  read -r g cpu lo hi <<<"$(median "$c")"
  printf '| %s | %s | %s–%s | %s | %s |\n' "$c" "$g" "$lo" "$hi" \
    "$(awk -v a="$g" -v b="$base" 'BEGIN { printf "%.2f", a / b }')" "$cpu"
done
