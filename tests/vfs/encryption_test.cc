// Encrypted volumes in the vfs: data round-trips through encrypted (and compressed)
// blocks between clients holding the data key; the store holds only blocks that need
// the key; a client with another key reads EIO-class errors, never data; and a vfs
// refuses to start when its cipher does not match the volume's format.
#include "object/block_cipher.h"
#include "vfs_fixture.h"

namespace sluice::vfs::testing {
namespace {

class EncryptedVfsTest : public VfsTest {
 protected:
  void SetUp() override {
    auto eng = kv::open_engine(unique_url("meta"), /*create=*/true);
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    engine_ = *eng;
    auto st = object::open_store(unique_url("data"));
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = *st;
    meta::Format fmt;
    fmt.name = "vol";
    fmt.uuid = "00000000-0000-0000-0000-000000000002";
    fmt.storage = "mem://";
    fmt.block_size = kBlock;
    fmt.compression = "zstd";
    // The vfs only needs the cipher; wrapping the key is the CLI's business.
    fmt.encryption = object::kEncryptionAesGcmRsa;
    fmt.encryption_key = "unused";
    fmt.encryption_key_fingerprint = "sha256:unused";
    ASSERT_OK(meta::Meta::format(*engine_, fmt, false));
    auto c = object::BlockCipher::generate();
    ASSERT_OK(c);
    cipher_ = *c;
    vfs_ = mount(with_cipher(cipher_));
    ASSERT_NE(vfs_, nullptr);
  }

  static VfsOptions with_cipher(std::shared_ptr<const object::BlockCipher> c) {
    VfsOptions o = test_options();
    o.cipher = std::move(c);
    return o;
  }

  // start() of a fresh vfs of this volume with opts.
  Status start_status(const VfsOptions& opts) {
    auto m = meta::Meta::open(engine_);
    if (!m.ok()) return m.status();
    Vfs v(std::shared_ptr<meta::Meta>(std::move(m).value()), store_, opts);
    Status s = v.start(meta::SessionInfo{});
    if (s.ok()) (void)v.stop();
    return s;
  }

  std::shared_ptr<const object::BlockCipher> cipher_;
};

TEST_F(EncryptedVfsTest, RoundTripsBetweenClientsWithTheKey) {
  auto [ino, fh] = create("f");
  const std::string data = std::string(2 * kBlock, 'z') + pattern(kBlock + 777, 3);
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, data));
  ASSERT_OK(vfs_->release(ino, fh));

  auto other = mount(with_cipher(cipher_));
  ASSERT_NE(other, nullptr);
  auto h = other->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(h);
  EXPECT_EQ(read(*other, ino, *h, 0, data.size()), data);
  ASSERT_OK(other->release(ino, *h));
  EXPECT_OK(other->stop());

  // Every stored block is encrypted and bound to its key.
  auto keys = object_keys();
  ASSERT_EQ(keys.size(), 4u);
  for (const auto& k : keys) {
    auto stored = store_->get(k);
    ASSERT_OK(stored);
    EXPECT_EQ(object::decode_block(*stored, k).status().code(), Code::kCorruption) << k;
    EXPECT_OK(object::decode_block(*stored, k, cipher_.get()));
  }
}

TEST_F(EncryptedVfsTest, AnotherDataKeyReadsErrorsNotData) {
  auto [ino, fh] = create("f");
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, pattern(kBlock, 4)));
  ASSERT_OK(vfs_->release(ino, fh));
  auto wrong = object::BlockCipher::generate();
  ASSERT_OK(wrong);
  auto other = mount(with_cipher(*wrong));
  ASSERT_NE(other, nullptr);
  auto h = other->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(h);
  std::string buf(kBlock, '\0');
  auto n = other->read(ctx_, ino, *h, 0, buf.data(), buf.size());
  ASSERT_FALSE(n.ok()) << "read " << *n << " bytes with the wrong key";
  EXPECT_EQ(n.status().code(), Code::kCorruption);
  ASSERT_OK(other->release(ino, *h));
  EXPECT_OK(other->stop());
}

TEST_F(EncryptedVfsTest, StartNeedsExactlyTheCipherTheFormatNames) {
  Status s = start_status(test_options());
  EXPECT_EQ(s.code(), Code::kInvalid);
  EXPECT_NE(s.message().find("is encrypted"), std::string::npos) << s.ToString();
}

TEST_F(VfsTest, PlainVolumeRefusesACipher) {
  auto c = object::BlockCipher::generate();
  ASSERT_OK(c);
  VfsOptions o = test_options();
  o.cipher = *c;
  auto m = meta::Meta::open(engine_);
  ASSERT_OK(m);
  Vfs v(std::shared_ptr<meta::Meta>(std::move(m).value()), store_, o);
  Status s = v.start(meta::SessionInfo{});
  EXPECT_EQ(s.code(), Code::kInvalid);
  EXPECT_NE(s.message().find("is not encrypted"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace sluice::vfs::testing
