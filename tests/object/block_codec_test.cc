// Block codec: round trips for every compression, the header layout, and detection of
// every kind of damage (each must be kCorruption, never data).
#include "object/block_codec.h"

#include <gtest/gtest.h>

#include <random>

#include "common/encoding.h"
#include "common/hash.h"
#include "object/block_cipher.h"

namespace sluice::object {
namespace {

constexpr size_t k4MiB = 4 << 20;

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Text-like data that every codec shrinks a lot.
std::string compressible_bytes(size_t n) {
  std::string s;
  s.reserve(n);
  for (size_t i = 0; s.size() < n; i++) s += "tensor." + std::to_string(i % 97) + ".weight;";
  s.resize(n);
  return s;
}

uint8_t header_compression(const std::string& stored) { return uint8_t(stored[5]); }

class CodecTest : public ::testing::TestWithParam<Compression> {};

TEST_P(CodecTest, RoundTripsEmptySmallRandomAndCompressibleData) {
  const std::string inputs[] = {"", "hello, block", random_bytes(k4MiB, 1),
                                compressible_bytes(k4MiB)};
  for (const auto& raw : inputs) {
    uint64_t encoded_sum = 0, decoded_sum = 1;
    std::string stored = encode_block(raw, GetParam(), &encoded_sum);
    auto back = decode_block(stored, "k", nullptr, &decoded_sum);
    ASSERT_TRUE(back.ok()) << back.status().ToString() << " size=" << raw.size();
    EXPECT_TRUE(*back == raw) << "size=" << raw.size();
    // Both report the checksum a cache keeps the data under.
    EXPECT_EQ(encoded_sum, checksum64(raw)) << "size=" << raw.size();
    EXPECT_EQ(decoded_sum, checksum64(raw)) << "size=" << raw.size();
  }
}

TEST_P(CodecTest, CompressesWhenItHelpsAndStoresRawOtherwise) {
  std::string text = compressible_bytes(k4MiB);
  std::string stored = encode_block(text, GetParam());
  EXPECT_EQ(header_compression(stored), uint8_t(GetParam()));
  if (GetParam() != Compression::kNone) {
    EXPECT_LT(stored.size(), text.size() / 4);
  }
  std::string noise = random_bytes(64 * 1024, 2);
  std::string raw_stored = encode_block(noise, GetParam());
  EXPECT_EQ(header_compression(raw_stored), uint8_t(Compression::kNone));
  // Stored raw, with its sub-block table (one entry for 64 KiB).
  EXPECT_EQ(raw_stored.size(), kBlockHeaderSize + 8 + noise.size());
}

TEST_P(CodecTest, HeaderLayoutMatchesTheFormat) {
  std::string raw = compressible_bytes(100000);
  std::string stored = encode_block(raw, GetParam());
  const bool table = GetParam() == Compression::kNone;
  Decoder d(stored);
  EXPECT_EQ(d.get_bytes(4), "SLBK");
  EXPECT_EQ(d.get_u8(), 1);                                  // version
  EXPECT_EQ(d.get_u8(), uint8_t(GetParam()));                // compression
  EXPECT_EQ(d.get_u16(), table ? 2 : 0);                     // flags: table, not encrypted
  EXPECT_EQ(d.get_u32(), raw.size());                        // raw_len
  EXPECT_EQ(d.get_u32(), stored.size() - kBlockHeaderSize);  // payload_len
  EXPECT_EQ(d.get_u64(), checksum64(raw));
  if (!table) {
    EXPECT_EQ(d.get_u64(), 0u);  // reserved
    EXPECT_TRUE(d.ok());
    return;
  }
  // 100000 bytes: two sub-blocks, the second 34464 bytes; the table checksum covers
  // header bytes [0, 24) and the table.
  const uint64_t table_sum = d.get_u64();
  EXPECT_EQ(d.get_u64(), checksum64(std::string_view(raw).substr(0, kSubBlockSize)));
  EXPECT_EQ(d.get_u64(), checksum64(std::string_view(raw).substr(kSubBlockSize)));
  EXPECT_EQ(table_sum, checksum64(stored.substr(0, 24) + stored.substr(32, 16)));
  EXPECT_EQ(block_table_end(uint32_t(raw.size())), kBlockHeaderSize + 16);
  EXPECT_EQ(d.rest(), raw);
  EXPECT_TRUE(d.ok());
}

void expect_corrupt(const std::string& stored, const std::string& what) {
  auto r = decode_block(stored, "vol/chunks/0/0/7_0_100");
  ASSERT_FALSE(r.ok()) << what << ": damaged block decoded as data";
  EXPECT_EQ(r.status().code(), Code::kCorruption) << what;
  EXPECT_NE(r.status().message().find("vol/chunks/0/0/7_0_100"), std::string::npos) << what;
}

TEST_P(CodecTest, FlippedPayloadByteIsCorruption) {
  std::string stored = encode_block(compressible_bytes(200000), GetParam());
  for (size_t pos : {kBlockHeaderSize, stored.size() / 2, stored.size() - 1}) {
    std::string bad = stored;
    bad[pos] ^= 0x01;
    expect_corrupt(bad, "payload byte " + std::to_string(pos));
  }
}

TEST_P(CodecTest, EveryFlippedHeaderByteIsCorruption) {
  std::string stored = encode_block(compressible_bytes(50000), GetParam());
  for (size_t pos = 0; pos < kBlockHeaderSize; pos++) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string bad = stored;
      bad[pos] = static_cast<char>(bad[pos] ^ mask);
      expect_corrupt(bad, "header byte " + std::to_string(pos) + " ^ " + std::to_string(mask));
    }
  }
}

