#!/usr/bin/env bash
# ctest bench_safetensors: the benchmark's model generator writes files that follow the
# safetensors layout, and `load_safetensors check` rejects files that do not.
#   bench/test_safetensors.sh GEN LOAD
# Checks: a 3-shard model passes the check; every loader mode and the numpy loader (when
# Debian's python3-numpy is there) read the same tensors and bytes; the index names every
# tensor; a truncated file, a header length past the end, a gap in the offsets, a
# shape/offsets mismatch and an unknown dtype each fail the check.
set -euo pipefail
GEN=$1 LOAD=$2
DIR=$(mktemp -d /tmp/sluice-test-safetensors.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p"; }

"$GEN" "$DIR/m" --size-mib 40 --shards 3 --seed 7 >"$DIR/gen.json"
[ "$(ls "$DIR"/m/*.safetensors | wc -l)" = 3 ] || fail "expected 3 shards"
total=$(field bytes <"$DIR/gen.json"); tensors=$(field tensors <"$DIR/gen.json")
check=$("$LOAD" check "$DIR/m") || fail "a generated model fails the check"
[ "$(field tensor_bytes <<<"$check")" = "$total" ] || fail "check counts other bytes: $check"
[ "$(field tensors <<<"$check")" = "$tensors" ] || fail "check counts other tensors: $check"
for f in "$DIR"/m/*.safetensors; do  # header length is a multiple of 8, data starts after it
  n=$(od -An -tu8 -N8 "$f" | tr -d ' ')
  [ $((n % 8)) = 0 ] || fail "$f: header length $n is not padded to 8"
  [ "$(head -c $((8 + n)) "$f" | tail -c "$n" | head -c 15)" = '{"__metadata__"' ] || fail "$f: header does not start with __metadata__"
done
[ "$(grep -c '"model\.\|"lm_head' "$DIR/m/model.safetensors.index.json")" = "$tensors" ] || fail "index.json does not name every tensor"

for mode in order shuffle; do
  for touch in page copy; do
    out=$("$LOAD" "$mode" --touch "$touch" "$DIR/m")
    [ "$(field bytes_touched <<<"$out")" = "$total" ] || fail "$mode/$touch touched other bytes: $out"
  done
done
[ "$("$LOAD" order "$DIR/m" | field checksum)" = "$("$LOAD" shuffle "$DIR/m" | field checksum)" ] ||
  fail "order and shuffle see different bytes"
lazy=$("$LOAD" lazy "$DIR/m" | field tensors)
[ "$lazy" = $((tensors / 10)) ] || fail "lazy touched $lazy of $tensors tensors"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  np=$(/usr/bin/python3 "$(dirname "$0")/load_numpy.py" "$DIR/m")
  [ "$(field bytes_touched <<<"$np")" = "$total" ] || fail "numpy loader touched other bytes: $np"
  [ "$(field checksum <<<"$np")" = "$("$LOAD" order --touch copy "$DIR/m" | field checksum)" ] ||
    fail "numpy and load_safetensors copy different bytes"
fi

# Damaged copies of shard 1 must fail the check.
f=$DIR/m/model-00001-of-00003.safetensors
expect_bad() {  # expect_bad WHAT FILE
  if "$LOAD" check "$2" >/dev/null 2>"$DIR/err"; then fail "check accepted $1"; fi
  grep -q . "$DIR/err" || fail "check rejected $1 without saying why"
}
cp "$f" "$DIR/t.safetensors"; truncate -s -1 "$DIR/t.safetensors"; expect_bad "a truncated file" "$DIR/t.safetensors"
cp "$f" "$DIR/t.safetensors"; printf '\xff\xff\xff\x7f' | dd of="$DIR/t.safetensors" conv=notrunc status=none
expect_bad "a header length past the end" "$DIR/t.safetensors"
/usr/bin/python3 - "$DIR/m/model-00002-of-00003.safetensors" "$DIR/t.safetensors" <<'PY'  # first tensor moved by 8 bytes, same span
import json, struct, sys
data = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", data[:8])
h = json.loads(data[8:8 + n])
first = min((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])
h[first]["data_offsets"] = [o + 8 for o in h[first]["data_offsets"]]
j = json.dumps(h).encode()
j += b" " * (-len(j) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(j)) + j + data[8 + n:])
PY
expect_bad "a gap and an overlap in the offsets" "$DIR/t.safetensors"
grep -q "gap or overlap" "$DIR/err" || fail "the gap was not found as such: $(cat "$DIR/err")"
cp "$f" "$DIR/t.safetensors"; sed -i '0,/"shape":\[32000,/s//"shape":[32001,/' "$DIR/t.safetensors"
expect_bad "a shape that does not match its offsets" "$DIR/t.safetensors"
cp "$f" "$DIR/t.safetensors"; sed -i '0,/"F16"/s//"F17"/' "$DIR/t.safetensors"
expect_bad "an unknown dtype" "$DIR/t.safetensors"
echo "ok: $tensors tensors, $total bytes in 3 shards"
