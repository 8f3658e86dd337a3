// Safetensors header parsing, for tensor-aware readahead (reader.cc).
//
// A .safetensors file is: u64 little-endian header length N, N bytes of JSON (an object
// mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]}, plus an
// optional "__metadata__" object), then the tensor data; data_offsets are relative to
// the first byte after the header. The parser turns a header into the file ranges of
// its tensors, sorted by offset. It never trusts its input: a truncated, oversized or
// malformed header, an offset past the end of the file, overlapping tensors, a
// non-object entry or a shape whose size overflows is kInvalid, never a crash.
//
// Thread safety: free functions over their arguments; TensorLayout is immutable once
// built and may be shared between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::vfs {

// The format's own bound on the header length (100 MiB).
constexpr uint64_t kMaxSafetensorsHeader = 100ull << 20;

// One tensor's bytes: file range [begin, end).
struct TensorRange {
  uint64_t begin = 0;
  uint64_t end = 0;
  bool operator==(const TensorRange&) const = default;
};

struct TensorLayout {
  uint64_t data_start = 0;            // 8 + header length
  std::vector<TensorRange> tensors;   // sorted by begin, non-overlapping, non-empty
  // The tensor whose range holds file offset off; nullptr when none does.
  const TensorRange* find(uint64_t off) const;
};

// Whether `first` (the file's leading bytes, at least 9 of them) looks like the start of
// a safetensors file of file_size bytes whose header is at most max_header bytes: a
// header length that fits in the file and a header that opens with '{'. Returns the
// header length, or nullopt. Cheap: the sniff for every file read from offset 0.
std::optional<uint64_t> safetensors_header_len(std::string_view first, uint64_t file_size,
                                               uint64_t max_header = kMaxSafetensorsHeader);

// Parses header JSON `header` (the N bytes after the length) of a file of file_size
// bytes. kInvalid with a reason when it is not a valid safetensors header.
Result<TensorLayout> parse_safetensors_header(std::string_view header, uint64_t file_size);

}  // namespace sluice::vfs
