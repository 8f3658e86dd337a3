#!/usr/bin/env bash
# Metadata benchmark (mdtest-like): create, stat, readdir, rename and unlink of N files,
# by one process and by four (each in its own subdirectory), on a Sluice mount over each
# metadata engine given, beside the same run on a local directory. Prints ops/s and the
# ratio Sluice/local for each.
#
#   bench/meta_bench.sh [N=10000] [TARGET...]
#
# TARGET is a metadata URL, formatted fresh for the run (it must be empty), or a keyword
# for which the script starts a throwaway server on loopback and stops it afterwards:
#   sqlite3   sqlite3://$WORK/meta.db (the default when no TARGET is given)
#   postgres  PostgreSQL 15 (initdb + postgres, run as the postgres user)
#   redis     redis-server (appendonly, fsync every second)
#   etcd      a single-member etcd;  etcd3  a three-member etcd cluster
# Data goes to a local file:// store under $WORK. Needs root and a built tree
# (ninja -C build sluice mdtest). BENCH_DIR sets $WORK (default /var/tmp/sluice-meta-bench);
# MDTEST_PROCS the process counts (default "1 4"). SERVERS_ONLY=1 starts the servers the
# keywords name, prints their URLs, and stops them (a check of the server part).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(sqlite3)
SLUICE=$PWD/build/sluice
MDTEST=$PWD/build/bench/mdtest
PROCS=${MDTEST_PROCS:-"1 4"}
WORK=${BENCH_DIR:-/var/tmp/sluice-meta-bench}
PG_BIN=/usr/lib/postgresql/15/bin
PHASES="create stat readdir rename unlink"

rm -rf "$WORK"; mkdir -p "$WORK/local" "$WORK/mnt"
PIDS=()
cleanup() {
  if grep -q " $WORK/mnt " /proc/mounts 2>/dev/null; then
    "$SLUICE" umount "$WORK/mnt" 2>/dev/null || umount -l "$WORK/mnt" 2>/dev/null || true
  fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits up to 30 s for a TCP port on loopback to accept connections.
wait_port() {
  for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "meta_bench: server on port $1 did not start" >&2; return 1
}

start_postgres() {
  local d=$WORK/pg port; port=$(free_port)
  mkdir -p "$d"; chown postgres: "$d"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$d/data" -A trust -U postgres >"$d/initdb.log" 2>&1
  runuser -u postgres -- "$PG_BIN/postgres" -D "$d/data" -p "$port" -k "$d" \
    -c listen_addresses=127.0.0.1 >"$d/server.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  for _ in $(seq 100); do
    runuser -u postgres -- "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" sluice 2>/dev/null && break
    sleep 0.1
  done
  echo "postgres://postgres@127.0.0.1:$port/sluice"
}

start_redis() {
  local d=$WORK/redis port; port=$(free_port)
  mkdir -p "$d"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$d" --save '' --appendonly yes \
    --appendfsync everysec >"$d/server.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  echo "redis://127.0.0.1:$port/0"
}

# start_etcd MEMBERS: a cluster of 1 or 3 members on loopback; prints the client URL of
# the first member (the engine's URL form: etcd://HOST:PORT[,HOST:PORT...]/PREFIX).
start_etcd() {
  local members=$1 cluster="" i
  local -a cports pports
  for i in $(seq "$members"); do
    cports[$i]=$(free_port); pports[$i]=$(free_port)
    cluster+="${cluster:+,}m$i=http://127.0.0.1:${pports[$i]}"
  done
  for i in $(seq "$members"); do
    mkdir -p "$WORK/etcd/m$i"
    etcd --name "m$i" --data-dir "$WORK/etcd/m$i" \
      --listen-client-urls "http://127.0.0.1:${cports[$i]}" \
      --advertise-client-urls "http://127.0.0.1:${cports[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${pports[$i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${pports[$i]}" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token "meta-bench-$$" >"$WORK/etcd/m$i.log" 2>&1 &
    PIDS+=($!)
  done
  local hosts=""
  for i in $(seq "$members"); do
    wait_port "${cports[$i]}"
    hosts+="${hosts:+,}127.0.0.1:${cports[$i]}"
  done
  ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:${cports[1]}" endpoint health >/dev/null 2>&1 ||
    sleep 2
  echo "etcd://$hosts/meta_bench"
}

# The metadata URL of a target (starting its server if it is a keyword).
url_of() {
  case $1 in
    sqlite3) echo "sqlite3://$WORK/meta.db" ;;
    postgres) start_postgres ;;
    redis) start_redis ;;
    etcd) start_etcd 1 ;;
    etcd3) start_etcd 3 ;;
    *) echo "$1" ;;
  esac
}

