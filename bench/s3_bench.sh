#!/usr/bin/env bash
# S3 benchmark (issue "S3 object storage"): `sluice objbench` against s3rver, then a
# sequential write and a cold sequential read of one SIZE MiB file through a Sluice mount
# on s3+http:// beside `aws s3 cp` (Debian's awscli) uploading and downloading the same
# bytes to and from the same server in the same run. Prints MiB/s and the ratio Sluice/aws.
#
#   bench/s3_bench.sh [SIZE_MIB=4096]
#
# Needs root (drop_caches, mounts), node and s3rver in .tools/ (scripts/install-deps.sh)
# and a built tree (build/sluice). Everything lives in a temp dir under $BENCH_DIR
# (default /var/tmp), removed on exit with the servers and mounts (KEEP_WORK=1 keeps it).
# Page cache is dropped before every transfer; the source file is read into the page
# cache before each upload, so both uploads read it from memory. aws downloads to a local
# file (its normal use), Sluice reads to /dev/null. aws runs without a read timeout: s3rver
# takes minutes to assemble a 4 GiB multipart upload on a slow disk, and aws's retry after
# its 60 s default timeout races the first completion and fails.
set -euo pipefail
SIZE_MIB=${1:-4096}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sluice-s3bench.XXXXXX")
source "$ROOT/bench/lib.sh"
trap cleanup_all EXIT
trap 'exit 130' INT TERM
[ -x "$SLUICE" ] || die "build/sluice is missing (scripts/build.sh)"
[ "$(id -u)" = 0 ] || die "needs root (drop_caches and mounts)"

PORT=$(free_port)
BUCKET=bench
ENDPOINT=http://127.0.0.1:$PORT
start_s3rver "$PORT" "$BUCKET"
log "s3rver on port $PORT, data in $WORK/s3rver"

# 1. Raw object-store throughput.
log "sluice objbench"
"$SLUICE" objbench "s3+http://127.0.0.1:$PORT/$BUCKET?access_key=S3RVER&secret_key=S3RVER" \
  --threads "${OBJBENCH_THREADS:-16}" --count "${OBJBENCH_COUNT:-64}" --json >"$WORK/objbench.json"
ob() {  # ob OPERATION OBJECT_SIZE FIELD
  $PY -c 'import json,sys
for r in json.load(open(sys.argv[1]))["results"]:
    if r["operation"] == sys.argv[2] and r["object_size"] == int(sys.argv[3]):
        print(round(r[sys.argv[4]], 1))' "$WORK/objbench.json" "$1" "$2" "$3"
}
BLOCK=$((4 << 20)); SMALL=$((128 << 10))

# 2. The source file: random bytes, so that nothing compresses.
log "writing a $SIZE_MIB MiB source file"
# AES-CTR of zeros: random-looking and much faster than /dev/urandom.
openssl enc -aes-128-ctr -pass pass:sluice -nosalt -pbkdf2 </dev/zero 2>/dev/null |
  head -c "$((SIZE_MIB << 20))" >"$WORK/src.bin" || true
[ "$(stat -c %s "$WORK/src.bin")" = $((SIZE_MIB << 20)) ] || die "could not write the source file"
rate() { awk -v mib="$SIZE_MIB" -v s="$1" 'BEGIN { printf "%.0f", mib / s }'; }
declare -A R

# 3. aws s3 cp up and down.
drop_caches; cat "$WORK/src.bin" >/dev/null
log "aws s3 cp upload"
t0=$(now); timeout 3600 "$AWS" --endpoint-url "$ENDPOINT" --cli-read-timeout 0 s3 cp --only-show-errors "$WORK/src.bin" "s3://$BUCKET/big"
R[aws.write]=$(rate "$(elapsed "$t0")")
drop_caches
log "aws s3 cp download"
t0=$(now); timeout 3600 "$AWS" --endpoint-url "$ENDPOINT" --cli-read-timeout 0 s3 cp --only-show-errors "s3://$BUCKET/big" "$WORK/dl.bin"
R[aws.cold]=$(rate "$(elapsed "$t0")")
cmp -s "$WORK/src.bin" "$WORK/dl.bin" || die "aws download differs from the source"
rm -f "$WORK/dl.bin"
"$AWS" --endpoint-url "$ENDPOINT" s3 rm --only-show-errors "s3://$BUCKET/big"

# 4. Sluice on the same server: its volume in a prefix of the same bucket.
META="sqlite3://$WORK/meta.db"
MNT=$WORK/mnt; mkdir -p "$MNT"; MOUNTS+=("$MNT")
"$SLUICE" format "$META" s3bench --storage "s3+http://127.0.0.1:$PORT/$BUCKET/sluice" >/dev/null
mount_it() { "$SLUICE" mount "$META" "$MNT" --log "$WORK/mount.log" --cache-dir "$WORK/cache"; }
mount_it
drop_caches; cat "$WORK/src.bin" >/dev/null
log "sluice write"
t0=$(now); timeout 3600 dd if="$WORK/src.bin" of="$MNT/big" bs=1M conv=fsync status=none
R[sluice.write]=$(rate "$(elapsed "$t0")")
# Cold: without the mount's memory cache, the page cache and the disk cache the write filled.
unmount "$MNT"; rm -rf "$WORK/cache"; drop_caches; mount_it
log "sluice cold read"
t0=$(now); timeout 3600 dd if="$MNT/big" of=/dev/null bs=1M status=none
R[sluice.cold]=$(rate "$(elapsed "$t0")")
log "sluice verify"
cmp -s "$WORK/src.bin" "$MNT/big" || die "the file read back through Sluice differs from the source"
unmount "$MNT"

echo
echo "s3rver on loopback, $SIZE_MIB MiB file; objbench: ${OBJBENCH_THREADS:-16} threads, ${OBJBENCH_COUNT:-64} objects per size"
printf "%-34s %12s %12s %8s\n" "figure" "aws s3 cp" "sluice" "ratio"
for k in write:"seq write $SIZE_MIB MiB (MiB/s)" cold:"seq read cold (MiB/s)"; do
  key=${k%%:*}; label=${k#*:}
  a=${R[aws.$key]}; s=${R[sluice.$key]}
  printf "%-34s %12s %12s %8s\n" "$label" "$a" "$s" "$(awk -v a="$s" -v b="$a" 'BEGIN{printf "%.2f", a/b}')"
done
printf "%-34s %12s %12s\n" "objbench PUT 4 MiB (MiB/s)" "" "$(ob put $BLOCK mib_per_s)"
printf "%-34s %12s %12s\n" "objbench GET 4 MiB (MiB/s)" "" "$(ob get $BLOCK mib_per_s)"
printf "%-34s %12s %12s\n" "objbench PUT 128 KiB (ops/s)" "" "$(ob put $SMALL ops_per_s)"
printf "%-34s %12s %12s\n" "objbench GET 128 KiB (ops/s)" "" "$(ob get $SMALL ops_per_s)"
printf "%-34s %12s %12s\n" "objbench GET 128 KiB p50 (ms)" "" "$(ob get $SMALL p50_ms)"
