// The on-store format of a data block: a 32-byte header, then the payload.
//
//   magic "SLBK" | u8 version | u8 compression | u16 flags
//   u32 raw_len (bytes of file data) | u32 payload_len | u64 checksum (XXH3 of raw data)
//   u64 reserved | payload (raw data, or compressed)
//
// An encrypted block (flags bit 0, volumes formatted with encryption) is compressed,
// then sealed with AES-256-GCM: its payload is
//   nonce (12) | ciphertext of (u64 checksum | raw or compressed data) | tag (16)
// and its header's checksum field is 0, so that no function of the plaintext is in the
// clear. The header and the object key are authenticated with the payload (GCM
// associated data): a block cannot be altered, relabelled or moved to another key.
//
// decode_block() verifies every field and the checksum: a truncated, corrupted or
// foreign object, an encrypted block read without the volume's cipher, a plain block
// read with one, or a block that fails authentication is kCorruption (EIO for readers),
// never data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "object/block_cipher.h"

namespace sluice::object {

enum class Compression : uint8_t { kNone = 0, kLz4 = 1, kZstd = 2 };

Result<Compression> parse_compression(const std::string& name);  // "none", "lz4", "zstd"
const char* compression_name(Compression c);

constexpr size_t kBlockHeaderSize = 32;

// A plain (unencrypted) block.
std::string encode_block(std::string_view raw, Compression c = Compression::kNone);
// With a cipher, an encrypted block bound to `key`, the object key it will be stored
// under; without one, the plain block. Fails only if OpenSSL does.
Result<std::string> encode_block(std::string_view raw, Compression c, const BlockCipher* cipher,
                                 std::string_view key);
// cipher: the volume's, or nullptr for an unencrypted volume. `key` names the block in
// error messages and, for encrypted blocks, must be the key the block was encoded for.
Result<std::string> decode_block(std::string_view stored, const std::string& key,
                                 const BlockCipher* cipher = nullptr);

}  // namespace sluice::object
