#!/usr/bin/env bash
# Model-loading benchmark (issue "Model loading"): loads a synthetic safetensors model
# (bench/gen_safetensors) with inference-server-like loaders (bench/load_safetensors,
# bench/load_numpy.py) from a local directory, after `aws s3 cp`, through s3fs-fuse,
# rclone mount and Sluice, all on one s3rver behind bench/s3_latency_proxy.js, and prints
# seconds and GB/s of each case beside its baseline from the same run, the bytes fetched
# from the object store per byte touched, and the peak memory of the mount process.
#
#   bench/model_bench.sh [SIZE_MIB=4096]        (512 is a quick check)
#
# Environment: LATENCY_MS (proxy first-byte latency, 20), BW_MIB (proxy cap per connection,
# MiB/s, 100; 0 = none), CASE_TIMEOUT (seconds per case, 1800), OBJBENCH_COUNT (256 objects of 4 MiB: 1 GiB),
# COLD_RUNS (3: rounds of raw GET, aws cp, s3fs and Sluice's cold shuffled and order
# loads, in turns; each reports its best run), RCLONE_RUNS (1: rounds that include rclone),
# STORE_WARM (1: before each network case, after the client's page cache is dropped, the
# object server's files are read back into memory, as for the raw GET baseline; 0: not),
# WARMUP_THREADS (16, the CLI default), BENCH_DIR (/var/tmp), KEEP_WORK=1 (keep the temp dir), REPEAT (3:
# runs of the warm disk cache cases, header order and shuffled, and of a local baseline
# beside them, in turns; the best of each counts: the local disk's speed swings from run
# to run; and of each page-cache-warm case, best of REPEAT),
# ONLY="lazy shuffle ..." (run just these loaders, on the local directory and cold on
# Sluice; no objbench, aws, s3fs, rclone, warmup or disk-cache cases; default: everything).
# CACHE_SIZE (the mounts' --cache-size: 2 x the model).
# Where the build has `mount --passthrough`, warmup runs on a mount with it (so it makes
# each file's whole copy, docs/cache.md "Passthrough"), and the warm disk cache loads run
# both without it and with it, in the same turns.
#
# Cases that need Sluice features not in this build (--cache-dir, `sluice warmup`) print
# "skipped: needs ...". Needs root (drop_caches, mounts), node, s3rver in .tools/, awscli,
# s3fs, rclone and a built tree (build/sluice, build/bench/*). Everything is unmounted,
# stopped and removed on exit.
set -euo pipefail
SIZE_MIB=${1:-4096}
LATENCY_MS=${LATENCY_MS:-20}
BW_MIB=${BW_MIB:-100}
CASE_TIMEOUT=${CASE_TIMEOUT:-1800}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sluice-modelbench.XXXXXX")
source "$ROOT/bench/lib.sh"
model_bench_start

HAVE_CACHE_DIR=false; HAVE_WARMUP=false; HAVE_PASSTHROUGH=false
# grep without -q: an early exit would SIGPIPE the writer and fail the pipeline (pipefail).
"$SLUICE" mount --help 2>/dev/null | grep -- --cache-dir >/dev/null && HAVE_CACHE_DIR=true
"$SLUICE" mount --help 2>/dev/null | grep -- --passthrough >/dev/null && HAVE_PASSTHROUGH=true
# Options of the next sluice_mount beyond the cache's (--passthrough for the cases that
# use the whole-file copies warmup makes).
MOUNT_EXTRA=()
"$SLUICE" warmup --help >/dev/null 2>&1 && HAVE_WARMUP=true

# ---- servers and the model -------------------------------------------------------------
S3PORT=$(free_port); start_s3rver "$S3PORT" models
PPORT=$(free_port); start_proxy "$PPORT" "$S3PORT" "$LATENCY_MS" "$BW_MIB"
PROXY=http://127.0.0.1:$PPORT
log "s3rver :$S3PORT, proxy :$PPORT (${LATENCY_MS} ms, ${BW_MIB} MiB/s per connection), work $WORK"

