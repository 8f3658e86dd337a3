// Encryption at rest: the AES-256-GCM block cipher, encrypted blocks in the block codec
// (round trips with every compression; tampering, a wrong data key, a block moved to
// another key and plain/encrypted mix-ups are all kCorruption), and the RSA key that
// wraps the data key (PEMs with and without a passphrase, generated here).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <random>

#include "common/encoding.h"
#include "common/hash.h"
#include "object/block_cipher.h"
#include "object/block_codec.h"
#include "temp_dir.h"

namespace sluice::object {
namespace {

constexpr const char* kKey = "vol/chunks/0/0/7_0_300000";

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string compressible_bytes(size_t n) {
  std::string s;
  for (size_t i = 0; s.size() < n; i++) s += "tensor." + std::to_string(i % 97) + ".weight;";
  s.resize(n);
  return s;
}

std::shared_ptr<const BlockCipher> new_cipher() {
  auto c = BlockCipher::generate();
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

// ---- BlockCipher ----

TEST(BlockCipher, SealsAndOpens) {
  auto c = new_cipher();
  for (const std::string& plain : {std::string(), std::string("x"), random_bytes(100000, 1)}) {
    auto sealed = c->encrypt(plain, "aad");
    ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
    EXPECT_EQ(sealed->size(), plain.size() + BlockCipher::kOverhead);
    auto opened = c->decrypt(*sealed, "aad");
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_TRUE(*opened == plain);
  }
}

TEST(BlockCipher, FreshNonceEveryTime) {
  auto c = new_cipher();
  auto a = c->encrypt("same text", "");
  auto b = c->encrypt("same text", "");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->substr(0, BlockCipher::kNonceSize), b->substr(0, BlockCipher::kNonceSize));
  EXPECT_NE(*a, *b);
}

TEST(BlockCipher, TamperWrongKeyOrOtherAadFail) {
  auto c = new_cipher();
  auto sealed = c->encrypt(random_bytes(1000, 2), "aad");
  ASSERT_TRUE(sealed.ok());
  for (size_t pos : {size_t{0}, BlockCipher::kNonceSize, sealed->size() / 2, sealed->size() - 1}) {
    std::string bad = *sealed;
    bad[pos] ^= 0x01;
    EXPECT_EQ(c->decrypt(bad, "aad").status().code(), Code::kCorruption) << "byte " << pos;
  }
  EXPECT_EQ(new_cipher()->decrypt(*sealed, "aad").status().code(), Code::kCorruption);
  EXPECT_EQ(c->decrypt(*sealed, "aae").status().code(), Code::kCorruption);
  EXPECT_EQ(c->decrypt(*sealed, "").status().code(), Code::kCorruption);
  EXPECT_EQ(c->decrypt(sealed->substr(0, 20), "aad").status().code(), Code::kCorruption);
}

TEST(BlockCipher, FromKeyRebuildsTheSameCipher) {
  auto c = new_cipher();
  auto again = BlockCipher::from_key(c->key());
  ASSERT_TRUE(again.ok());
  auto sealed = c->encrypt("payload", "k");
  ASSERT_TRUE(sealed.ok());
  auto opened = (*again)->decrypt(*sealed, "k");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(*opened, "payload");
  EXPECT_EQ(BlockCipher::from_key("short").status().code(), Code::kInvalid);
}

// ---- encrypted blocks ----

class EncryptedCodecTest : public ::testing::TestWithParam<Compression> {
 protected:
  std::shared_ptr<const BlockCipher> cipher_ = new_cipher();

