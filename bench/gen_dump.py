#!/usr/bin/env python3
"""gen_dump.py: writes a synthetic dump (docs/dump-format.md) of a large, consistent volume
to stdout, in exactly the order and spelling `sluice dump` writes, so that
load -> dump gives the same lines back. Used to measure dump and load at scale without
creating a million files through a mount:

  python3 bench/gen_dump.py FILES [PER_DIR=1000] > big.jsonl
  /usr/bin/time -v build/sluice load sqlite3:///tmp/big.db big.jsonl
  /usr/bin/time -v build/sluice dump sqlite3:///tmp/big.db again.jsonl
  diff <(tail -n +2 big.jsonl) <(tail -n +2 again.jsonl)   # identical but for the header

Every file has one 4 KiB slice in chunk 0; directories hold PER_DIR files each.
"""
import json
import sys

T = 1764086400000000000  # a fixed time (ns), so the output is reproducible


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")


def inode(ino, typ, mode, nlink, size, parent):
    return {"inode": ino, "type": typ, "mode": mode, "uid": 0, "gid": 0, "nlink": nlink,
            "size": size, "rdev": 0, "atime": T, "mtime": T, "ctime": T, "parent": parent}


def main():
    files = int(sys.argv[1])
    per_dir = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    dirs = (files + per_dir - 1) // per_dir
    width = max(4, len(str(max(dirs, per_dir))))
    volume = {"block_size": 4194304, "capacity": 0, "compression": "none", "created_ns": T,
              "inodes": 0, "meta_version": 1, "name": "big", "storage": "file:///tmp/big-objects",
              "trash_days": 1, "uuid": "00000000-0000-4000-8000-000000000000"}
    out({"sluice_dump": 1, "volume": volume, "source": "gen_dump.py", "dumped_ns": T,
         "snapshot": True})
    records = 0
    first_file = 2 + dirs
    out(inode(1, "dir", "0777", 2 + dirs, 4096, 1))
    records += 1
    for d in range(dirs):
        out({"dir": 1, "name": "d%0*d" % (width, d), "ino": 2 + d, "type": "dir"})
        records += 1
    slice_id = 1
    ino = first_file
    for d in range(dirs):
        n = min(per_dir, files - d * per_dir)
        out(inode(2 + d, "dir", "0755", 2, 4096, 1))
        records += 1
        for f in range(n):
            out({"dir": 2 + d, "name": "f%0*d" % (width, f), "ino": ino + f, "type": "file"})
            records += 1
        ino += n
    for i in range(files):
        out(inode(first_file + i, "file", "0644", 1, 4096, 0))
        out({"chunk": first_file + i, "index": 0,
             "slices": [{"pos": 0, "id": slice_id, "size": 4096, "off": 0, "len": 4096}]})
        slice_id += 1
        records += 2
    counters = {"nextInode": first_file + files, "nextSlice": slice_id,
                "usedInodes": dirs + files, "usedSpace": 4096 * files}
    out({"end": records, "counters": counters})


if __name__ == "__main__":
    main()