TEST_P(CodecTest, TruncatedOrExtendedObjectIsCorruption) {
  std::string stored = encode_block(compressible_bytes(50000), GetParam());
  expect_corrupt(stored.substr(0, stored.size() - 1), "last byte missing");
  expect_corrupt(stored.substr(0, kBlockHeaderSize), "header only");
  expect_corrupt(stored.substr(0, 10), "partial header");
  expect_corrupt(stored + "x", "trailing byte");
}

INSTANTIATE_TEST_SUITE_P(AllCompressions, CodecTest,
                         ::testing::Values(Compression::kNone, Compression::kLz4,
                                           Compression::kZstd),
                         [](const auto& info) {
                           return std::string(compression_name(info.param));
                         });

TEST(BlockCodec, EmptyObjectIsCorruption) { expect_corrupt("", "empty object"); }

TEST(BlockCodec, ForeignObjectIsCorruption) {
  std::string stored = encode_block("data", Compression::kNone);
  stored.replace(0, 4, "PK\x03\x04");
  expect_corrupt(stored, "wrong magic");
  expect_corrupt(std::string(100, '\0'), "zeros");
  expect_corrupt(random_bytes(5000, 3), "noise");
}

TEST(BlockCodec, ImplausibleRawLengthIsRejectedBeforeDecoding) {
  // A consistent-looking header whose raw_len claims 4 GiB from a tiny payload.
  for (Compression c : {Compression::kLz4, Compression::kZstd}) {
    std::string stored = encode_block(compressible_bytes(10000), c);
    std::string bad = stored.substr(0, 8);
    put_u32(bad, 0xffffffffu);
    bad += stored.substr(12);
    expect_corrupt(bad, std::string("raw_len 4 GiB for ") + compression_name(c));
  }
}

TEST(BlockCodec, DecodeDoesNotTrustTheCompressionOfAnotherBlock) {
  // Same raw length, different content: header of block A with the payload of block B.
  std::string a = encode_block(compressible_bytes(30000), Compression::kZstd);
  std::string raw_b = compressible_bytes(30001).substr(1);
  std::string b = encode_block(raw_b, Compression::kZstd);
  std::string mixed = a.substr(0, 12);
  put_u32(mixed, static_cast<uint32_t>(b.size() - kBlockHeaderSize));
  mixed += a.substr(16, 16) + b.substr(kBlockHeaderSize);
  expect_corrupt(mixed, "payload of another block");
}

TEST(BlockCodec, ParseAndNameCompressions) {
  for (Compression c : {Compression::kNone, Compression::kLz4, Compression::kZstd}) {
    auto parsed = parse_compression(compression_name(c));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, c);
  }
  auto bad = parse_compression("gzip");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalid);
  EXPECT_NE(bad.status().message().find("gzip"), std::string::npos);
  EXPECT_EQ(parse_compression("").status().code(), Code::kInvalid);
}

