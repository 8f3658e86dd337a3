#!/usr/bin/python3
"""load_numpy: loads safetensors shards with numpy.memmap, as Python inference code does
(safetensors' numpy backend maps the file and copies each tensor out of the mapping), for
the model-loading benchmark (bench/model_bench.sh). Not part of Sluice.

    /usr/bin/python3 bench/load_numpy.py [--shuffle] [--seed S] PATH...

PATH is a .safetensors file or a directory of them. Each tensor becomes a numpy array of
its dtype and shape (BF16 and F8 as raw uint16/uint8), copied out of the mapping. Prints
one JSON line: mode, files, tensors, bytes_touched, seconds, gb_per_s, checksum.
"""
import json
import os
import random
import struct
import sys
import time

import numpy as np

DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "F8_E5M2": np.uint8,
          "F8_E4M3": np.uint8, "I16": np.int16, "U16": np.uint16, "F16": np.float16,
          "BF16": np.uint16, "I32": np.int32, "U32": np.uint32, "F32": np.float32,
          "I64": np.int64, "U64": np.uint64, "F64": np.float64}


def shard_paths(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, n) for n in os.listdir(p) if n.endswith(".safetensors"))
        else:
            out.append(p)
    if not out:
        sys.exit("load_numpy: no .safetensors files")
    return out


def main():
    args = sys.argv[1:]
    shuffle = "--shuffle" in args
    seed = 42
    if "--seed" in args:
        seed = int(args[args.index("--seed") + 1])
        del args[args.index("--seed"):args.index("--seed") + 2]
    paths = [a for a in args if a != "--shuffle"]
    if not paths:
        sys.exit("usage: load_numpy.py [--shuffle] [--seed S] PATH...")
    t0 = time.monotonic()
    todo = []
    for path in shard_paths(paths):
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        mm = np.memmap(path, dtype=np.uint8, mode="r")
        for name, t in header.items():
            if name == "__metadata__":
                continue
            b, e = t["data_offsets"]
            todo.append((mm, 8 + n + b, 8 + n + e, DTYPES[t["dtype"]], t["shape"]))
    if shuffle:
        random.Random(seed).shuffle(todo)
    touched = 0
    checksum = 0
    for mm, b, e, dtype, shape in todo:
        arr = np.array(mm[b:e].view(dtype).reshape(shape), copy=True)
        checksum += int(arr.view(np.uint8).reshape(-1)[-1]) if arr.size else 0
        touched += e - b
    secs = time.monotonic() - t0
    print(json.dumps({"mode": "numpy-shuffle" if shuffle else "numpy", "files": len({id(t[0]) for t in todo}),
                      "tensors": len(todo), "bytes_touched": touched, "seconds": round(secs, 3),
                      "gb_per_s": round(touched / secs / 1e9, 3) if secs > 0 else 0,
                      "checksum": checksum}))


if __name__ == "__main__":
    main()
