// Block codec: round trips for every compression, the header layout, and detection of
// every kind of damage (each must be kCorruption, never data).
#include "object/block_codec.h"

#include <gtest/gtest.h>

#include <random>

#include "common/encoding.h"
#include "common/hash.h"

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
    std::string stored = encode_block(raw, GetParam());
    auto back = decode_block(stored, "k");
    ASSERT_TRUE(back.ok()) << back.status().ToString() << " size=" << raw.size();
    EXPECT_TRUE(*back == raw) << "size=" << raw.size();
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
  EXPECT_EQ(raw_stored.size(), kBlockHeaderSize + noise.size());
}

TEST_P(CodecTest, HeaderLayoutMatchesTheFormat) {
  std::string raw = compressible_bytes(100000);
  std::string stored = encode_block(raw, GetParam());
  Decoder d(stored);
  EXPECT_EQ(d.get_bytes(4), "SLBK");
  EXPECT_EQ(d.get_u8(), 1);                                  // version
  EXPECT_EQ(d.get_u8(), uint8_t(GetParam()));                // compression
  EXPECT_EQ(d.get_u16(), 0);                                 // flags: not encrypted
  EXPECT_EQ(d.get_u32(), raw.size());                        // raw_len
  EXPECT_EQ(d.get_u32(), stored.size() - kBlockHeaderSize);  // payload_len
  EXPECT_EQ(d.get_u64(), checksum64(raw));
  EXPECT_EQ(d.get_u64(), 0u);  // reserved
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

}  // namespace
}  // namespace sluice::object
