#!/usr/bin/env bash
# Warmup turns: `sluice warmup` of a synthetic safetensors model on s3rver behind the
# latency proxy, on a fresh mount with an empty disk cache, without and with
# --passthrough (block files, or the whole-file copies that replace them), in turns; after
# each warmup a remount without --passthrough, the page cache dropped, loads the model in
# header order through FUSE, from the block files or from the copies. Per turn it prints
# the warmup's seconds, the disk cache's size after it and the number of copies, and the
# load's seconds.
#
#   bench/warmup_turns.sh [SIZE_MIB=2048]
#
# Environment: RUNS (3 turns), THREADS (warmup -p, 16), LATENCY_MS (20), BW_MIB (100),
# BENCH_DIR (/var/tmp), KEEP_WORK=1. Needs root, node with s3rver in .tools/ and a built
# tree. Not a test: model_bench.sh is the benchmark of record.
set -euo pipefail
SIZE_MIB=${1:-2048}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sluice-warmup-turns.XXXXXX")
source "$ROOT/bench/lib.sh"
model_bench_start

S3PORT=$(free_port); start_s3rver "$S3PORT" models
PPORT=$(free_port); start_proxy "$PPORT" "$S3PORT" "${LATENCY_MS:-20}" "${BW_MIB:-100}"
wait_port "$S3PORT"; wait_port "$PPORT"
log "generating a $SIZE_MIB MiB model and writing it through a mount"
"$GEN" "$WORK/local" --size-mib "$SIZE_MIB" >/dev/null
SMETA="sqlite3://$WORK/meta.db"; SMNT=$WORK/mnt; mkdir -p "$SMNT"; MOUNTS+=("$SMNT")
"$SLUICE" format "$SMETA" models --storage "s3+http://127.0.0.1:$PPORT/volume" >/dev/null
"$SLUICE" mount "$SMETA" "$SMNT" --cache-size 0 --log "$WORK/write.log" >/dev/null
cp -r "$WORK/local" "$SMNT/model"; unmount "$SMNT"; rm -rf "$WORK/local"

mount_cached() {
  "$SLUICE" mount "$SMETA" "$SMNT" --cache-dir "$WORK/cache" \
    --cache-size "$((SIZE_MIB * 2))M" --log "$WORK/mount.log" "$@" >/dev/null
}
printf '%-5s %-14s %10s %12s %7s %10s\n' turn warmup seconds "cache MiB" copies "load s"
for r in $(seq 1 "${RUNS:-3}"); do
  for opt in "" --passthrough; do
    rm -rf "$WORK/cache"; cold_client volume
    mount_cached $opt
    t0=$(now); "$SLUICE" warmup "$SMNT/model" -p "${THREADS:-16}" >/dev/null; secs=$(elapsed "$t0")
    unmount "$SMNT"
    mib=$(du -sm "$WORK/cache" | cut -f1)
    copies=$(find "$WORK/cache" -name '~copy*' -type f | wc -l)
    mount_cached; drop_caches
    load=$("$LOAD" order "$SMNT/model" | json_get seconds)
    unmount "$SMNT"
    printf '%-5s %-14s %10s %12s %7s %10s\n' "$r" "${opt:-blocks}" "$secs" "$mib" "$copies" "$load"
  done
done
