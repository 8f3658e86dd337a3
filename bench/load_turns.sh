#!/usr/bin/env bash
# Load turns (read-path work): a synthetic safetensors model on s3rver behind the latency
# proxy, loaded by bench/load_safetensors in turns, each load on a fresh mount of its own,
# so that a change can be measured against header order, or against another build, on
# the same machine minutes apart. Per load it prints seconds, GB/s, the GETs and bytes the
# proxy served (with the GETs in flight: mean/most at once), the mount's CPU seconds, its
# page faults (minor) and its peak RSS (VmHWM: since the mount started, a mount per load);
# per turn, each mode's speed over header order's (of the same binary). With each load, the
# CPU seconds s3rver and the proxy used (servers CPU) and the seconds the machine's cores
# sat idle, which say whether the load was bound by the CPU they all share.
#
#   bench/load_turns.sh [SIZE_MIB=4096]
#
# Environment: MODES ("order shuffle"; any of order shuffle lazy), RUNS (3 turns), CACHE
# (cold: an empty disk cache per load; warm: the disk cache filled once by `sluice
# warmup`, then the page cache dropped before each load), BINS (sluice binaries to compare,
# each loading in every turn; default build/sluice), DROP (1: drop the page cache before
# each load; 0: keep it, so that a warm disk cache's files stay in memory, as on a node
# whose mount restarts; with CACHE=cold the object server's files are then read back into
# memory unless STORE_WARM=0, as bench/lib.sh cold_client says), EXTRA (mount options), LATENCY_MS
# (20), BW_MIB (100), BENCH_DIR (/var/tmp), KEEP_WORK=1. Needs root, node with s3rver in
# .tools/ and a built tree. Not a test: model_bench.sh is the benchmark of record.
set -euo pipefail
SIZE_MIB=${1:-4096}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sluice-turns.XXXXXX")
source "$ROOT/bench/lib.sh"
model_bench_start
CACHE=${CACHE:-cold}
[[ $CACHE == cold || $CACHE == warm ]] || die "CACHE must be cold or warm, not '$CACHE'"
read -r -a BINS <<<"${BINS:-$SLUICE}"
for b in "${BINS[@]}"; do [ -x "$b" ] || die "$b is not an executable"; done

S3PORT=$(free_port); start_s3rver "$S3PORT" models
PPORT=$(free_port); start_proxy "$PPORT" "$S3PORT" "${LATENCY_MS:-20}" "${BW_MIB:-100}"
log "generating a $SIZE_MIB MiB model and writing it through a mount"
"$GEN" "$WORK/local" --size-mib "$SIZE_MIB" >&2
SMETA="sqlite3://$WORK/meta.db"; SMNT=$WORK/mnt; mkdir -p "$SMNT"; MOUNTS+=("$SMNT")
"$SLUICE" format "$SMETA" models --storage "s3+http://127.0.0.1:$PPORT/volume" >/dev/null
# No disk cache for the copy: its blocks would fill one outside $WORK.
"$SLUICE" mount "$SMETA" "$SMNT" --log "$WORK/write.log" --cache-size 0 >/dev/null
cp -r "$WORK/local" "$SMNT/model"
unmount "$SMNT"

# mount_with BIN: mounts the volume with the disk cache in $WORK/cache; sets MPID.
mount_with() {
  local out
  # shellcheck disable=SC2086  # EXTRA is a list of options
  out=$("$1" mount "$SMETA" "$SMNT" --log "$WORK/mount.log" --cache-dir "$WORK/cache" \
    --cache-size "$((SIZE_MIB * 2))M" ${EXTRA:-}) || die "mount failed (see $WORK/mount.log)"
  MPID=$(sed -n 's/.*(pid \([0-9]*\).*/\1/p' <<<"$out")
}
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
faults_of() { awk '{ print $10 }' "/proc/$1/stat"; }
peak_mib_of() { awk '/^VmHWM:/ { print int($2 / 1024) }' "/proc/$1/status"; }
# The machine's idle ticks, all cores (iowait not counted): near 0 over a load means the
# load was bound by the CPU that the mount, the loader, s3rver and the proxy share.
idle_ticks() { awk '/^cpu / { print $5 }' /proc/stat; }

if [ "$CACHE" = warm ]; then  # each binary's cache format is the same: fill it once
  log "filling the disk cache"
  mount_with "${BINS[0]}"; "${BINS[0]}" warmup "$SMNT/model" >/dev/null; unmount "$SMNT"
fi
declare -A ORDER_S
for ((r = 1; r <= ${RUNS:-3}; r++)); do
  for b in "${BINS[@]}"; do
    for m in ${MODES:-order shuffle}; do
      [ "$CACHE" = warm ] || rm -rf "$WORK/cache"
      if [ "${DROP:-1}" = 1 ]; then
        if [ "$CACHE" = cold ]; then cold_client volume; else drop_caches; fi
      fi
      mount_with "$b"; proxy_reset "$PPORT"
      c0=$(cpu_of "$MPID"); f0=$(faults_of "$MPID"); cpu_mark; i0=$(idle_ticks)
      json=$("$LOAD" "$m" "$SMNT/model")
      c1=$(cpu_of "$MPID"); split=$(cpu_split); i1=$(idle_ticks)
      f1=$(faults_of "$MPID"); peak=$(peak_mib_of "$MPID")
      stats=$(curl -sf "http://127.0.0.1:$PPORT/__stats")
      unmount "$SMNT"
      secs=$(json_get seconds <<<"$json"); touched=$(json_get bytes_touched <<<"$json")
      gets=$(json_get requests.GET <<<"$stats"); bytes=$(json_get out.GET <<<"$stats")
      inflight="$(json_get inflight.mean <<<"$stats")/$(json_get inflight.max <<<"$stats")"
      [ "$m" = order ] && ORDER_S[$b]=$secs
      ratio=$(awk -v o="${ORDER_S[$b]:-0}" -v s="$secs" -v m="$m" \
        'BEGIN { if (m == "shuffle" && o > 0) printf " %.2f x order", o / s }')
      printf '%s turn %d %-7s %7.2f s %6.3f GB/s  GETs %5s (in flight %s)  fetched/touched %.2f  mount CPU %.1f s (faults %d, peak %d MiB)  servers CPU %s s  idle %.1f s%s\n' \
        "$b" "$r" "$m" "$secs" \
        "$(awk -v t="$touched" -v s="$secs" 'BEGIN { print t / s / 1e9 }')" "${gets:-0}" "$inflight" \
        "$(awk -v f="${bytes:-0}" -v t="$touched" 'BEGIN { print (t > 0 ? f / t : 0) }')" \
        "$(awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { print c / hz }')" \
        $((f1 - f0)) "$peak" "${split%% *}" \
        "$(awk -v c=$((i1 - i0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { print c / hz }')" "$ratio"
    done
  done
done