LOCAL=$WORK/local; mkdir -p "$LOCAL"
log "generating a $SIZE_MIB MiB model"
"$GEN" "$LOCAL" --size-mib "$SIZE_MIB" >&2
"$LOAD" check "$LOCAL" >&2 || die "generated model fails the header check"
log "uploading it as plain objects (s3://models/model/)"
"$AWS" --endpoint-url "http://127.0.0.1:$S3PORT" s3 cp --only-show-errors --recursive "$LOCAL" s3://models/model/

SMETA="sqlite3://$WORK/vol.db"
SMNT=$WORK/sluice; mkdir -p "$SMNT"; MOUNTS+=("$SMNT")
SPID=
sluice_mount() {
  local extra=()
  if $HAVE_CACHE_DIR; then
    # Room for the blocks, twice over (warmup with passthrough fills a fresh cache with
    # the whole-file copies instead).
    local times=2
    extra=(--cache-dir "$WORK/cache" --cache-size "${CACHE_SIZE:-$((SIZE_MIB * times))M}")
  fi
  extra+=(${MOUNT_EXTRA[@]+"${MOUNT_EXTRA[@]}"})
  local out  # "mounted volume 'models' at DIR (pid N, log FILE)"
  out=$(timeout 120 "$SLUICE" mount "$SMETA" "$SMNT" --log "$WORK/sluice-mount.log" "${extra[@]}") ||
    die "sluice mount failed (see $WORK/sluice-mount.log; KEEP_WORK=1 keeps it)"
  SPID=$(sed -n 's/.*(pid \([0-9]*\).*/\1/p' <<<"$out")
  [ -n "$SPID" ] || SPID=$(pgrep -n -f -- "mount $SMETA $SMNT") || die "no sluice mount process"
}
sluice_fresh() { unmount "$SMNT"; rm -rf "$WORK/cache"; cold_client volume; sluice_mount; }
log "writing the Sluice copy through a mount (s3+http://proxy/volume)"
"$SLUICE" format "$SMETA" models --storage "s3+http://127.0.0.1:$PPORT/volume" >/dev/null
sluice_mount
t0=$(now); timeout "$CASE_TIMEOUT" cp -r "$LOCAL" "$SMNT/model"; sync
log "written in $(elapsed "$t0") s"
unmount "$SMNT"

# ---- measuring -------------------------------------------------------------------------
CASES=()
declare -A SECS GBPS BASE FETCH RSS NOTE TOUCHED SUM MODE CPU
# load WHAT DIR: one loader run, its JSON line on stdout.
load() {
  case $1 in
    order | shuffle | lazy) timeout "$CASE_TIMEOUT" "$LOAD" "$1" "$2" ;;
    numpy) timeout "$CASE_TIMEOUT" "$PY" "$ROOT/bench/load_numpy.py" "$2" ;;
    4x)  # four order loaders at once; wall time, total bytes
      local t0 i pids=() bytes=0 j
      t0=$(now)
      for i in 1 2 3 4; do timeout "$CASE_TIMEOUT" "$LOAD" order "$2" >"$WORK/4x.$i" & pids+=($!); done
      for i in "${pids[@]}"; do wait "$i" || return 1; done
      local secs; secs=$(elapsed "$t0")
      for i in 1 2 3 4; do j=$(json_get bytes_touched <"$WORK/4x.$i"); bytes=$((bytes + j)); done
      printf '{"seconds":%s,"bytes_touched":%s,"checksum":"%s"}\n' "$secs" "$bytes" \
        "$(json_get checksum <"$WORK/4x.1")"
      ;;
  esac
}
# record NAME BASELINE JSON [FETCHED] [RSS] [SECONDS] [CPU]: one table row; CPU is
# "SERVERS OTHERS" (cpu_split; default: $LAST_CPU, which measure sets).
record() {
  local name=$1 json=$3
  CASES+=("$name"); BASE[$name]=$2
  SECS[$name]=${6:-$(json_get seconds <<<"$json")}
  TOUCHED[$name]=$(json_get bytes_touched <<<"$json")
  SUM[$name]=$(json_get checksum <<<"$json")
  GBPS[$name]=$(awk -v b="${TOUCHED[$name]}" -v s="${SECS[$name]}" 'BEGIN { printf "%.3f", (s > 0 ? b / s / 1e9 : 0) }')
  FETCH[$name]=${4:-}; RSS[$name]=${5:--}; CPU[$name]=${7:-${LAST_CPU:-- -}}; LAST_CPU=""
  log "$name: ${SECS[$name]} s, ${GBPS[$name]} GB/s"
}
skip() { CASES+=("$1"); NOTE[$1]="skipped: $2"; log "$1 skipped: $2"; }
# faster JSON_A JSON_B: the loader result with fewer seconds (A may be empty).
faster() {
  if [ -z "$1" ]; then echo "$2"; return; fi
  if awk -v a="$(json_get seconds <<<"$1")" -v b="$(json_get seconds <<<"$2")" 'BEGIN { exit !(b < a) }'; then
    echo "$2"
  else
    echo "$1"
  fi
}
# measure NAME BASELINE WHAT DIR [PID]: proxy counters reset, one load, one row.
measure() { measure_n 1 "$@"; }
# measure_best NAME BASELINE WHAT DIR [PID]: the same over REPEAT loads, the best one (for
# loads from the page cache: a fraction of a second at 4 GiB, where one run is mostly noise).
measure_best() { measure_n "${REPEAT:-3}" "$@"; }
measure_n() {
  local runs=$1 json="" j fetched="" i
  shift
  MODE[$1]=$3
  proxy_reset "$PPORT"; cpu_mark
  for ((i = 0; i < runs; i++)); do
    j=$(load "$3" "$4") && json=$(faster "$json" "$j")
  done
  if [ -z "$json" ]; then NOTE[$1]="failed (see log)"; CASES+=("$1"); return 0; fi
  LAST_CPU=$(cpu_split)
  ((runs == 1)) || LAST_CPU=""  # summed over the runs: not shown
  fetched=$(proxy_get_bytes "$PPORT")
  record "$1" "$2" "$json" "${fetched:-0}" "$([ -n "${5:-}" ] && peak_rss_mib "$5" || echo -)"
}

