// Dump and load: the whole metadata of a volume as a stream of JSON lines
// (docs/dump-format.md), so a volume can be inspected, repaired by hand, or moved between
// metadata engines. Used by `sluice dump` and `sluice load`.
//
// Both directions stream: dump scans the key space in pages and writes each record as it
// goes; load reads one line at a time and commits in batches of bounded size. Memory stays
// bounded whatever the size of the volume (a page of keys, a batch of writes).
//
// What is dumped: the settings, every inode (attributes, symlink target), directory entry,
// chunk slice list, xattr, removed-file and dropped-slice record, and the counters.
// Sessions and what they own (locks, open-unlinked files) are not: the dump describes the
// volume as it would be once every client has gone, so an inode held open after unlink
// (nlink 0) is dumped as a removed file awaiting deletion, with the usage counters
// adjusted as closing its session would.
//
// Thread safety: free functions; the engine may be shared.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <ostream>
#include <string>

#include "common/status.h"
#include "kv/engine.h"

namespace sluice::meta {

constexpr int kDumpVersion = 1;

struct DumpStats {
  uint64_t records = 0;  // lines between the header and the trailer
  uint64_t inodes = 0;
  uint64_t entries = 0;
  uint64_t chunks = 0;
  uint64_t bytes = 0;  // of dump text read or written
};

// Called now and then with the running totals (for a progress line).
using DumpProgress = std::function<void(const DumpStats&)>;

struct DumpOptions {
  // true: the whole dump reads one snapshot (one read transaction), consistent even while
  // the volume is in use. false: pages of separate read transactions, for engines that
  // cannot hold one transaction that long; consistent only on a volume not being modified.
  bool snapshot = true;
  size_t page = 1000;  // keys per scan
  DumpProgress progress;
};

// Writes the volume in `engine` to `out`. Fails (kInvalid) on an unformatted volume or
// one holding an unfinished load, and (kCorruption) on a key or value it cannot decode:
// a dump never silently leaves something out. A snapshot dump whose read transaction
// the engine had to restart after output began fails with kIO (dump again, or page it).
Result<DumpStats> dump_volume(kv::Engine& engine, std::ostream& out, const DumpOptions& opts);

struct LoadOptions {
  size_t batch_keys = 1000;       // puts per transaction, at most
  size_t batch_bytes = 4u << 20;  // bytes of keys and values per transaction, at most
  DumpProgress progress;
};

// Reads a dump from `in` into `engine`, which must be empty (kExists otherwise). The
// first transaction writes the `loading` marker and the last one removes it, so a load
// that fails midway (bad input, engine error) leaves a volume that Meta::open, and so
// mount, refuses. Input errors are kInvalid "dump line N: ...".
Result<DumpStats> load_volume(kv::Engine& engine, std::istream& in, const LoadOptions& opts);

}  // namespace sluice::meta
