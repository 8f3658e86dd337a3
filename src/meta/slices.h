// Read resolution of a chunk's slice list: later slices win where they overlap,
// uncovered ranges read as zeros. Pure functions, shared by vfs (reads), the `info`
// command and compaction.
#pragma once

#include <cstdint>
#include <vector>

#include "meta/types.h"

namespace sluice::meta {

// A contiguous piece of a chunk: chunk bytes [pos, pos+len) come from bytes
// [off, off+len) of slice `id` (stored size `size`); id 0 means zeros.
struct Segment {
  uint32_t pos = 0;
  uint32_t len = 0;
  uint64_t id = 0;
  uint32_t size = 0;
  uint32_t off = 0;
  bool operator==(const Segment&) const = default;
};

// Covers [0, chunk_len) exactly, in order, with zero segments for holes; adjacent
// pieces are not merged across different slices.
std::vector<Segment> resolve_slices(const std::vector<Slice>& slices, uint32_t chunk_len);

}  // namespace sluice::meta
