// Early upload: blocks a sequential write completes are uploaded before the flush,
// sealed blocks are never modified (an overwrite starts a new slice), failures of
// background uploads are reported by the next flush, and buffered bytes stay bounded.
#include <chrono>
#include <thread>

#include "vfs_fixture.h"

namespace sluice::vfs::testing {
namespace {

// Counts put attempts; fails them while told to; makes each take `delay`.
class PutStore : public object::StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  Status put(const std::string& key, std::string_view data) override {
    attempts++;
    std::this_thread::sleep_for(delay);
    if (fail) return Status(Code::kUnavailable, "injected put failure");
    return StoreWrapper::put(key, data);
  }
  std::atomic<uint64_t> attempts{0};
  std::atomic<bool> fail{false};
  std::chrono::microseconds delay{0};
};

class EarlyUploadTest : public VfsTest {
 protected:
  void SetUp() override {
    VfsTest::SetUp();
    puts_ = std::make_shared<PutStore>(store_);
  }
  std::unique_ptr<Vfs> client(VfsOptions o = test_options()) { return mount(o, puts_); }

  // Waits (up to 10 s) until `n` puts were attempted.
  bool await_attempts(uint64_t n) {
    for (int i = 0; i < 10000 && puts_->attempts.load() < n; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return puts_->attempts.load() >= n;
  }
  // Writes data at off in pieces of `step` bytes.
  ::testing::AssertionResult write_in_pieces(Vfs& v, Ino ino, uint64_t fh, uint64_t off,
                                             const std::string& data, size_t step) {
    for (size_t at = 0; at < data.size(); at += step) {
      auto r = write(v, ino, fh, off + at, data.substr(at, step));
      if (!r) return r;
    }
    return ::testing::AssertionSuccess();
  }
  std::vector<meta::Slice> slices(Ino ino) {
    auto s = vfs_->meta().read_chunk(ino, 0);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : std::vector<meta::Slice>{};
  }
  // The whole file as a fresh client reads it.
  std::string committed(Ino ino, size_t max) {
    auto other = mount();
    auto h = other->open(ctx_, ino, O_RDONLY);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    std::string s = h.ok() ? read(*other, ino, *h, 0, max) : "<open failed>";
    if (h.ok()) EXPECT_OK(other->release(ino, *h));
    EXPECT_OK(other->stop());
    return s;
  }

  std::shared_ptr<PutStore> puts_;
};

TEST_F(EarlyUploadTest, SequentialWriteUploadsCompletedBlocksBeforeTheFlush) {
  auto c = client();
  auto [ino, fh] = create(*c, "f");
  const std::string data = pattern(8 * kBlock + kBlock / 2, 1);
  ASSERT_TRUE(write_in_pieces(*c, ino, fh, 0, data, 16 << 10));
  EXPECT_TRUE(await_attempts(8)) << "the 8 completed blocks are uploaded without a flush";
  EXPECT_EQ(puts_->attempts.load(), 8u) << "the open tail block is not";
  EXPECT_TRUE(slices(ino).empty()) << "nothing is committed before the flush";
  ASSERT_OK(c->fsync(ctx_, ino, fh, false));
  EXPECT_EQ(puts_->attempts.load(), 9u) << "the flush uploads only the tail";
  auto s = slices(ino);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].len, data.size());
  EXPECT_EQ(object_keys().size(), 9u);
  EXPECT_EQ(c->buffered_bytes(), 0u);
  EXPECT_EQ(committed(ino, data.size() + 10), data);
  EXPECT_OK(c->release(ino, fh));
  EXPECT_OK(c->stop());
}

