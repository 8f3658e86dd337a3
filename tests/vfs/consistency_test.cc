// Consistency between clients and over time: close-to-open visibility, files unlinked
// while open, the background flusher, deferred deletion of removed data, read-only mounts.
#include <chrono>
#include <thread>

#include "vfs_fixture.h"

namespace sluice::vfs::testing {
namespace {

class ConsistencyTest : public VfsTest {
 protected:
  // Polls cond every 10 ms for up to 5 s.
  template <typename Cond>
  bool eventually(Cond cond) {
    for (int i = 0; i < 500; i++) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
  }
};

TEST_F(ConsistencyTest, CloseToOpenBetweenClients) {
  auto [ino, fh] = create("f");
  const std::string data = pattern(150 << 10, 1);
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, data));

  auto other = mount();
  auto early = other->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(early);
  EXPECT_EQ(read(*other, ino, *early, 0, data.size()), "") << "buffered writes are not visible";
  auto attr = other->getattr(ctx_, ino);
  ASSERT_OK(attr);
  EXPECT_EQ(attr->size, 0u);

  ASSERT_OK(vfs_->release(ino, fh));
  auto late = other->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(late);
  EXPECT_EQ(read(*other, ino, *late, 0, data.size() + 1), data) << "visible after close, on open";
  EXPECT_OK(other->release(ino, *early));
  EXPECT_OK(other->release(ino, *late));

  // And back: the second client's writes reach the first after its flush.
  auto w = other->open(ctx_, ino, O_WRONLY);
  ASSERT_OK(w);
  ASSERT_TRUE(write(*other, ino, *w, 10, "hello"));
  ASSERT_OK(other->flush(ctx_, ino, *w));
  auto r = vfs_->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(r);
  EXPECT_EQ(read(*vfs_, ino, *r, 8, 9), data.substr(8, 2) + "hello" + data.substr(15, 2));
  EXPECT_OK(vfs_->release(ino, *r));
  EXPECT_OK(other->release(ino, *w));
  EXPECT_OK(other->stop());
}

TEST_F(ConsistencyTest, UnlinkedFileStaysReadableUntilRelease) {
  auto [ino, fh] = create("f");
  const std::string data = pattern(3 * kBlock, 2);
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, data));
  ASSERT_OK(vfs_->unlink(ctx_, meta::kRootIno, "f"));
  EXPECT_EQ(vfs_->lookup(ctx_, meta::kRootIno, "f").status().code(), Code::kNotFound);
  EXPECT_EQ(read(*vfs_, ino, fh, 0, data.size()), data);
  ASSERT_TRUE(write(*vfs_, ino, fh, data.size(), "more"));
  EXPECT_EQ(read(*vfs_, ino, fh, data.size(), 10), "more");
  ASSERT_OK(vfs_->release(ino, fh));
  EXPECT_EQ(vfs_->getattr(ctx_, ino).status().code(), Code::kNotFound);
}

TEST_F(ConsistencyTest, CleanupDeletesObjectsOfRemovedFiles) {
  VfsOptions o = test_options();
  o.background_jobs = true;
  o.heartbeat_interval_ns = 20'000'000;
  auto bg = mount(o);
  auto [ino, fh] = create(*bg, "f");
  ASSERT_TRUE(write(*bg, ino, fh, 0, pattern(3 * kBlock, 3)));
  ASSERT_OK(bg->fsync(ctx_, ino, fh, false));
  const auto keys = object_keys();
  ASSERT_EQ(keys.size(), 3u);
  ASSERT_NE(bg->block_cache().peek(keys[0]), nullptr) << "written through to the cache";

  ASSERT_OK(bg->unlink(ctx_, meta::kRootIno, "f"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(object_keys().size(), 3u) << "open files keep their data";
  ASSERT_OK(bg->release(ino, fh));
  EXPECT_TRUE(eventually([&] { return object_keys().empty(); }));
  EXPECT_EQ(bg->block_cache().peek(keys[0]), nullptr);
  EXPECT_OK(bg->stop());
}

TEST_F(ConsistencyTest, CleanupDeletesSlicesDroppedByTruncate) {
  VfsOptions o = test_options();
  o.background_jobs = true;
  o.heartbeat_interval_ns = 20'000'000;
  auto bg = mount(o);
  auto [ino, fh] = create(*bg, "f");
  ASSERT_TRUE(write(*bg, ino, fh, 0, pattern(2 * kBlock, 4)));
  ASSERT_OK(bg->release(ino, fh));
  ASSERT_EQ(object_keys().size(), 2u);
  meta::SetAttr req;
  req.mask = meta::kSetSize;
  ASSERT_OK(bg->setattr(ctx_, ino, req));
  EXPECT_TRUE(eventually([&] { return object_keys().empty(); }));
  EXPECT_OK(bg->stop());
}

TEST_F(ConsistencyTest, BackgroundFlushCommitsOldBuffers) {
  VfsOptions o = test_options();
  o.background_jobs = true;
  o.flush_interval_ns = 50'000'000;
  auto bg = mount(o);
  auto [ino, fh] = create(*bg, "f");
  ASSERT_TRUE(write(*bg, ino, fh, 0, "flushed by the timer"));
  EXPECT_TRUE(eventually([&] {
    auto a = vfs_->meta().getattr(ino);
    return a.ok() && a->size == 20;
  }));
  EXPECT_EQ(bg->buffered_bytes(), 0u);
  EXPECT_OK(bg->release(ino, fh));
  EXPECT_OK(bg->stop());
}

TEST_F(ConsistencyTest, StopFlushesAndIsIdempotent) {
  auto other = mount();
  auto [ino, fh] = create(*other, "f");
  ASSERT_TRUE(write(*other, ino, fh, 0, "kept"));
  ASSERT_OK(other->stop());
  ASSERT_OK(other->stop());
  auto a = vfs_->getattr(ctx_, ino);
  ASSERT_OK(a);
  EXPECT_EQ(a->size, 4u);
}

TEST_F(ConsistencyTest, ReadOnlyMountRefusesChanges) {
  auto [ino, fh] = create("f");
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, "data"));
  ASSERT_OK(vfs_->release(ino, fh));
  VfsOptions o = test_options();
  o.read_only = true;
  auto ro = mount(o);
  EXPECT_EQ(ro->open(ctx_, ino, O_RDWR).status().code(), Code::kReadOnly);
  EXPECT_EQ(ro->mkdir(ctx_, meta::kRootIno, "d", 0755).status().code(), Code::kReadOnly);
  EXPECT_EQ(ro->unlink(ctx_, meta::kRootIno, "f").code(), Code::kReadOnly);
  EXPECT_EQ(ro->create(ctx_, meta::kRootIno, "g", 0644, O_WRONLY).status().code(), Code::kReadOnly);
  auto h = ro->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(h);
  EXPECT_EQ(read(*ro, ino, *h, 0, 10), "data");
  EXPECT_OK(ro->release(ino, *h));
  EXPECT_OK(ro->stop());
}

}  // namespace
}  // namespace sluice::vfs::testing