# Asks a started server something through its own client (SERVERS_ONLY mode).
probe() {
  local port
  case $1 in
    postgres://*) port=${1##*:}; port=${port%%/*}
      runuser -u postgres -- psql -h 127.0.0.1 -p "$port" -d sluice -Atc 'select 1' ;;
    redis://*) port=${1##*:}; port=${port%%/*}; redis-cli -p "$port" ping ;;
    etcd://*) local hp=${1#etcd://}; hp=${hp%%/*}
      ETCDCTL_API=3 etcdctl --endpoints "http://${hp%%,*}" put meta_bench_probe ok >/dev/null &&
        ETCDCTL_API=3 etcdctl --endpoints "http://${hp%%,*}" member list | wc -l ;;
    *) echo "(nothing to probe)" ;;
  esac
}

declare -A R
# run LABEL DIR: mdtest with each process count on DIR, results into R[LABEL.PROCS.PHASE].
run() {
  local label=$1 dir=$2 p out
  for p in $PROCS; do
    out=$("$MDTEST" "$dir" "$N" "$p")
    for kv in $out; do R[$label.$p.${kv%%=*}]=${kv#*=}; done
  done
}

LABELS=(local)
URLS=0
LEGEND=""
[ "${SERVERS_ONLY:-0}" = 1 ] || run local "$WORK/local"
for t in "${TARGETS[@]}"; do
  # Not $(url_of): a server started in a command substitution's subshell is not ours to stop.
  url_of "$t" >"$WORK/url"
  url=$(cat "$WORK/url")
  if [ "${SERVERS_ONLY:-0}" = 1 ]; then
    echo "$t: $url -> $(probe "$url" | tr '\n' ' ')"; cleanup; continue
  fi
  safe=$(printf '%s' "$t" | tr -c 'A-Za-z0-9._-' '_')  # a URL, as a file name
  "$SLUICE" format "$url" bench --storage "file://$WORK/objects.$safe" >/dev/null
  "$SLUICE" mount "$url" "$WORK/mnt" --log "$WORK/mount.$safe.log" --cache-dir "$WORK/cache.$safe"
  label=$t
  case $t in *://*) label=url$((++URLS)); LEGEND+="$label = $t"$'\n' ;; esac
  run "$label" "$WORK/mnt"
  "$SLUICE" umount "$WORK/mnt"
  cleanup
  LABELS+=("$label")
done
[ "${SERVERS_ONLY:-0}" = 1 ] && exit 0

printf "%-9s %5s" "op" "procs"
for l in "${LABELS[@]}"; do printf " %12s" "$l"; done
for l in "${LABELS[@]:1}"; do printf " %10s" "$l/local"; done
printf "\n"
for ph in $PHASES; do
  for p in $PROCS; do
    printf "%-9s %5s" "$ph" "$p"
    for l in "${LABELS[@]}"; do printf " %12s" "${R[$l.$p.$ph]%/s}"; done
    for l in "${LABELS[@]:1}"; do
      printf " %10s" "$(awk -v a="${R[$l.$p.$ph]%/s}" -v b="${R[local.$p.$ph]%/s}" 'BEGIN{printf "%.2f", a/b}')"
    done
    printf "\n"
  done
done
echo "(ops/s; readdir counts entries; N=$N files in all per run, split among the processes)"
printf "%s" "$LEGEND"