// ---- sub-block table and ranged decode ----

// A block of 4 MiB + 1000 bytes (65 sub-blocks, the last 1000 bytes), stored with its
// table, split as a ranged reader sees it.
struct Tabled {
  std::string raw = random_bytes(k4MiB + 1000, 9);
  std::string stored = encode_block(raw, Compression::kNone);
  uint32_t len() const { return static_cast<uint32_t>(raw.size()); }
  std::string head() const { return stored.substr(0, block_table_end(len())); }
  // Raw sub-blocks [first, first+n) as stored (clipped at the end of the block).
  std::string data(uint32_t first, uint32_t n) const {
    const uint64_t at = block_table_end(len()) + uint64_t(first) * kSubBlockSize;
    return stored.substr(at, uint64_t(n) * kSubBlockSize);
  }
};

constexpr char kKey[] = "vol/chunks/0/0/7_0_4195304";

TEST(BlockTable, RoundTripsWithTheTable) {
  Tabled b;
  EXPECT_EQ(sub_block_count(b.len()), 65u);
  EXPECT_EQ(b.stored.size(), block_table_end(b.len()) + b.raw.size());
  auto back = decode_block(b.stored, kKey);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == b.raw);
  // Raw byte X is at table end + X.
  EXPECT_EQ(b.stored.substr(block_table_end(b.len()) + 123456, 100), b.raw.substr(123456, 100));
}

TEST(BlockTable, RangedDecodeOfFirstMiddleAndLastShortSubBlocks) {
  Tabled b;
  const std::pair<uint32_t, uint32_t> ranges[] = {{0, 1}, {0, 3}, {17, 1}, {30, 5}, {64, 1},
                                                  {60, 5}};
  for (auto [first, n] : ranges) {
    std::string data = b.data(first, n);
    EXPECT_EQ(data, b.raw.substr(uint64_t(first) * kSubBlockSize, uint64_t(n) * kSubBlockSize));
    auto t = decode_block_range(b.head(), first, data, kKey, b.len());
    ASSERT_TRUE(t.ok()) << first << "+" << n << ": " << t.status().ToString();
    EXPECT_EQ(t->sums.size(), 65u);
    EXPECT_EQ(t->raw_len, b.len());
  }
  EXPECT_EQ(b.data(64, 1).size(), 1000u);
}

TEST(BlockTable, AFlippedDataByteFailsOnlyTheRangesCoveringIt) {
  Tabled b;
  const uint64_t pos = block_table_end(b.len()) + 20 * uint64_t(kSubBlockSize) + 777;
  b.stored[pos] ^= 0x10;  // in sub-block 20
  auto t = decode_block_table(b.head(), kKey, b.len());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  for (auto [first, n] : {std::pair<uint32_t, uint32_t>{20, 1}, {18, 4}, {0, 65}}) {
    Status s = verify_block_range(*t, first, b.data(first, n), kKey);
    EXPECT_EQ(s.code(), Code::kCorruption) << first << "+" << n;
    EXPECT_NE(s.message().find("sub-block 20"), std::string::npos) << s.message();
  }
  for (auto [first, n] : {std::pair<uint32_t, uint32_t>{19, 1}, {21, 3}, {0, 20}, {64, 1}}) {
    EXPECT_TRUE(verify_block_range(*t, first, b.data(first, n), kKey).ok()) << first << "+" << n;
  }
  EXPECT_EQ(decode_block(b.stored, kKey).status().code(), Code::kCorruption);
}

TEST(BlockTable, ADamagedHeaderOrTableFailsEveryRange) {
  Tabled b;
  for (size_t pos = 0; pos < block_table_end(b.len()); pos++) {
    std::string head = b.head();
    head[pos] ^= 0x01;
    auto t = decode_block_range(head, 3, b.data(3, 1), kKey, b.len());
    EXPECT_EQ(t.status().code(), Code::kCorruption) << "byte " << pos << ": "
                                                    << t.status().ToString();
    std::string whole = b.stored;
    whole[pos] ^= 0x01;
    EXPECT_EQ(decode_block(whole, kKey).status().code(), Code::kCorruption) << "byte " << pos;
  }
  // Clearing the table flag (header byte 7, bit 1) leaves a table checksum where a block
  // without a table has zeros: damage, not "no table".
  std::string head = b.head();
  head[7] ^= 0x02;
  EXPECT_EQ(decode_block_table(head, kKey, b.len()).status().code(), Code::kCorruption);
  std::string whole = b.stored;
  whole[7] ^= 0x02;
  EXPECT_EQ(decode_block(whole, kKey).status().code(), Code::kCorruption);
}

