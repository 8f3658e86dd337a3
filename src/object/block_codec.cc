// Block encoding: the 32-byte header of block_codec.h, then the raw or compressed payload.
//
// encode_block falls back to an uncompressed payload (and records kNone in the header)
// when compression would not make the block smaller, so incompressible data costs
// nothing to read. decode_block trusts nothing in the object: every header field is
// checked, the payload is decompressed into exactly raw_len bytes, and the XXH3 of the
// result must match. Any failure is kCorruption, logged once here. Encrypted blocks
// (see block_codec.h) are compressed first, then sealed; the checksum moves inside the
// ciphertext. A block stored uncompressed and unencrypted carries the sub-block table
// of block_codec.h, which decode_block_table / verify_block_range use for ranged reads.
#include "object/block_codec.h"

#include <lz4.h>
#include <zstd.h>

#include <cassert>
#include <limits>

#include "common/encoding.h"
#include "common/hash.h"
#include "common/logging.h"

namespace sluice::object {

namespace {

constexpr std::string_view kMagic = "SLBK";
constexpr uint8_t kVersion = 1;
constexpr int kZstdLevel = 1;
// One LZ4 input byte expands to at most 255 output bytes.
constexpr uint64_t kLz4MaxRatio = 255;
constexpr uint16_t kFlagEncrypted = 1;
constexpr uint16_t kFlagTable = 2;
constexpr size_t kChecksumSize = 8;
// The table checksum covers the header up to (not including) itself, then the table.
constexpr size_t kTableCoveredHeader = 24;

struct Header {
  uint8_t version = 0;
  uint8_t compression = 0;
  uint16_t flags = 0;
  uint32_t raw_len = 0;
  uint32_t payload_len = 0;
  uint64_t checksum = 0;
  uint64_t table_sum = 0;  // reserved (0) without a table
};

// Compresses raw with c; an empty result means "not worth it" (or not compressible).
std::string compress(std::string_view raw, Compression c) {
  std::string out;
  switch (c) {
    case Compression::kNone:
      return out;
    case Compression::kLz4: {
      int src_len = static_cast<int>(raw.size());
      out.resize(static_cast<size_t>(LZ4_compressBound(src_len)));
      int n = LZ4_compress_default(raw.data(), out.data(), src_len, static_cast<int>(out.size()));
      out.resize(n > 0 ? static_cast<size_t>(n) : 0);
      break;
    }
    case Compression::kZstd: {
      out.resize(ZSTD_compressBound(raw.size()));
      size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), kZstdLevel);
      out.resize(ZSTD_isError(n) ? 0 : n);
      break;
    }
  }
  if (out.size() >= raw.size()) out.clear();
  return out;
}

// Decompresses payload into exactly raw_len bytes; false if the payload is damaged or its
// decompressed size differs. raw_len comes from the header, so it is checked against what
// the payload can possibly hold before anything is allocated.
bool decompress(Compression c, std::string_view payload, uint32_t raw_len, std::string& out) {
  switch (c) {
    case Compression::kNone:
      if (payload.size() != raw_len) return false;
      out.assign(payload);
      return true;
    case Compression::kLz4: {
      if (raw_len > payload.size() * kLz4MaxRatio) return false;
      out.resize(raw_len);
      int n = LZ4_decompress_safe(payload.data(), out.data(), static_cast<int>(payload.size()),
                                  static_cast<int>(raw_len));
      return n >= 0 && static_cast<uint32_t>(n) == raw_len;
    }
    case Compression::kZstd: {
      if (ZSTD_getFrameContentSize(payload.data(), payload.size()) != raw_len) return false;
      out.resize(raw_len);
      size_t n = ZSTD_decompress(out.data(), raw_len, payload.data(), payload.size());
      return !ZSTD_isError(n) && n == raw_len;
    }
  }
  return false;
}

Status corrupt(const std::string& key, const std::string& what) {
  LOG_WARN("corrupt block '{}': {}", key, what);
  return Status(Code::kCorruption, "corrupt block '" + key + "': " + what);
}

}  // namespace

