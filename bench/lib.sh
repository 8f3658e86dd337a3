# shellcheck shell=bash disable=SC2034
# Shared helpers of the benchmarks (bench/s3_bench.sh, model_bench.sh, cache_reload.sh): s3rver
# and the latency proxy on loopback, mounts, timing, and one cleanup trap that unmounts and
# stops everything started through these helpers. Source it; it expects $WORK (a temp dir).
# Not part of Sluice.

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SLUICE=${SLUICE:-$ROOT/build/sluice}
AWS=/usr/bin/aws   # Debian's awscli; the pyenv one earlier in PATH is not the same
PY=/usr/bin/python3  # Debian's python3 with numpy
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1 \
  AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
  AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent
unset AWS_PROFILE AWS_SESSION_TOKEN

BG_PIDS=()    # servers to stop on exit
MOUNTS=()     # mountpoints to unmount on exit

# The model benchmarks' common start: cleanup on exit, the safetensors generator and
# loader (GEN, LOAD) built, and root.
model_bench_start() {
  trap cleanup_all EXIT
  trap 'exit 130' INT TERM
  GEN=$ROOT/build/bench/gen_safetensors
  LOAD=$ROOT/build/bench/load_safetensors
  for b in "$SLUICE" "$GEN" "$LOAD"; do [ -x "$b" ] || die "$b is missing (scripts/build.sh)"; done
  [ "$(id -u)" = 0 ] || die "needs root (drop_caches and mounts)"
}
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# cold_client BUCKET...: drops the page cache (the client under test starts cold), then,
# unless STORE_WARM=0, reads the named buckets' files in s3rver's store ($WORK/s3rver) back
# into it. The object server then serves from memory, as it does for objbench (which
# GETs objects it has just PUT) and as a real object store's read path does not run on
# this VM's one virtual disk: dropping the client's cache on a one-machine rig would
# otherwise chill the server's too, and every network case would pay that disk (about
# 14% of a cold 4 GiB load here, measured in turns) while the raw GET baseline did not.
cold_client() {
  drop_caches
  [ "${STORE_WARM:-1}" = 0 ] && return 0
  local b
  for b in "$@"; do
    [ -d "$WORK/s3rver/$b" ] || die "no bucket '$b' in $WORK/s3rver"
    find "$WORK/s3rver/$b" -type f -print0 | xargs -0 -r cat >/dev/null
  done
}
# cpu_mark, then cpu_split: "SERVERS OTHERS", the CPU seconds used since the mark by the
# servers started here (BG_PIDS: s3rver and the proxy, which share this machine's cores
# with the client under test) and by everything else (the client, the loader, the kernel's
# work for them). Steal and iowait are not counted.
cpu_now() {
  local srv=0 p t
  for p in "${BG_PIDS[@]}"; do
    t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || t=0
    srv=$((srv + t))
  done
  echo "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat) $srv"
}
cpu_mark() { CPU_MARK=$(cpu_now); }
cpu_split() {
  local a b c d hz; hz=$(getconf CLK_TCK)
  read -r a b <<<"$CPU_MARK"; read -r c d <<<"$(cpu_now)"
  awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v hz="$hz" \
    'BEGIN { s = (d - b) / hz; o = (c - a) / hz - s; printf "%.1f %.1f", s, (o > 0 ? o : 0) }'
}
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_port PORT [SECONDS]: until something accepts connections on 127.0.0.1:PORT.
wait_port() {
  local i
  for ((i = 0; i < ${2:-30} * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on port $1"
}
# json_get FIELD.PATH: one value out of the JSON on stdin ("" when absent).
json_get() { $PY -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k, "") if isinstance(v, dict) else ""
print(v)' "$1"; }

# start_s3rver PORT BUCKET: s3rver with its data under $WORK/s3rver.
start_s3rver() {
  mkdir -p "$WORK/s3rver"
  node --openssl-legacy-provider "$ROOT/.tools/node_modules/.bin/s3rver" --directory "$WORK/s3rver" \
    --address 127.0.0.1 --port "$1" --silent --configure-bucket "$2" >"$WORK/s3rver.log" 2>&1 &
  BG_PIDS+=($!)
  wait_port "$1"
}

# start_proxy PORT UPSTREAM_PORT LATENCY_MS BW_MIB: bench/s3_latency_proxy.js.
start_proxy() {
  node "$ROOT/bench/s3_latency_proxy.js" --listen "$1" --upstream "127.0.0.1:$2" \
    --latency-ms "$3" --bw-mib "$4" >"$WORK/proxy.log" 2>&1 &
  BG_PIDS+=($!)
  wait_port "$1"
}
proxy_reset() { curl -sf -X POST "http://127.0.0.1:$1/__reset" >/dev/null; }
proxy_get_bytes() { curl -sf "http://127.0.0.1:$1/__stats" | json_get out.GET; }

# wait_mounted DIR: until DIR is a mountpoint; fails after 30 s.
wait_mounted() {
  local i
  for ((i = 0; i < 300; i++)); do mountpoint -q "$1" && return 0; sleep 0.1; done
  return 1
}
unmount() {
  mountpoint -q "$1" || return 0
  if [ -x "$SLUICE" ] && grep -q " $1 fuse.sluice" /proc/mounts; then
    timeout 120 "$SLUICE" umount "$1" >/dev/null 2>&1 && return 0
  fi
  fusermount -u "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true
  for _ in $(seq 50); do mountpoint -q "$1" || return 0; sleep 0.1; done
}
# peak_rss_mib PID: VmHWM of a process, in MiB ("-" when gone).
peak_rss_mib() {
  awk '/^VmHWM:/ { printf "%.0f", $2 / 1024; found = 1 } END { if (!found) printf "-" }' \
    "/proc/$1/status" 2>/dev/null || echo -
}

cleanup_all() {
  local m p
  for m in "${MOUNTS[@]}"; do unmount "$m"; done
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
