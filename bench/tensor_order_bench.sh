#!/bin/bash
# Tensor order benchmark (read path): a 148 MB safetensors file of 48 tensors is read
# through mmap, in header order and shuffled, each after a fresh mount (cold cache)
# over a store with 20 ms injected latency; prints MB/s and the read-path counters.
#   bench/tensor_order_bench.sh            (SLUICE=path/to/sluice, EXTRA="--max-readahead 4M")
set -e
B=${SLUICE:-build/sluice}
D=$(mktemp -d /tmp/sluice-tensor-bench.XXXX)
mkdir -p $D/mnt $D/data
cleanup() { $B umount $D/mnt 2>/dev/null || true; grep -q " $D/mnt " /proc/mounts || rm -rf $D; }
trap cleanup EXIT
$B format sqlite3://$D/meta.db vol --storage file://$D/data >/dev/null
$B mount sqlite3://$D/meta.db $D/mnt --log $D/w.log --cache-dir $D/cache
python3 - $D/mnt/model.safetensors <<'PY'
import json, os, random, struct, sys
random.seed(1)
sizes=[random.randint(256<<10, 6<<20) for _ in range(48)]
h={}; at=0
for i,s in enumerate(sizes):
    h[f"layer.{i}"]={"dtype":"U8","shape":[s],"data_offsets":[at,at+s]}; at+=s
hb=json.dumps(h).encode()
with open(sys.argv[1],"wb") as f:
    f.write(struct.pack("<Q",len(hb))); f.write(hb); f.write(os.urandom(at))
print("model bytes", 8+len(hb)+at)
PY
$B umount $D/mnt
for order in header shuffled header shuffled; do
  $B mount sqlite3://$D/meta.db $D/mnt --log $D/$order.log --cache-dir $D/cache --inject-faults latency=20ms $EXTRA
  python3 - $D/mnt/model.safetensors $order <<'PY'
import json, mmap, random, struct, sys, time
t=time.time()
with open(sys.argv[1],"rb") as f:
    n=struct.unpack("<Q",f.read(8))[0]; h=json.loads(f.read(n)); base=8+n
    m=mmap.mmap(f.fileno(),0,access=mmap.ACCESS_READ)
    ts=[(base+v["data_offsets"][0],base+v["data_offsets"][1]) for k,v in h.items()]
    ts.sort()
    if sys.argv[2]=="shuffled": random.seed(2); random.shuffle(ts)
    tot=0
    for a,b in ts: tot+=len(m[a:b])
dt=time.time()-t
print(f"{sys.argv[2]}: {tot/dt/1e6:.1f} MB/s ({dt:.2f}s)")
PY
  $B umount $D/mnt
  grep -o "read path:.*" $D/$order.log | tail -1
done