TEST_F(EarlyUploadTest, OverwriteOfASealedBlockStartsANewSlice) {
  auto c = client();
  auto [ino, fh] = create(*c, "f");
  std::string model = pattern(2 * kBlock + 100, 2);
  ASSERT_TRUE(write(*c, ino, fh, 0, model));
  const std::string tail_patch = pattern(50, 3), patch = pattern(kBlock, 4);
  ASSERT_TRUE(write(*c, ino, fh, 2 * kBlock + 10, tail_patch));
  EXPECT_TRUE(slices(ino).empty()) << "the open tail block is still writable";
  ASSERT_TRUE(write(*c, ino, fh, kBlock / 2, patch));
  EXPECT_EQ(slices(ino).size(), 1u) << "touching a sealed block committed the first slice";
  model.replace(2 * kBlock + 10, tail_patch.size(), tail_patch);
  model.replace(kBlock / 2, patch.size(), patch);
  EXPECT_EQ(read(*c, ino, fh, 0, model.size() + 10), model);
  EXPECT_EQ(slices(ino).size(), 2u) << "the read flushed the second slice";
  EXPECT_EQ(committed(ino, model.size() + 10), model);
  EXPECT_OK(c->release(ino, fh));
  EXPECT_OK(c->stop());
}

TEST_F(EarlyUploadTest, FailedBackgroundUploadIsReportedByTheNextFsync) {
  auto c = client();
  auto [ino, fh] = create(*c, "f");
  const std::string data = pattern(2 * kBlock, 5);
  puts_->fail = true;
  ASSERT_TRUE(write(*c, ino, fh, 0, data));
  ASSERT_TRUE(await_attempts(2));
  puts_->fail = false;  // recovered, but the failures happened: the fsync reports them
  Status s = c->fsync(ctx_, ino, fh, false);
  EXPECT_EQ(to_errno(s), EIO) << s.ToString();
  EXPECT_TRUE(slices(ino).empty());
  EXPECT_EQ(c->buffered_bytes(), data.size()) << "the failed blocks stay buffered";
  ASSERT_OK(c->fsync(ctx_, ino, fh, false));  // uploads them again
  EXPECT_EQ(puts_->attempts.load(), 4u);
  EXPECT_EQ(c->buffered_bytes(), 0u);
  EXPECT_EQ(committed(ino, data.size() + 10), data);
  EXPECT_OK(c->release(ino, fh));
  EXPECT_OK(c->stop());
}

TEST_F(EarlyUploadTest, FailedBackgroundUploadIsReportedByClose) {
  auto c = client();
  auto [ino, fh] = create(*c, "f");
  const std::string data = pattern(3 * kBlock + 7, 6);
  puts_->fail = true;
  ASSERT_TRUE(write_in_pieces(*c, ino, fh, 0, data, 40 << 10));
  EXPECT_EQ(to_errno(c->release(ino, fh)), EIO);
  EXPECT_EQ(to_errno(c->flush_all()), EIO) << "still failing";
  puts_->fail = false;
  ASSERT_OK(c->flush_all());
  EXPECT_EQ(committed(ino, data.size() + 10), data);
  EXPECT_OK(c->stop());
}

TEST_F(EarlyUploadTest, BufferedBytesStayBoundedDuringALongSequentialWrite) {
  VfsOptions o = test_options();  // a 300 MiB buffer bound: only early upload keeps it low
  puts_->delay = std::chrono::milliseconds(1);
  auto c = client(o);
  auto [ino, fh] = create(*c, "f");
  constexpr size_t kSize = 256 * kBlock, kStep = 48 << 10;
  const std::string data = pattern(kSize, 7);
  // In flight: at most 2 * upload_threads blocks, plus the open block.
  const uint64_t bound = (2 * o.upload_threads + 1) * uint64_t{kBlock};
  uint64_t peak = 0;
  for (size_t at = 0; at < kSize; at += kStep) {
    ASSERT_TRUE(write(*c, ino, fh, at, data.substr(at, kStep)));
    peak = std::max(peak, c->buffered_bytes());
  }
  EXPECT_LE(peak, bound);
  EXPECT_GE(peak, 2u * kBlock) << "slow puts keep several blocks in flight";
  ASSERT_OK(c->release(ino, fh));
  EXPECT_EQ(c->buffered_bytes(), 0u);
  EXPECT_EQ(committed(ino, kSize + 10), data);
  EXPECT_OK(c->stop());
}

}  // namespace
}  // namespace sluice::vfs::testing
