// Failures of the object store: uploads that fail keep their blocks buffered and
// report EIO until the store recovers; blocks that are missing, corrupted or of the wrong
// length read as EIO, never as data.
#include "object/block_codec.h"
#include "vfs_fixture.h"

namespace sluice::vfs::testing {
namespace {

// Fails puts or gets while told to; puts_left >= 0 lets that many puts succeed first.
class FlakyStore : public object::StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  Status put(const std::string& key, std::string_view data) override {
    if (fail_puts) return Status(Code::kUnavailable, "injected put failure");
    int left = puts_left.load();
    while (left >= 0) {
      if (left == 0) return Status(Code::kUnavailable, "injected put failure");
      if (puts_left.compare_exchange_weak(left, left - 1)) break;
    }
    return StoreWrapper::put(key, data);
  }
  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override {
    if (fail_gets) return Status(Code::kUnavailable, "injected get failure");
    return StoreWrapper::get(key, off, len);
  }
  std::atomic<bool> fail_puts{false};
  std::atomic<int> puts_left{-1};
  std::atomic<bool> fail_gets{false};
};

class FailureTest : public VfsTest {
 protected:
  void SetUp() override {
    VfsTest::SetUp();
    flaky_ = std::make_shared<FlakyStore>(store_);
    client_ = mount(test_options(), flaky_);
    ASSERT_NE(client_, nullptr);
  }
  void TearDown() override {
    flaky_->fail_puts = false;
    flaky_->fail_gets = false;
    flaky_->puts_left = -1;
    if (client_) EXPECT_OK(client_->stop());
    VfsTest::TearDown();
  }
  // Reads the committed file through the fixture's healthy client.
  std::string committed(Ino ino) {
    auto h = vfs_->open(ctx_, ino, O_RDONLY);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    if (!h.ok()) return "<open failed>";
    std::string s = read(*vfs_, ino, *h, 0, 1 << 20);
    EXPECT_OK(vfs_->release(ino, *h));
    return s;
  }
  // Writes a committed file of `blocks` blocks and returns its inode.
  Ino committed_file(int blocks) {
    auto [ino, fh] = create("f");
    EXPECT_TRUE(write(*vfs_, ino, fh, 0, pattern(blocks * kBlock, 7)));
    EXPECT_OK(vfs_->release(ino, fh));
    return ino;
  }

  std::shared_ptr<FlakyStore> flaky_;
  std::unique_ptr<Vfs> client_;
};

TEST_F(FailureTest, FailedUploadKeepsBufferUntilTheStoreRecovers) {
  auto [ino, fh] = create(*client_, "f");
  const std::string data = pattern(2 * kBlock + 100, 1);
  flaky_->puts_left = 1;  // one block of three is stored
  ASSERT_TRUE(write(*client_, ino, fh, 0, data));
  Status s = client_->fsync(ctx_, ino, fh, false);
  EXPECT_EQ(to_errno(s), EIO) << s.ToString();
  EXPECT_EQ(committed(ino), "") << "nothing committed";
  EXPECT_TRUE(vfs_->meta().read_chunk(ino, 0)->empty());
  auto stored = object_keys();
  ASSERT_EQ(stored.size(), 1u) << "the stored block is kept for the retry";
  // Blocks upload in parallel, so any one of them may be the one stored; its length ends
  // its key (<id>_<index>_<len>).
  const uint64_t stored_len = std::stoull(stored[0].substr(stored[0].rfind('_') + 1));
  EXPECT_EQ(client_->buffered_bytes(), data.size() - stored_len) << "the stored block left";
  EXPECT_EQ(read(*client_, ino, fh, 0, 10).substr(0, 7), "<error:") << "the read must flush first";

  flaky_->puts_left = -1;
  ASSERT_OK(client_->fsync(ctx_, ino, fh, false));
  EXPECT_EQ(committed(ino), data);
  EXPECT_EQ(object_keys().size(), 3u);
  EXPECT_EQ(client_->stats().object_puts.load(), 3u) << "only the failed blocks are uploaded again";
  EXPECT_EQ(client_->buffered_bytes(), 0u);
  EXPECT_OK(client_->release(ino, fh));
}

TEST_F(FailureTest, FailedReleaseIsRetriedByFlushAll) {
  auto [ino, fh] = create(*client_, "f");
  ASSERT_TRUE(write(*client_, ino, fh, 0, "precious"));
  flaky_->fail_puts = true;
  EXPECT_EQ(to_errno(client_->release(ino, fh)), EIO);
  EXPECT_EQ(to_errno(client_->flush_all()), EIO);
  flaky_->fail_puts = false;
  ASSERT_OK(client_->flush_all());
  EXPECT_EQ(committed(ino), "precious");
}

TEST_F(FailureTest, FailedGetIsEio) {
  Ino ino = committed_file(2);
  auto h = client_->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(h);
  flaky_->fail_gets = true;
  std::string buf(100, '\0');
  auto r = client_->read(ctx_, ino, *h, 0, buf.data(), buf.size());
  EXPECT_EQ(to_errno(r.status()), EIO);
  EXPECT_GE(client_->stats().object_errors.load(), 1u);
  flaky_->fail_gets = false;
  EXPECT_EQ(read(*client_, ino, *h, 0, 100), pattern(2 * kBlock, 7).substr(0, 100))
      << "failed loads are not cached";
  EXPECT_OK(client_->release(ino, *h));
}

// Replaces the stored block with `stored` and reads it through a fresh client.
class CorruptionTest : public FailureTest {
 protected:
  Result<size_t> read_replaced(const std::string& stored) {
    Ino ino = committed_file(2);
    auto keys = object_keys();
    EXPECT_EQ(keys.size(), 2u);
    if (keys.empty()) return Status(Code::kInternal, "no objects");
    EXPECT_OK(store_->put(keys[0], stored));
    auto h = client_->open(ctx_, ino, O_RDONLY);
    EXPECT_OK(h);
    if (!h.ok()) return h.status();
    buf_.assign(2 * kBlock, '\0');
    auto r = client_->read(ctx_, ino, *h, 0, buf_.data(), buf_.size());
    EXPECT_OK(client_->release(ino, *h));
    return r;
  }
  std::string buf_;
};

TEST_F(CorruptionTest, GarbageObjectIsEio) {
  auto r = read_replaced(std::string(kBlock, 'g'));
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_EQ(to_errno(r.status()), EIO);
}

TEST_F(CorruptionTest, FlippedPayloadByteIsEio) {
  std::string stored = object::encode_block(pattern(kBlock, 7).substr(0, kBlock));
  stored[object::kBlockHeaderSize + 100] ^= 1;
  auto r = read_replaced(stored);
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
}

TEST_F(CorruptionTest, ValidBlockOfTheWrongLengthIsEio) {
  auto r = read_replaced(object::encode_block(pattern(kBlock / 2, 7)));
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
}

TEST_F(CorruptionTest, MissingObjectIsEio) {
  Ino ino = committed_file(1);
  ASSERT_OK(store_->del(object_keys().at(0)));
  auto h = client_->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(h);
  std::string buf(10, '\0');
  auto r = client_->read(ctx_, ino, *h, 0, buf.data(), buf.size());
  EXPECT_EQ(to_errno(r.status()), EIO) << r.status().ToString();
  EXPECT_OK(client_->release(ino, *h));
}

}  // namespace
}  // namespace sluice::vfs::testing