Result<Compression> parse_compression(const std::string& name) {
  if (name == "none") return Compression::kNone;
  if (name == "lz4") return Compression::kLz4;
  if (name == "zstd") return Compression::kZstd;
  return Status(Code::kInvalid, "unknown compression '" + name + "' (supported: none, lz4, zstd)");
}

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "none";
    case Compression::kLz4:
      return "lz4";
    case Compression::kZstd:
      return "zstd";
  }
  return "unknown";
}

namespace {

std::string encode_header(Compression c, uint16_t flags, size_t raw_len, size_t payload_len,
                          uint64_t checksum) {
  std::string out;
  out.reserve(kBlockHeaderSize + payload_len);
  out.append(kMagic);
  put_u8(out, kVersion);
  put_u8(out, static_cast<uint8_t>(c));
  put_u16(out, flags);
  put_u32(out, static_cast<uint32_t>(raw_len));
  put_u32(out, static_cast<uint32_t>(payload_len));
  put_u64(out, checksum);
  put_u64(out, 0);
  assert(out.size() == kBlockHeaderSize);
  return out;
}

// Associated data of an encrypted block: its header, then its object key.
std::string block_aad(std::string_view header, std::string_view key) {
  std::string aad(header);
  aad.append(key);
  return aad;
}

}  // namespace

// An uncompressed, unencrypted block with its sub-block table; checksum64(raw) in *sum.
std::string encode_with_table(std::string_view raw, uint64_t* sum) {
  const auto len = static_cast<uint32_t>(raw.size());
  std::string table;
  table.reserve(8 * size_t(sub_block_count(len)));
  // One pass over the data: the whole block's checksum takes each sub-block while the
  // sub-block's own checksum has just brought it into the CPU cache.
  Checksum64 whole;
  for (size_t at = 0; at < raw.size(); at += kSubBlockSize) {
    std::string_view piece = raw.substr(at, kSubBlockSize);
    put_u64(table, checksum64(piece));
    whole.update(piece);
  }
  *sum = whole.value();
  std::string out = encode_header(Compression::kNone, kFlagTable, len, table.size() + len, *sum);
  out.resize(kTableCoveredHeader);
  put_u64(out, checksum64(out + table));
  out.reserve(kBlockHeaderSize + table.size() + raw.size());
  out.append(table);
  out.append(raw);
  return out;
}

std::string encode_block(std::string_view raw, Compression c, uint64_t* sum) {
  assert(raw.size() <= std::numeric_limits<uint32_t>::max() / 2 && "block larger than 2 GiB");
  uint64_t whole = 0;
  if (sum == nullptr) sum = &whole;
  std::string compressed = compress(raw, c);
  if (compressed.empty()) return encode_with_table(raw, sum);
  *sum = checksum64(raw);
  std::string out = encode_header(c, 0, raw.size(), compressed.size(), *sum);
  out.append(compressed);
  return out;
}

Result<std::string> encode_block(std::string_view raw, Compression c, const BlockCipher* cipher,
                                 std::string_view key, uint64_t* sum) {
  if (cipher == nullptr) return encode_block(raw, c, sum);
  constexpr size_t kExtra = BlockCipher::kOverhead + kChecksumSize;
  assert(raw.size() <= std::numeric_limits<uint32_t>::max() - kExtra && "block too large");
  std::string compressed = compress(raw, c);
  if (compressed.empty()) c = Compression::kNone;
  std::string_view data = compressed.empty() ? raw : std::string_view(compressed);
  std::string plain;
  plain.reserve(kChecksumSize + data.size());
  const uint64_t whole = checksum64(raw);
  if (sum != nullptr) *sum = whole;
  put_u64(plain, whole);
  plain.append(data);
  std::string out = encode_header(c, kFlagEncrypted, raw.size(), data.size() + kExtra, 0);
  ASSIGN_OR_RETURN(std::string sealed, cipher->encrypt(plain, block_aad(out, key)));
  out.append(sealed);
  return out;
}