  std::string encode(std::string_view raw, const std::string& key = kKey) {
    auto stored = encode_block(raw, GetParam(), cipher_.get(), key);
    EXPECT_TRUE(stored.ok()) << stored.status().ToString();
    return stored.ok() ? *stored : std::string();
  }
  void expect_corrupt(const std::string& stored, const BlockCipher* cipher,
                      const std::string& what, const std::string& key = kKey) {
    auto r = decode_block(stored, key, cipher);
    ASSERT_FALSE(r.ok()) << what << ": decoded as data";
    EXPECT_EQ(r.status().code(), Code::kCorruption) << what;
    EXPECT_NE(r.status().message().find(key), std::string::npos) << r.status().message();
  }
};

TEST_P(EncryptedCodecTest, RoundTrips) {
  const std::string inputs[] = {"", "hello, block", random_bytes(4 << 20, 1),
                                compressible_bytes(4 << 20)};
  for (const auto& raw : inputs) {
    std::string stored = encode(raw);
    uint64_t decoded_sum = 1;
    auto back = decode_block(stored, kKey, cipher_.get(), &decoded_sum);
    ASSERT_TRUE(back.ok()) << back.status().ToString() << " size=" << raw.size();
    EXPECT_TRUE(*back == raw) << "size=" << raw.size();
    uint64_t encoded_sum = 0;
    ASSERT_TRUE(encode_block(raw, GetParam(), cipher_.get(), kKey, &encoded_sum).ok());
    EXPECT_EQ(encoded_sum, checksum64(raw)) << "size=" << raw.size();
    EXPECT_EQ(decoded_sum, checksum64(raw)) << "size=" << raw.size();
  }
}

TEST_P(EncryptedCodecTest, CompressesThenEncryptsAndHidesTheChecksum) {
  std::string raw = compressible_bytes(1 << 20);
  std::string stored = encode(raw);
  Decoder d(stored);
  EXPECT_EQ(d.get_bytes(4), "SLBK");
  EXPECT_EQ(d.get_u8(), 1);                    // version
  EXPECT_EQ(d.get_u8(), uint8_t(GetParam()));  // compression, before encryption
  EXPECT_EQ(d.get_u16(), 1);                   // flags: encrypted
  EXPECT_EQ(d.get_u32(), raw.size());
  EXPECT_EQ(d.get_u32(), stored.size() - kBlockHeaderSize);
  EXPECT_EQ(d.get_u64(), 0u);  // no checksum of the plaintext in the clear
  EXPECT_EQ(d.get_u64(), 0u);
  if (GetParam() != Compression::kNone) {
    EXPECT_LT(stored.size(), raw.size() / 4);
  }
  // Neither the data nor its compressed form shows through.
  EXPECT_EQ(stored.find("tensor.1"), std::string::npos);
  EXPECT_EQ(stored.find(encode_block(raw, GetParam()).substr(kBlockHeaderSize, 64)),
            std::string::npos);
}

TEST_P(EncryptedCodecTest, AnyFlippedByteIsCorruption) {
  std::string stored = encode(compressible_bytes(50000));
  for (size_t pos = 0; pos < stored.size(); pos += (pos < kBlockHeaderSize + 16 ? 1 : 997)) {
    std::string bad = stored;
    bad[pos] ^= 0x01;
    expect_corrupt(bad, cipher_.get(), "byte " + std::to_string(pos));
  }
  expect_corrupt(stored.substr(0, stored.size() - 1), cipher_.get(), "truncated");
  expect_corrupt(stored + "x", cipher_.get(), "extended");
}

TEST_P(EncryptedCodecTest, WrongDataKeyIsCorruption) {
  std::string stored = encode(random_bytes(10000, 5));
  auto other = new_cipher();
  expect_corrupt(stored, other.get(), "another volume's data key");
}

TEST_P(EncryptedCodecTest, BlockMovedToAnotherKeyIsCorruption) {
  std::string stored = encode(random_bytes(10000, 6), "vol/chunks/0/0/7_0_10000");
  expect_corrupt(stored, cipher_.get(), "block under another key", "vol/chunks/0/0/8_0_10000");
  expect_corrupt(stored, cipher_.get(), "other volume", "vo2/chunks/0/0/7_0_10000");
}

TEST_P(EncryptedCodecTest, PlainAndEncryptedDoNotMix) {
  std::string raw = random_bytes(10000, 7);
  expect_corrupt(encode(raw), nullptr, "encrypted block read without a cipher");
  expect_corrupt(encode_block(raw, GetParam()), cipher_.get(),
                 "plain block read with a cipher");
  // Without a cipher the encrypting overload writes a plain block.
  auto plain = encode_block(raw, GetParam(), nullptr, kKey);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(*plain == encode_block(raw, GetParam()));
}

INSTANTIATE_TEST_SUITE_P(AllCompressions, EncryptedCodecTest,
                         ::testing::Values(Compression::kNone, Compression::kLz4,
                                           Compression::kZstd),
                         [](const auto& info) {
                           return std::string(compression_name(info.param));
                         });

// ---- RSA keys ----

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Writes key as PEM to path, encrypted with AES-256-CBC under passphrase if not empty.
void write_pem(EVP_PKEY* key, const std::string& path, const std::string& passphrase) {
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  int ok = passphrase.empty()
               ? PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr)
               : PEM_write_PrivateKey(f, key, EVP_aes_256_cbc(),
                                      reinterpret_cast<const unsigned char*>(passphrase.data()),
                                      static_cast<int>(passphrase.size()), nullptr, nullptr);
  fclose(f);
  ASSERT_EQ(ok, 1);
}

class RsaKeyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    a_.reset(EVP_RSA_gen(2048));
    b_.reset(EVP_RSA_gen(2048));
  }
  static void TearDownTestSuite() {
    a_.reset();
    b_.reset();
  }
  std::string pem(EVP_PKEY* key, const std::string& name, const std::string& passphrase) {
    std::string path = dir_.path() + "/" + name;
    write_pem(key, path, passphrase);
    return path;
  }
  static RsaKey load_ok(const std::string& path, const std::optional<std::string>& pass) {
    auto k = RsaKey::load(path, pass);
    EXPECT_TRUE(k.ok()) << k.status().ToString();
    return *k;
  }

  static Pkey a_, b_;
  testing::TempDir dir_;
};

