// Offline consistency check of a volume's metadata (used by `sluice fsck` and tests):
// every entry points to an inode of the same type, link counts match the entries,
// directories have one parent, no inode is unreachable, chunk records decode, data of
// removed files is queued, and the usage counters match the inodes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "kv/engine.h"
#include "meta/types.h"

namespace sluice::meta {

struct SliceRef {
  Ino ino = 0;
  uint64_t id = 0;
  uint32_t size = 0;
};

struct CheckReport {
  uint64_t inodes = 0, directories = 0, files = 0, entries = 0, slices = 0;
  std::vector<std::string> problems;  // one line each; empty means consistent
  std::vector<SliceRef> live_slices;  // distinct slices referenced by live files
};

// Reads the whole volume in pages of read-only transactions; meant for a volume that is
// not being modified (results on a live volume may report transient problems).
Result<CheckReport> check_volume(kv::Engine& engine);

}  // namespace sluice::meta
