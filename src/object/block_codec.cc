// Block encoding: the 32-byte header of block_codec.h, then the raw or compressed payload.
//
// encode_block falls back to an uncompressed payload (and records kNone in the header)
// when compression would not make the block smaller, so incompressible data costs
// nothing to read. decode_block trusts nothing in the object: every header field is
// checked, the payload is decompressed into exactly raw_len bytes, and the XXH3 of the
// result must match. Any failure is kCorruption, logged once here. Encrypted blocks
// (see block_codec.h) are compressed first, then sealed; the checksum moves inside the
// ciphertext.
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
constexpr size_t kChecksumSize = 8;

struct Header {
  uint8_t version = 0;
  uint8_t compression = 0;
  uint16_t flags = 0;
  uint32_t raw_len = 0;
  uint32_t payload_len = 0;
  uint64_t checksum = 0;
  uint64_t reserved2 = 0;
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

std::string encode_block(std::string_view raw, Compression c) {
  assert(raw.size() <= std::numeric_limits<uint32_t>::max() && "block larger than 4 GiB");
  std::string compressed = compress(raw, c);
  if (compressed.empty()) c = Compression::kNone;
  std::string_view payload = compressed.empty() ? raw : std::string_view(compressed);
  std::string out = encode_header(c, 0, raw.size(), payload.size(), checksum64(raw));
  out.append(payload);
  return out;
}

Result<std::string> encode_block(std::string_view raw, Compression c, const BlockCipher* cipher,
                                 std::string_view key) {
  if (cipher == nullptr) return encode_block(raw, c);
  constexpr size_t kExtra = BlockCipher::kOverhead + kChecksumSize;
  assert(raw.size() <= std::numeric_limits<uint32_t>::max() - kExtra && "block too large");
  std::string compressed = compress(raw, c);
  if (compressed.empty()) c = Compression::kNone;
  std::string_view data = compressed.empty() ? raw : std::string_view(compressed);
  std::string plain;
  plain.reserve(kChecksumSize + data.size());
  put_u64(plain, checksum64(raw));
  plain.append(data);
  std::string out = encode_header(c, kFlagEncrypted, raw.size(), data.size() + kExtra, 0);
  ASSIGN_OR_RETURN(std::string sealed, cipher->encrypt(plain, block_aad(out, key)));
  out.append(sealed);
  return out;
}

Result<std::string> decode_block(std::string_view stored, const std::string& key,
                                 const BlockCipher* cipher) {
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
  h.reserved2 = dec.get_u64();
  if (h.version != kVersion) {
    return corrupt(key, "unsupported block version " + std::to_string(h.version));
  }
  if (h.compression > static_cast<uint8_t>(Compression::kZstd)) {
    return corrupt(key, "unknown compression id " + std::to_string(h.compression));
  }
  if ((h.flags & ~kFlagEncrypted) != 0 || h.reserved2 != 0) {
    return corrupt(key, "reserved header bits set");
  }
  std::string_view payload = dec.rest();
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
  auto c = static_cast<Compression>(h.compression);
  std::string raw;
  if (!decompress(c, payload, h.raw_len, raw)) {
    return corrupt(key, std::string(compression_name(c)) + " payload does not decode to " +
                            std::to_string(h.raw_len) + " bytes");
  }
  if (checksum64(raw) != h.checksum) return corrupt(key, "checksum mismatch");
  return raw;
}

}  // namespace sluice::object