Pkey RsaKeyTest::a_, RsaKeyTest::b_;

TEST_F(RsaKeyTest, LoadsWithPassphraseAndWithout) {
  ASSERT_TRUE(a_ && b_);
  RsaKey locked = load_ok(pem(a_.get(), "a.pem", "correct horse"), "correct horse");
  RsaKey plain = load_ok(pem(a_.get(), "a-plain.pem", ""), std::nullopt);
  RsaKey plain_extra = load_ok(pem(a_.get(), "a-plain2.pem", ""), "ignored");
  RsaKey other = load_ok(pem(b_.get(), "b.pem", ""), std::nullopt);
  EXPECT_EQ(locked.fingerprint().substr(0, 7), "sha256:");
  EXPECT_EQ(locked.fingerprint().size(), 7u + 64u);
  EXPECT_EQ(locked.fingerprint(), plain.fingerprint());
  EXPECT_EQ(locked.fingerprint(), plain_extra.fingerprint());
  EXPECT_NE(locked.fingerprint(), other.fingerprint());
}

TEST_F(RsaKeyTest, LoadErrorsSayWhatIsWrong) {
  ASSERT_TRUE(a_);
  std::string locked = pem(a_.get(), "a.pem", "right");
  auto wrong = RsaKey::load(locked, "wrong");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("cannot decrypt the RSA key " + locked +
                                          ": wrong passphrase?"),
            std::string::npos)
      << wrong.status().message();
  auto none = RsaKey::load(locked, std::nullopt);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("passphrase-protected"), std::string::npos)
      << none.status().message();
  auto missing = RsaKey::load(dir_.path() + "/nope.pem", std::nullopt);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot read the RSA key"), std::string::npos);

  std::string junk = dir_.path() + "/junk.pem";
  FILE* f = fopen(junk.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("not a key\n", f);
  fclose(f);
  auto bad = RsaKey::load(junk, std::nullopt);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("is not a PEM private key"), std::string::npos)
      << bad.status().message();

  Pkey ec(EVP_EC_gen("P-256"));
  ASSERT_TRUE(ec);
  auto not_rsa = RsaKey::load(pem(ec.get(), "ec.pem", ""), std::nullopt);
  ASSERT_FALSE(not_rsa.ok());
  EXPECT_NE(not_rsa.status().message().find("is not an RSA key"), std::string::npos);

  Pkey small(EVP_RSA_gen(1024));
  ASSERT_TRUE(small);
  auto weak = RsaKey::load(pem(small.get(), "small.pem", ""), std::nullopt);
  ASSERT_FALSE(weak.ok());
  EXPECT_NE(weak.status().message().find("has 1024 bits"), std::string::npos);
}

