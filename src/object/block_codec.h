// The on-store format of a data block: a 32-byte header, then the payload.
//
//   magic "SLBK" | u8 version | u8 compression | u16 flags
//   u32 raw_len (bytes of file data) | u32 payload_len | u64 checksum (XXH3 of raw data)
//   u64 table checksum (0 without a table) | payload (raw data, or compressed)
//
// Sub-block table (flags bit 1): a block stored uncompressed and unencrypted carries one
// u64 XXH3 per 64 KiB sub-block of its raw data (the last sub-block may be shorter),
// between the header and the raw data:
//   header (32) | table: ceil(raw_len / 64 KiB) x u64 | raw data
// payload_len is then 8 x sub-blocks + raw_len, and the header's last field is the XXH3
// of header bytes [0, 24) followed by the table. Where the table ends and where raw byte
// X lies follow from raw_len alone (it is in the object key, see object/layout.h), so a
// reader can GET [0, table end) and any sub-block-aligned range of the data, and verify
// the range without the rest of the block (decode_block_table, verify_block_range).
// encode_block adds the table whenever the payload ends up uncompressed and unencrypted
// (compression none, or compression that did not pay off). Blocks without the flag
// (written before it existed, compressed or encrypted) are read whole only.
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
// never data. With a table it also checks the table checksum and every table entry.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "object/block_cipher.h"

namespace sluice::object {

enum class Compression : uint8_t { kNone = 0, kLz4 = 1, kZstd = 2 };

Result<Compression> parse_compression(const std::string& name);  // "none", "lz4", "zstd"
const char* compression_name(Compression c);

constexpr size_t kBlockHeaderSize = 32;

// A plain (unencrypted) block. sum, when given, receives checksum64(raw), which encoding
// computes anyway (a cache that keeps raw under it need not hash it again).
std::string encode_block(std::string_view raw, Compression c = Compression::kNone,
                         uint64_t* sum = nullptr);
// With a cipher, an encrypted block bound to `key`, the object key it will be stored
// under; without one, the plain block. Fails only if OpenSSL does.
Result<std::string> encode_block(std::string_view raw, Compression c, const BlockCipher* cipher,
                                 std::string_view key, uint64_t* sum = nullptr);
// cipher: the volume's, or nullptr for an unencrypted volume. `key` names the block in
// error messages and, for encrypted blocks, must be the key the block was encoded for.
// sum, when given, receives the data's checksum64 as the block records it: checked
// against the data, or (a block with a sub-block table) covered by the table's checksum,
// whose entries were checked against the data. A cache that keeps the data under its
// checksum64 takes it from here instead of hashing the data again.
Result<std::string> decode_block(std::string_view stored, const std::string& key,
                                 const BlockCipher* cipher = nullptr, uint64_t* sum = nullptr);
// decode_block() of an object read in two parts (Store::get_split at
// block_table_end(raw_len)). A plain block with a sub-block table, split after its table,
// is verified and returned as `body` itself, without a copy; any other block is decoded
// whole, as decode_block(head + body).
Result<std::string> decode_block_split(std::string_view head, std::string&& body,
                                       const std::string& key, const BlockCipher* cipher = nullptr,
                                       uint64_t* sum = nullptr);

// ---- ranged reads of blocks with a sub-block table (see above) ----
constexpr uint32_t kSubBlockSize = 64 << 10;

// Sub-blocks of a block of raw_len bytes, and the end of its table: bytes [0, table end)
// of the object are its header and table; raw byte X is at object offset table end + X.
inline uint32_t sub_block_count(uint32_t raw_len) {
  return static_cast<uint32_t>((uint64_t(raw_len) + kSubBlockSize - 1) / kSubBlockSize);
}
inline uint64_t block_table_end(uint32_t raw_len) {
  return kBlockHeaderSize + 8 * uint64_t(sub_block_count(raw_len));
}

// The verified sub-block checksums of one block.
struct BlockTable {
  uint32_t raw_len = 0;
  std::vector<uint64_t> sums;  // one per sub-block
};

// Parses bytes [0, block_table_end(raw_len)) of the block stored under `key`, raw_len
// being the length its key names. kNotSupported when the block has no table (an older
// block, a compressed or an encrypted one: read it whole); kCorruption when the header
// is damaged, does not match raw_len, or the table fails its checksum.
Result<BlockTable> decode_block_table(std::string_view head, const std::string& key,
                                      uint32_t raw_len);
// Verifies `data`, raw bytes [first * kSubBlockSize, ...) of the block: whole sub-blocks,
// the last one of the block possibly shorter. kCorruption when a sub-block does not match
// its entry or the range is not sub-block aligned or runs past the block.
Status verify_block_range(const BlockTable& table, uint32_t first, std::string_view data,
                          const std::string& key);
// Both: the ranged decode of a block from its head and one of its data ranges.
Result<BlockTable> decode_block_range(std::string_view head, uint32_t first,
                                      std::string_view data, const std::string& key,
                                      uint32_t raw_len);

}  // namespace sluice::object
