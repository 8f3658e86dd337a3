// The on-store format of a data block: a 32-byte header, then the payload.
//
//   magic "SLBK" | u8 version | u8 compression | u16 reserved
//   u32 raw_len (bytes of file data) | u32 payload_len | u64 checksum (XXH3 of raw data)
//   u64 reserved | payload (raw data, or compressed)
//
// decode_block() verifies every field and the checksum: a truncated, corrupted or
// foreign object is kCorruption (EIO for readers), never data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::object {

enum class Compression : uint8_t { kNone = 0, kLz4 = 1, kZstd = 2 };

Result<Compression> parse_compression(const std::string& name);  // "none", "lz4", "zstd"
const char* compression_name(Compression c);

constexpr size_t kBlockHeaderSize = 32;

std::string encode_block(std::string_view raw, Compression c = Compression::kNone);
// `key` only serves the error message.
Result<std::string> decode_block(std::string_view stored, const std::string& key);

}  // namespace sluice::object