namespace {

// Parses and checks the header at the start of `stored` (at least kBlockHeaderSize bytes).
Result<Header> parse_header(std::string_view stored, const std::string& key) {
  if (stored.size() < kBlockHeaderSize) {
    return corrupt(key, "object of " + std::to_string(stored.size()) +
                            " bytes is shorter than the block header");
  }
  Decoder dec(stored);
  if (dec.get_bytes(kMagic.size()) != kMagic) return corrupt(key, "bad magic");
  Header h;
  h.version = dec.get_u8();
  h.compression = dec.get_u8();
  h.flags = dec.get_u16();
  h.raw_len = dec.get_u32();
  h.payload_len = dec.get_u32();
  h.checksum = dec.get_u64();
  h.table_sum = dec.get_u64();
  if (h.version != kVersion) {
    return corrupt(key, "unsupported block version " + std::to_string(h.version));
  }
  if (h.compression > static_cast<uint8_t>(Compression::kZstd)) {
    return corrupt(key, "unknown compression id " + std::to_string(h.compression));
  }
  if ((h.flags & ~(kFlagEncrypted | kFlagTable)) != 0) {
    return corrupt(key, "reserved header bits set");
  }
  if ((h.flags & kFlagTable) == 0) {
    if (h.table_sum != 0) return corrupt(key, "reserved header bits set");
  } else if ((h.flags & kFlagEncrypted) != 0 ||
             h.compression != static_cast<uint8_t>(Compression::kNone)) {
    return corrupt(key, "a compressed or encrypted block has a sub-block table");
  } else if (uint64_t(h.payload_len) !=
             8 * uint64_t(sub_block_count(h.raw_len)) + h.raw_len) {
    return corrupt(key, "payload length " + std::to_string(h.payload_len) +
                            " does not fit a table and " + std::to_string(h.raw_len) +
                            " raw bytes");
  }
  return h;
}

// Checks the table (the bytes after the header) of a block whose header h has the flag
// against its checksum, and returns its entries.
Result<std::vector<uint64_t>> parse_table(std::string_view head, const Header& h,
                                          const std::string& key) {
  const uint64_t end = block_table_end(h.raw_len);
  if (head.size() < end) return corrupt(key, "the sub-block table is truncated");
  std::string covered(head.substr(0, kTableCoveredHeader));
  covered.append(head.substr(kBlockHeaderSize, end - kBlockHeaderSize));
  if (checksum64(covered) != h.table_sum) return corrupt(key, "sub-block table checksum mismatch");
  std::vector<uint64_t> sums(sub_block_count(h.raw_len));
  Decoder dec(head.substr(kBlockHeaderSize, end - kBlockHeaderSize));
  for (uint64_t& s : sums) s = dec.get_u64();
  return sums;
}

}  // namespace

Result<std::string> decode_block(std::string_view stored, const std::string& key,
                                 const BlockCipher* cipher, uint64_t* sum) {
  ASSIGN_OR_RETURN(Header h, parse_header(stored, key));
  std::string_view payload = stored.substr(kBlockHeaderSize);
  if (payload.size() != h.payload_len) {
    return corrupt(key, "payload is " + std::to_string(payload.size()) + " bytes, header says " +
                            std::to_string(h.payload_len));
  }
  const bool encrypted = (h.flags & kFlagEncrypted) != 0;
  if (encrypted && cipher == nullptr) {
    return corrupt(key, "the block is encrypted, but the volume has no encryption key");
  }
  if (!encrypted && cipher != nullptr) {
    return corrupt(key, "the block is not encrypted, but the volume is");
  }
  std::string opened;  // the decrypted payload: u64 checksum, then the data
  if (encrypted) {
    if (h.checksum != 0) return corrupt(key, "an encrypted block has a checksum in the clear");
    auto plain = cipher->decrypt(payload, block_aad(stored.substr(0, kBlockHeaderSize), key));
    if (!plain.ok()) return corrupt(key, plain.status().message());
    if (plain->size() < kChecksumSize) return corrupt(key, "decrypted payload has no checksum");
    opened = std::move(*plain);
    h.checksum = Decoder(opened).get_u64();
    payload = std::string_view(opened).substr(kChecksumSize);
  }
  std::vector<uint64_t> sums;
  if ((h.flags & kFlagTable) != 0) {
    ASSIGN_OR_RETURN(sums, parse_table(stored, h, key));
    payload = stored.substr(block_table_end(h.raw_len));
  }
  auto c = static_cast<Compression>(h.compression);
  std::string raw;
  if (!decompress(c, payload, h.raw_len, raw)) {
    return corrupt(key, std::string(compression_name(c)) + " payload does not decode to " +
                            std::to_string(h.raw_len) + " bytes");
  }
  if (!sums.empty()) {
    // The table (checksummed with the header, the whole-block checksum included) covers
    // every byte: one pass over the data verifies it.
    BlockTable t{h.raw_len, std::move(sums)};
    RETURN_IF_ERROR(verify_block_range(t, 0, raw, key));
  } else if (checksum64(raw) != h.checksum) {
    return corrupt(key, "checksum mismatch");
  }
  if (sum != nullptr) *sum = h.checksum;
  return raw;
}