TEST(BlockTable, RangesThatDoNotFitTheBlockAreCorruption) {
  Tabled b;
  auto t = decode_block_table(b.head(), kKey, b.len());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(verify_block_range(*t, 3, b.data(3, 1).substr(1), kKey).code(), Code::kCorruption);
  EXPECT_EQ(verify_block_range(*t, 3, "", kKey).code(), Code::kCorruption);
  EXPECT_EQ(verify_block_range(*t, 64, b.data(64, 1) + "x", kKey).code(), Code::kCorruption);
  EXPECT_EQ(verify_block_range(*t, 65, "x", kKey).code(), Code::kCorruption);
  // The length in the key must be the header's; the head must be exactly header + table.
  EXPECT_EQ(decode_block_table(b.head(), kKey, b.len() - 1).status().code(), Code::kCorruption);
  EXPECT_EQ(decode_block_table(b.head().substr(0, 100), kKey, b.len()).status().code(),
            Code::kCorruption);
  EXPECT_EQ(decode_block_table(b.stored.substr(0, 10), kKey, b.len()).status().code(),
            Code::kCorruption);
}

// An uncompressed block in the format before the table: header with flags 0, raw data.
std::string old_format_block(std::string_view raw) {
  std::string out = "SLBK";
  put_u8(out, 1);
  put_u8(out, 0);
  put_u16(out, 0);
  put_u32(out, static_cast<uint32_t>(raw.size()));
  put_u32(out, static_cast<uint32_t>(raw.size()));
  put_u64(out, checksum64(raw));
  put_u64(out, 0);
  out.append(raw);
  return out;
}

// A random 1 MiB block, the same sealed with a new key, and compressible data.
struct OtherBlocks {
  std::string raw = random_bytes(1 << 20, 4);
  uint32_t len = static_cast<uint32_t>(raw.size());
  std::string text = compressible_bytes(1 << 20);
  Result<std::shared_ptr<const BlockCipher>> cipher = BlockCipher::generate();
  Result<std::string> sealed = cipher.ok()
                                   ? encode_block(raw, Compression::kNone, cipher->get(), kKey)
                                   : Result<std::string>(cipher.status());
};

TEST(BlockTable, OldCompressedAndEncryptedBlocksAreNotRangeable) {
  OtherBlocks o;
  ASSERT_TRUE(o.sealed.ok()) << o.sealed.status().ToString();
  const std::string& raw = o.raw;
  const uint32_t len = o.len;
  const std::string& text = o.text;
  const std::string& sealed_block = *o.sealed;
  const std::string old = old_format_block(raw);
  const std::pair<std::string, std::string> cases[] = {
      {"old format", old},
      {"lz4", encode_block(text, Compression::kLz4)},
      {"zstd", encode_block(text, Compression::kZstd)},
      {"encrypted", sealed_block}};
  for (const auto& [what, stored] : cases) {
    auto t = decode_block_table(stored.substr(0, block_table_end(len)), kKey, len);
    EXPECT_EQ(t.status().code(), Code::kNotSupported) << what << ": " << t.status().ToString();
  }
  // The old format still decodes whole, and still detects damage.
  auto back = decode_block(old, kKey);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == raw);
  std::string bad = old;
  bad[bad.size() / 2] ^= 1;
  EXPECT_EQ(decode_block(bad, kKey).status().code(), Code::kCorruption);
}

TEST(BlockTable, WholeDecodeChecksTheTableAgainstTheData) {
  // A table entry that disagrees with its data (table checksum recomputed, so only the
  // entry check can find it) is corruption.
  Tabled b;
  std::string bad = b.stored;
  bad[kBlockHeaderSize + 8 * 5] ^= 0x40;  // entry of sub-block 5
  std::string covered = bad.substr(0, 24) + bad.substr(32, block_table_end(b.len()) - 32);
  std::string sum;
  put_u64(sum, checksum64(covered));
  bad.replace(24, 8, sum);
  auto r = decode_block(bad, kKey);
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find("sub-block 5"), std::string::npos) << r.status().message();
}