ONLY=${ONLY:-}
# wanted W: whether loader W runs (every loader unless ONLY names some).
wanted() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
log "local directory"
for w in order shuffle lazy numpy 4x; do
  wanted "$w" || continue
  drop_caches; measure "local $w" "" "$w" "$LOCAL"
  if [ $w = order ]; then measure_best "local order, page cache warm" "" order "$LOCAL"; fi
done
for c in "${!FETCH[@]}"; do FETCH[$c]=""; done   # the local cases fetch nothing

RAW_GBPS=0; RAW_RUNS=""
# objbench_once: one raw parallel-GET measurement through the proxy (sluice objbench); the
# best run is the baseline (the strictest for Sluice).
objbench_once() {
  local g
  "$SLUICE" objbench "s3+http://127.0.0.1:$PPORT/volume/objbench?access_key=S3RVER&secret_key=S3RVER" \
    --threads 16 --count "${OBJBENCH_COUNT:-256}" --json >"$WORK/objbench.json"
  g=$($PY -c 'import json,sys
r=[r for r in json.load(open(sys.argv[1]))["results"] if r["operation"]=="get" and r["object_size"]==4<<20][0]
print("%.3f" % (r["mib_per_s"] * 1048576 / 1e9))' "$WORK/objbench.json")
  log "  raw parallel GET (objbench): $g GB/s"
  RAW_RUNS+="${RAW_RUNS:+, }$g"
  RAW_GBPS=$(awk -v a="$RAW_GBPS" -v b="$g" 'BEGIN { print (b > a ? b : a) }')
}

# ---- cold loads against the network baselines, in turns ----------------------------------
# aws s3 cp then load, s3fs, rclone and Sluice's cold loads (header order, and shuffled,
# whose target is a ratio to it) are the cases the cold targets compare. One cold run of
# each swings by a fifth or more from run to run here (the two cores are shared with
# s3rver, the proxy and the host's other guests), so each runs COLD_RUNS times in turns
# and reports its fastest run, as the raw GET baseline does; the table's last column lists
# every run's GB/s. A raw GET measurement (objbench) opens each round. rclone, four times
# slower than the others in every run so far, runs once unless RCLONE_RUNS says otherwise.
declare -A CBEST CFETCH CRUNS CPEAK CCPU RUNS
# cold_run NAME PIDCMD FUNC...: one run of a cold case. FUNC prints the loader's JSON line
# (its seconds: the whole case); keeps NAME's fastest run, its GET bytes and CPU, and the
# peak RSS of the process PIDCMD names ("" for none).
cold_run() {
  local name=$1 pidcmd=$2 j f g p c; shift 2
  proxy_reset "$PPORT"; cpu_mark
  if ! "$@" >"$WORK/run.json"; then CRUNS[$name]+="${CRUNS[$name]:+, }failed"; return 0; fi
  c=$(cpu_split)
  j=$(cat "$WORK/run.json"); f=$(proxy_get_bytes "$PPORT")
  g=$(awk -v b="$(json_get bytes_touched <<<"$j")" -v s="$(json_get seconds <<<"$j")" \
    'BEGIN { printf "%.3f", (s > 0 ? b / s / 1e9 : 0) }')
  log "  $name: $g GB/s"
  CRUNS[$name]+="${CRUNS[$name]:+, }$g"
  if [ "$(faster "${CBEST[$name]:-}" "$j")" = "$j" ]; then CBEST[$name]=$j; CFETCH[$name]=$f; CCPU[$name]=$c; fi
  if [ -n "$pidcmd" ]; then
    p=$(peak_rss_mib "$($pidcmd)")
    if [[ $p =~ ^[0-9]+$ ]] && ((p > ${CPEAK[$name]:-0})); then CPEAK[$name]=$p; fi
  fi
}
# cold_record NAME BASELINE [LOADER]: the table row of NAME's fastest run.
cold_record() {
  if [ -z "${CBEST[$1]:-}" ]; then skip "$1" "failed (see log)"; return; fi
  MODE[$1]=${3:-order}
  record "$1" "$2" "${CBEST[$1]}" "${CFETCH[$1]}" "${CPEAK[$1]:--}" "" "${CCPU[$1]}"
  RUNS[$1]=${CRUNS[$1]}
}

aws_once() {
  local t0 j
  cold_client models; rm -rf "$WORK/dl"; cpu_mark; t0=$(now)
  timeout "$CASE_TIMEOUT" "$AWS" --endpoint-url "$PROXY" s3 cp --only-show-errors --recursive \
    s3://models/model/ "$WORK/dl" >&2 || return 1
  j=$(load order "$WORK/dl") || return 1
  # The case's time is the download and the load.
  printf '{"seconds":%s,"bytes_touched":%s,"checksum":"%s"}\n' "$(elapsed "$t0")" \
    "$(json_get bytes_touched <<<"$j")" "$(json_get checksum <<<"$j")"
  rm -rf "$WORK/dl"
}
S3FS=$WORK/s3fs; RCL=$WORK/rclone; HAVE_S3FS=false; HAVE_RCLONE=false
s3fs_mount() {
  s3fs models:/model "$S3FS" -o url="$PROXY" -o use_path_request_style -o endpoint=us-east-1 \
    -o passwd_file="$WORK/s3fs.passwd" -o ro 2>"$WORK/s3fs.log" && wait_mounted "$S3FS"
}
s3fs_pid() { pgrep -n -f -- "s3fs .*$S3FS" || true; }
s3fs_once() { cold_client models; cpu_mark; load order "$S3FS"; }  # s3fs keeps no data cache by default
rclone_mount() {
  rm -rf "$WORK/rclone-cache"
  # rclone's S3 SDK fails on AWS_CA_BUNDLE ("unsupported transport"); plain http needs none.
  env -u AWS_CA_BUNDLE rclone mount bench:models/model "$RCL" --vfs-cache-mode full \
    --cache-dir "$WORK/rclone-cache" --read-only --daemon --log-file "$WORK/rclone.log" &&
    wait_mounted "$RCL"
}
rclone_pid() { pgrep -n -f -- "rclone mount .*$RCL" || true; }
rclone_once() {  # a fresh mount with an empty cache, so every run is cold
  unmount "$RCL"; rclone_mount || return 1
  cold_client models; cpu_mark; load order "$RCL"
}
sluice_pid() { echo "$SPID"; }
sluice_once() { sluice_fresh; proxy_reset "$PPORT"; cpu_mark; load "$1" "$SMNT/model"; }

log "Sluice: the copy's headers"
sluice_fresh
"$LOAD" check "$SMNT/model" >&2 || die "the Sluice copy fails the header check"
if [ -z "$ONLY" ]; then
  mkdir -p "$S3FS" "$RCL"; MOUNTS+=("$S3FS" "$RCL")
  echo S3RVER:S3RVER >"$WORK/s3fs.passwd"; chmod 600 "$WORK/s3fs.passwd"
  if s3fs_mount; then HAVE_S3FS=true; else skip "s3fs, cold" "s3fs did not mount ($(head -c 200 "$WORK/s3fs.log"))"; fi
  export RCLONE_CONFIG=/nonexistent RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
    RCLONE_CONFIG_BENCH_ENDPOINT=$PROXY RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=S3RVER \
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_BENCH_REGION=us-east-1 \
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
  if rclone_mount; then HAVE_RCLONE=true; else skip "rclone, cold" "rclone did not mount (see $WORK/rclone.log)"; fi
fi
for ((round = 1; round <= ${COLD_RUNS:-3}; round++)); do
  log "cold loads, round $round of ${COLD_RUNS:-3}"
  if [ -z "$ONLY" ]; then
    objbench_once
    cold_run "aws s3 cp, then load" "" aws_once
    ! $HAVE_S3FS || cold_run "s3fs, cold" s3fs_pid s3fs_once
    if $HAVE_RCLONE && ((round <= ${RCLONE_RUNS:-1})); then cold_run "rclone, cold" rclone_pid rclone_once; fi
  fi
  # The shuffled load's target is a ratio to the header-order one: it takes the same turns.
  if wanted shuffle; then cold_run "sluice cold, shuffle" sluice_pid sluice_once shuffle; fi
  if wanted order; then cold_run "sluice cold, order" sluice_pid sluice_once order; fi
done
if [ -z "$ONLY" ]; then
  cold_record "aws s3 cp, then load" "local order"
  ! $HAVE_S3FS || cold_record "s3fs, cold" "local order"
  ! $HAVE_RCLONE || cold_record "rclone, cold" "local order"
  unmount "$S3FS"; unmount "$RCL"
fi
if wanted order; then
  cold_record "sluice cold, order" "local order"
  # The mount of the last cold run, its page cache warm.
  if [ -z "$ONLY" ]; then
    measure_best "sluice page cache warm" "local order, page cache warm" order "$SMNT/model" "$SPID"
    measure_best "sluice page cache warm, shuffle" "sluice page cache warm" shuffle "$SMNT/model" \
      "$SPID"
  fi
fi
! wanted shuffle || cold_record "sluice cold, shuffle" "local shuffle" shuffle
for w in lazy numpy 4x; do
  wanted "$w" || continue
  sluice_fresh; measure "sluice cold, $w" "local $w" "$w" "$SMNT/model" "$SPID"
done
if [ -n "$ONLY" ]; then
  :
elif $HAVE_WARMUP && $HAVE_CACHE_DIR; then
  # With passthrough, warmup fills each file into its whole copy (instead of blocks),
  # which the load after it and the disk cache cases below read (through FUSE without
  # --passthrough).
  AFTER="sluice after warmup"
  if $HAVE_PASSTHROUGH; then MOUNT_EXTRA=(--passthrough); AFTER="sluice after warmup, passthrough"; fi
  sluice_fresh; MOUNT_EXTRA=(); proxy_reset "$PPORT"; cpu_mark; t0=$(now)
  if timeout "$CASE_TIMEOUT" "$SLUICE" warmup "$SMNT/model" -p "${WARMUP_THREADS:-16}" >"$WORK/warmup.out" 2>&1; then
    # The time first: summing the model's size by reading it (as this once did, with the
    # page cache dropped) added seconds of local disk reads to the warmup's time.
    secs=$(elapsed "$t0"); LAST_CPU=$(cpu_split)
    bytes=$(stat -c %s "$LOCAL"/*.safetensors | awk '{n += $1} END {print n}')
    record "sluice warmup (prefetch)" "" "{\"bytes_touched\":$bytes}" "$(proxy_get_bytes "$PPORT")" \
      "$(peak_rss_mib "$SPID")" "$secs"
    drop_caches; measure "$AFTER" "local order" order "$SMNT/model" "$SPID"
  else
    skip "$AFTER" "sluice warmup failed: $(tail -1 "$WORK/warmup.out")"
  fi
else
  skip "sluice after warmup" "needs 'sluice warmup' and 'mount --cache-dir'"
fi
if [ -n "$ONLY" ]; then
  :
elif $HAVE_CACHE_DIR; then
  if ! $HAVE_WARMUP; then sluice_fresh; load order "$SMNT/model" >/dev/null; fi  # fill the cache
  # The local disk's speed swings run to run (its host's cache), so this case and a local
  # baseline run in turns, REPEAT times each, and each reports its best run.
  # The shuffled load takes the same turns: its target is a ratio to the header-order one.
  # With passthrough (and the copies warmup made), the same loads run a third and fourth
  # time in each turn, on a mount with --passthrough.
  lbest=""; sbest=""; shbest=""; speak=0; sfetch=0; shfetch=0
  pbest=""; pshbest=""; ppeak=0; pfetch=0; pshfetch=0
  # warm_run MODE [MOUNT OPTION...]: one load of the remounted, disk-cache-warm model (run
  # in this shell, since sluice_mount sets SPID): its JSON line in WARM_JSON, the proxy's
  # GET bytes in WARM_FETCH; the mount's peak memory in WARM_PEAK.
  warm_run() {
    local m=$1
    shift
    unmount "$SMNT"; drop_caches; MOUNT_EXTRA=("$@"); sluice_mount; MOUNT_EXTRA=(); proxy_reset "$PPORT"
    WARM_JSON=$(load "$m" "$SMNT/model") || return 1
    WARM_FETCH=$(proxy_get_bytes "$PPORT"); WARM_FETCH=${WARM_FETCH:-0}  # "" when none
    WARM_PEAK=$(peak_rss_mib "$SPID")
  }
  raise() { [[ $2 =~ ^[0-9]+$ ]] && (($2 > ${!1})) && printf -v "$1" %s "$2"; return 0; }
  for ((i = 0; i < ${REPEAT:-3}; i++)); do
    drop_caches; j=$(load order "$LOCAL") && lbest=$(faster "$lbest" "$j")
    if warm_run order; then
      sbest=$(faster "$sbest" "$WARM_JSON"); raise sfetch "$WARM_FETCH"; raise speak "$WARM_PEAK"
    fi
    if wanted shuffle && warm_run shuffle; then
      shbest=$(faster "$shbest" "$WARM_JSON"); raise shfetch "$WARM_FETCH"; raise speak "$WARM_PEAK"
    fi
    $HAVE_PASSTHROUGH || continue
    if warm_run order --passthrough; then
      pbest=$(faster "$pbest" "$WARM_JSON"); raise pfetch "$WARM_FETCH"; raise ppeak "$WARM_PEAK"
    fi
    if wanted shuffle && warm_run shuffle --passthrough; then
      pshbest=$(faster "$pshbest" "$WARM_JSON"); raise pshfetch "$WARM_FETCH"; raise ppeak "$WARM_PEAK"
    fi
  done
  MODE["local order, beside the disk cache case"]=order; MODE["sluice disk cache warm, remounted"]=order
  record "local order, beside the disk cache case" "" "$lbest"
  FETCH["local order, beside the disk cache case"]=""
  record "sluice disk cache warm, remounted" "local order, beside the disk cache case" "$sbest" \
    "$sfetch" "$speak"
  if [ -n "$shbest" ]; then
    MODE["sluice disk cache warm, remounted, shuffle"]=shuffle
    record "sluice disk cache warm, remounted, shuffle" "sluice disk cache warm, remounted" \
      "$shbest" "$shfetch" "$speak"
  fi
  if [ -n "$pbest" ]; then
    MODE["sluice disk cache warm, passthrough"]=order
    record "sluice disk cache warm, passthrough" "local order, beside the disk cache case" "$pbest" \
      "$pfetch" "$ppeak"
  fi
  if [ -n "$pshbest" ]; then
    MODE["sluice disk cache warm, passthrough, shuffle"]=shuffle
    record "sluice disk cache warm, passthrough, shuffle" "sluice disk cache warm, passthrough" \
      "$pshbest" "$pshfetch" "$ppeak"
  fi
else
  skip "sluice disk cache warm, remounted" "needs 'mount --cache-dir'"
fi
unmount "$SMNT"

# ---- the table -------------------------------------------------------------------------
echo
echo "model: $SIZE_MIB MiB, $(ls "$LOCAL"/*.safetensors | wc -l) shards; proxy ${LATENCY_MS} ms first byte," \
  "${BW_MIB} MiB/s per connection; raw parallel GET (objbench, 16 threads, ${OBJBENCH_COUNT:-256} × 4 MiB, best of ${COLD_RUNS:-3}: $RAW_RUNS): $RAW_GBPS GB/s;" \
  "object server's files $([ "${STORE_WARM:-1}" = 0 ] && echo "as the dropped page cache left them" || echo "read back into memory before each network case")"
# row CASE SECONDS GB/S BASELINE BASE_GB/S RATIO FETCHED/TOUCHED PEAK_MIB SERVER_CPU
#     OTHER_CPU [NOTE]; MARKDOWN=1: a table row
row() {
  if [ "${MARKDOWN:-0}" = 1 ]; then
    printf '| %s ' "$@"; echo '|'
  else
    printf "%-34s %8s %7s  %-28s %7s %6s %9s %8s %6s %6s%s\n" "$@"
  fi
}
# CPU seconds during each case: "server" is s3rver and the proxy, "other" everything else
# (the client, the loader, the kernel's work for them): the servers share the two cores.
row case seconds GB/s baseline "GB/s" ratio fetched/t "peak MiB" "server CPU s" "other CPU s" ""
if [ "${MARKDOWN:-0}" = 1 ]; then echo "|---|---|---|---|---|---|---|---|---|---|---|"; fi
for c in "${CASES[@]}"; do
  if [ -n "${NOTE[$c]:-}" ]; then row "$c" - - - - - - - - - "  ${NOTE[$c]}"; continue; fi
  b=${BASE[$c]}; bg=-; ratio=-; fr=-
  if [ -n "$b" ] && [ -n "${GBPS[$b]:-}" ]; then
    bg=${GBPS[$b]}; ratio=$(awk -v a="${GBPS[$c]}" -v b="$bg" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  fi
  if [ -n "${FETCH[$c]}" ]; then
    fr=$(awk -v f="${FETCH[$c]}" -v t="${TOUCHED[$c]}" 'BEGIN { printf "%.2f", (t > 0 ? f / t : 0) }')
  fi
  warn=""  # the same loader must see the same bytes as on the local directory
  m=${MODE[$c]:-}
  if [ -n "$m" ] && [ "${SUM[$c]}" != "${SUM[local $m]:-}" ]; then warn="  CHECKSUM DIFFERS from local $m"; fi
  if [[ ${RUNS[$c]:-} == *,* ]]; then warn+="  runs: ${RUNS[$c]} GB/s"; fi
  read -r cs co <<<"${CPU[$c]:-- -}"
  row "$c" "$(printf %.2f "${SECS[$c]}")" "${GBPS[$c]}" "${b:--}" "$bg" "$ratio" "$fr" "${RSS[$c]}" \
    "$cs" "$co" "$warn"
done
cold=${GBPS[sluice cold, order]:-0}
# Also round by round: a round's raw GET and Sluice load run within two minutes of each
# other, and the host's speed swings more than that from one round to the next.
by_round=""
[ -z "$RAW_RUNS" ] || by_round=$(awk -v s="${CRUNS[sluice cold, order]:-}" -v r="$RAW_RUNS" 'BEGIN {
  n = split(s, a, ", "); split(r, b, ", ")
  for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? ", " : ""), (b[i] > 0 && a[i] ~ /^[0-9.]+$/ ? sprintf("%.2f", a[i] / b[i]) : "-")
}')
if [ -n "${FETCH[sluice cold, 4x]:-}" ]; then
  echo "target: four cold loaders fetch <= 1.05 x the model: $(awk -v f="${FETCH[sluice cold, 4x]}" \
    -v t="${TOUCHED[sluice cold, 4x]}" 'BEGIN { printf "%.3f", (t > 0 ? 4 * f / t : 0) }')"
fi
[ -z "$RAW_RUNS" ] || echo "target: sluice cold >= 0.8 x raw parallel GET: $cold / $RAW_GBPS = $(awk -v a="$cold" -v b="$RAW_GBPS" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')${by_round:+ (round by round: $by_round)}"