Result<std::string> decode_block_split(std::string_view head, std::string&& body,
                                       const std::string& key, const BlockCipher* cipher,
                                       uint64_t* sum) {
  if (cipher == nullptr && head.size() >= kBlockHeaderSize && !body.empty()) {
    auto h = parse_header(head, key);
    if (h.ok() && (h->flags & kFlagTable) != 0 && head.size() == block_table_end(h->raw_len)) {
      if (body.size() != h->raw_len) {
        return corrupt(key, "data is " + std::to_string(body.size()) +
                                " bytes, header says " + std::to_string(h->raw_len));
      }
      ASSIGN_OR_RETURN(auto sums, parse_table(head, *h, key));
      BlockTable t{h->raw_len, std::move(sums)};
      RETURN_IF_ERROR(verify_block_range(t, 0, body, key));
      if (sum != nullptr) *sum = h->checksum;
      return std::move(body);
    }
  }
  // Any other block (no table, compressed, encrypted, damaged): decoded whole.
  std::string stored(head);
  stored.append(body);
  return decode_block(stored, key, cipher, sum);
}

Result<BlockTable> decode_block_table(std::string_view head, const std::string& key,
                                      uint32_t raw_len) {
  ASSIGN_OR_RETURN(Header h, parse_header(head, key));
  if ((h.flags & kFlagTable) == 0) {
    return Status(Code::kNotSupported, "block '" + key + "' has no sub-block table");
  }
  if (h.raw_len != raw_len) {
    return corrupt(key, "header says " + std::to_string(h.raw_len) + " bytes, the key says " +
                            std::to_string(raw_len));
  }
  if (head.size() != block_table_end(raw_len)) {
    return corrupt(key, "the header and table are " + std::to_string(head.size()) +
                            " bytes, not " + std::to_string(block_table_end(raw_len)));
  }
  ASSIGN_OR_RETURN(auto sums, parse_table(head, h, key));
  return BlockTable{raw_len, std::move(sums)};
}

Status verify_block_range(const BlockTable& table, uint32_t first, std::string_view data,
                          const std::string& key) {
  const uint64_t start = uint64_t(first) * kSubBlockSize;
  const uint64_t end = start + data.size();
  if (data.empty() || end > table.raw_len || (end % kSubBlockSize != 0 && end != table.raw_len)) {
    return corrupt(key, "range [" + std::to_string(start) + ", " + std::to_string(end) +
                            ") is not whole sub-blocks of " + std::to_string(table.raw_len) +
                            " bytes");
  }
  for (uint64_t at = 0; at < data.size(); at += kSubBlockSize) {
    const size_t i = first + at / kSubBlockSize;
    if (checksum64(data.substr(at, kSubBlockSize)) != table.sums[i]) {
      return corrupt(key, "sub-block " + std::to_string(i) + " checksum mismatch");
    }
  }
  return Status::OK();
}

Result<BlockTable> decode_block_range(std::string_view head, uint32_t first,
                                      std::string_view data, const std::string& key,
                                      uint32_t raw_len) {
  ASSIGN_OR_RETURN(BlockTable t, decode_block_table(head, key, raw_len));
  RETURN_IF_ERROR(verify_block_range(t, first, data, key));
  return t;
}

}  // namespace sluice::object