TEST_F(RsaKeyTest, WrapsAndUnwraps) {
  ASSERT_TRUE(a_ && b_);
  RsaKey a = load_ok(pem(a_.get(), "a.pem", ""), std::nullopt);
  RsaKey b = load_ok(pem(b_.get(), "b.pem", ""), std::nullopt);
  std::string secret = random_bytes(32, 9);
  auto w1 = a.wrap(secret);
  auto w2 = a.wrap(secret);
  ASSERT_TRUE(w1.ok() && w2.ok());
  EXPECT_NE(*w1, *w2);  // OAEP is randomized
  EXPECT_EQ(w1->size(), 256u);
  auto back = a.unwrap(*w1);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, secret);
  EXPECT_EQ(b.unwrap(*w1).status().code(), Code::kCorruption);
  std::string bad = *w1;
  bad[100] ^= 1;
  EXPECT_EQ(a.unwrap(bad).status().code(), Code::kCorruption);
}

TEST_F(RsaKeyTest, VolumeKeyOpensOnlyWithItsRsaKey) {
  ASSERT_TRUE(a_ && b_);
  RsaKey a = load_ok(pem(a_.get(), "a.pem", "pw"), "pw");
  RsaKey b = load_ok(pem(b_.get(), "b.pem", ""), std::nullopt);
  auto made = new_volume_key(a);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  const auto& [wrapped, cipher] = *made;
  EXPECT_EQ(wrapped.fingerprint, a.fingerprint());
  EXPECT_EQ(wrapped.wrapped.find(std::string(cipher->key())), std::string::npos);

  auto opened = open_volume_key(a, wrapped);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto stored = encode_block("model weights", Compression::kZstd, cipher.get(), kKey);
  ASSERT_TRUE(stored.ok());
  auto back = decode_block(*stored, kKey, opened->get());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, "model weights");

  auto wrong = open_volume_key(b, wrapped);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), Code::kPermission);
  EXPECT_NE(wrong.status().message().find("is not the one the volume was formatted with"),
            std::string::npos);

  WrappedKey damaged = wrapped;
  damaged.wrapped[10] = damaged.wrapped[10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(open_volume_key(a, damaged).status().code(), Code::kCorruption);
  damaged.wrapped = "not base64!";
  EXPECT_EQ(open_volume_key(a, damaged).status().code(), Code::kCorruption);
}

TEST(Base64, RoundTripsEveryPadding) {
  for (size_t n = 0; n < 40; n++) {
    std::string data = random_bytes(n, n);
    std::string text = base64_encode(data);
    EXPECT_EQ(text.size() % 4, 0u);
    auto back = base64_decode(text);
    ASSERT_TRUE(back.has_value()) << n;
    EXPECT_EQ(*back, data) << n;
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_FALSE(base64_decode("abc").has_value());
  EXPECT_FALSE(base64_decode("ab!d").has_value());
}

}  // namespace
}  // namespace sluice::object