// ---- decode of an object split after its table (Store::get_split) ----

TEST(BlockSplit, ATabledBlockComesBackAsTheBodyItselfVerified) {
  Tabled b;
  std::string body = b.stored.substr(block_table_end(b.len()));
  const char* at = body.data();
  uint64_t sum = 0;
  auto back = decode_block_split(b.head(), std::move(body), kKey, nullptr, &sum);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == b.raw);
  EXPECT_EQ(back->data(), at);  // the same buffer: no copy
  EXPECT_EQ(sum, checksum64(b.raw));  // from the header, which the table's checksum covers
  // Damage anywhere in the data or the head is corruption.
  for (uint64_t pos : {uint64_t(0), uint64_t(kSubBlockSize) * 40 + 5, uint64_t(b.len() - 1)}) {
    std::string bad = b.stored.substr(block_table_end(b.len()));
    bad[pos] ^= 0x20;
    auto r = decode_block_split(b.head(), std::move(bad), kKey);
    EXPECT_EQ(r.status().code(), Code::kCorruption) << pos;
  }
  std::string head = b.head();
  head[kBlockHeaderSize + 3] ^= 1;  // in the table
  EXPECT_EQ(decode_block_split(head, b.stored.substr(block_table_end(b.len())), kKey)
                .status()
                .code(),
            Code::kCorruption);
  // A truncated or extended body.
  EXPECT_EQ(decode_block_split(b.head(), b.stored.substr(block_table_end(b.len()) + 1), kKey)
                .status()
                .code(),
            Code::kCorruption);
  EXPECT_EQ(decode_block_split(b.head(), b.stored.substr(block_table_end(b.len())) + "x", kKey)
                .status()
                .code(),
            Code::kCorruption);
}

TEST(BlockSplit, OtherBlocksAndOtherSplitsDecodeWhole) {
  OtherBlocks o;
  ASSERT_TRUE(o.sealed.ok()) << o.sealed.status().ToString();
  const std::string& raw = o.raw;
  const uint32_t len = o.len;
  const std::string& text = o.text;
  const BlockCipher* cipher = o.cipher->get();
  const std::string tabled = encode_block(raw, Compression::kNone);
  struct Case {
    const char* what;
    std::string stored;
    std::string want;
    const BlockCipher* cipher;
    size_t split;
  } cases[] = {{"old format", old_format_block(raw), raw, nullptr, block_table_end(len)},
               {"lz4", encode_block(text, Compression::kLz4), text, nullptr, block_table_end(len)},
               {"zstd", encode_block(text, Compression::kZstd), text, nullptr, 100},
               {"encrypted", *o.sealed, raw, cipher, block_table_end(len)},
               {"tabled, split early", tabled, raw, nullptr, 10},
               {"tabled, split late", tabled, raw, nullptr, block_table_end(len) + 7}};
  for (const auto& c : cases) {
    const size_t n = std::min(c.split, c.stored.size());
    uint64_t sum = 0;
    auto back =
        decode_block_split(c.stored.substr(0, n), c.stored.substr(n), kKey, c.cipher, &sum);
    ASSERT_TRUE(back.ok()) << c.what << ": " << back.status().ToString();
    EXPECT_TRUE(*back == c.want) << c.what;
    EXPECT_EQ(sum, checksum64(c.want)) << c.what;  // the checksum a cache may keep it under
    uint64_t whole_sum = 0;
    ASSERT_TRUE(decode_block(c.stored, kKey, c.cipher, &whole_sum).ok()) << c.what;
    EXPECT_EQ(whole_sum, checksum64(c.want)) << c.what;
  }
  // A plain tabled block read by an encrypted volume is refused, split or not.
  auto r = decode_block_split(tabled.substr(0, block_table_end(len)),
                              tabled.substr(block_table_end(len)), kKey, cipher);
  EXPECT_EQ(r.status().code(), Code::kCorruption);
}

}  // namespace
}  // namespace sluice::object
