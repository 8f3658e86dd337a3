// Vfs::warmup: fill loads every block of the files once (then reads need no GET), check
// counts cached bytes exactly, evict drops them; with whole-file copies, a file is written
// into its copy alone and read from it until it changes; errors and cancellation.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "vfs_fixture.h"

namespace sluice::vfs::testing {
namespace {

class WarmupTest : public VfsTest {
 protected:
  // Writes `len` bytes of pattern(seed) to /name through vfs_ and closes it.
  Ino put(const std::string& name, size_t len, uint64_t seed) {
    auto [ino, fh] = create(name);
    if (len > 0) {
      EXPECT_TRUE(write(*vfs_, ino, fh, 0, pattern(len, seed)));
    }
    EXPECT_OK(vfs_->flush(ctx_, ino, fh));
    EXPECT_OK(vfs_->release(ino, fh));
    return ino;
  }

  Status run(Vfs& v, const std::vector<Ino>& inodes, WarmupMode mode, WarmupProgress& p,
             int threads = 4) {
    std::atomic<bool> cancel{false};
    return v.warmup(inodes, mode, threads, p, cancel);
  }
};

TEST_F(WarmupTest, FillLoadsEachBlockOnceThenReadsNeedNoGets) {
  const size_t a_len = 10 * kBlock + 1000, b_len = 3 * kBlock;
  Ino a = put("a", a_len, 1), b = put("b", b_len, 2), c = put("c", 0, 3);
  auto client = mount();  // a fresh client: nothing cached
  ASSERT_NE(client, nullptr);

  WarmupProgress check0;
  ASSERT_OK(run(*client, {a, b, c}, WarmupMode::kCheck, check0));
  EXPECT_EQ(check0.total_bytes.load(), a_len + b_len);
  EXPECT_EQ(check0.cached_bytes.load(), 0u);
  EXPECT_EQ(check0.total_files.load(), 3u);
  EXPECT_EQ(client->stats().object_gets.load(), 0u);  // check fetches nothing

  WarmupProgress fill;
  ASSERT_OK(run(*client, {a, b, c}, WarmupMode::kFill, fill));
  EXPECT_EQ(fill.files.load(), 3u);
  EXPECT_EQ(fill.blocks.load(), 14u);
  EXPECT_EQ(fill.bytes.load(), a_len + b_len);
  EXPECT_EQ(fill.errors.load(), 0u);
  EXPECT_EQ(client->stats().object_gets.load(), 14u);

  WarmupProgress check1;
  ASSERT_OK(run(*client, {a, b, c}, WarmupMode::kCheck, check1));
  EXPECT_EQ(check1.cached_bytes.load(), a_len + b_len);

  auto fh = client->open(ctx_, a, O_RDONLY);
  ASSERT_OK(fh);
  EXPECT_EQ(read(*client, a, *fh, 0, a_len), pattern(a_len, 1));
  EXPECT_EQ(client->stats().object_gets.load(), 14u);  // every block came from the cache

  WarmupProgress evict;
  ASSERT_OK(run(*client, {a}, WarmupMode::kEvict, evict));
  WarmupProgress check2;
  ASSERT_OK(run(*client, {a, b}, WarmupMode::kCheck, check2));
  EXPECT_EQ(check2.cached_bytes.load(), b_len);
  EXPECT_EQ(read(*client, a, *fh, 0, a_len), pattern(a_len, 1));
  EXPECT_GE(client->stats().object_gets.load(), 14u + 11u);  // a is fetched again
  EXPECT_OK(client->release(a, *fh));
  EXPECT_OK(client->stop());
}

// With copies on (a --passthrough mount), fill writes each file to the local disk once,
// as its copy, and no block file; any client on that disk cache (with or without copies
// on) reads the file from its copy with no GET, until the file changes.
TEST_F(WarmupTest, WithCopiesAFileGoesToItsCopyAloneAndIsReadFromIt) {
  const size_t a_len = 10 * kBlock + 1000, b_len = 3 * kBlock;
  const Ino a = put("a", a_len, 1), b = put("b", b_len, 2);
  const std::string dir = "/tmp/sluice-warmup-copies-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  VfsOptions o = test_options();
  o.cache_dirs = {dir};
  o.cache_size = 1 << 30;
  o.free_space_ratio = 0;
  o.file_copies = true;
  {
    auto client = mount(o);
    ASSERT_NE(client, nullptr);
    WarmupProgress fill;
    ASSERT_OK(run(*client, {a, b}, WarmupMode::kFill, fill));
    EXPECT_EQ(fill.errors.load(), 0u);
    EXPECT_EQ(client->stats().object_gets.load(), 14u);
    EXPECT_EQ(client->stats().copies_made.load(), 2u);
    EXPECT_EQ(client->stats().copy_bytes.load(), a_len + b_len);
    // The disk cache's writes are the two copies (counted as its files), no block's.
    EXPECT_EQ(client->block_cache().stats().disk_written_blocks, 2u);
    EXPECT_EQ(client->block_cache().stats().disk_written_bytes, a_len + b_len);
    EXPECT_EQ(client->block_cache().stats().disk_bytes, a_len + b_len);
    WarmupProgress check;
    ASSERT_OK(run(*client, {a, b}, WarmupMode::kCheck, check));
    EXPECT_EQ(check.cached_bytes.load(), a_len + b_len);
    // Filled again: the copies are there, nothing is fetched or written.
    WarmupProgress again;
    ASSERT_OK(run(*client, {a, b}, WarmupMode::kFill, again));
    EXPECT_EQ(again.bytes.load(), a_len + b_len);
    EXPECT_EQ(client->stats().object_gets.load(), 14u);
    EXPECT_EQ(client->block_cache().stats().disk_written_blocks, 2u);
    EXPECT_OK(client->stop());
  }
  o.file_copies = false;  // a mount without --passthrough on the same cache
  auto reader = mount(o);
  ASSERT_NE(reader, nullptr);
  auto fh = reader->open(ctx_, a, O_RDONLY);
  ASSERT_OK(fh);
  EXPECT_EQ(read(*reader, a, *fh, 0, a_len), pattern(a_len, 1));
  EXPECT_EQ(read(*reader, a, *fh, kBlock + 5, 3000), pattern(a_len, 1).substr(kBlock + 5, 3000));
  EXPECT_EQ(reader->stats().object_gets.load(), 0u);
  EXPECT_EQ(reader->stats().copy_opens.load(), 1u);
  EXPECT_EQ(reader->stats().copy_read_bytes.load(), a_len + 3000);
  // Written through this client: the open handle lets go of the copy and reads the new
  // bytes (the copy was of the old ones), fetching the blocks it needs.
  auto wfh = reader->open(ctx_, a, O_RDWR);
  ASSERT_OK(wfh);
  EXPECT_EQ(reader->stats().copy_opens.load(), 1u);  // a writer never reads a copy
  const std::string patch = pattern(5000, 9);
  ASSERT_TRUE(write(*reader, a, *wfh, 2 * kBlock, patch));
  ASSERT_OK(reader->flush(ctx_, a, *wfh));
  std::string want = pattern(a_len, 1);
  want.replace(2 * kBlock, patch.size(), patch);
  EXPECT_EQ(read(*reader, a, *fh, 0, a_len), want);
  EXPECT_GT(reader->stats().object_gets.load(), 0u);
  EXPECT_EQ(reader->stats().copy_read_bytes.load(), a_len + 3000);
  EXPECT_OK(reader->release(a, *wfh));
  EXPECT_OK(reader->release(a, *fh));
  // A new open finds no copy of the changed file.
  auto fh2 = reader->open(ctx_, a, O_RDONLY);
  ASSERT_OK(fh2);
  EXPECT_EQ(read(*reader, a, *fh2, 0, a_len), want);
  EXPECT_EQ(reader->stats().copy_opens.load(), 1u);
  EXPECT_OK(reader->release(a, *fh2));
  const uint64_t gets_after_change = reader->stats().object_gets.load();
  // A mount without copies on fetches nothing for a file with a copy either.
  WarmupProgress fill_b;
  ASSERT_OK(run(*reader, {b}, WarmupMode::kFill, fill_b));
  EXPECT_EQ(fill_b.bytes.load(), b_len);
  EXPECT_EQ(reader->stats().object_gets.load(), gets_after_change);
  // Evict drops b's copy: check counts nothing of it then.
  WarmupProgress evict, check;
  ASSERT_OK(run(*reader, {b}, WarmupMode::kEvict, evict));
  ASSERT_OK(run(*reader, {b}, WarmupMode::kCheck, check));
  EXPECT_EQ(check.cached_bytes.load(), 0u);
  EXPECT_OK(reader->stop());
  reader.reset();  // its cache's writer last
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_F(WarmupTest, OverwrittenRangesWarmOnlyTheBlocksThatAreRead) {
  auto [ino, fh] = create("f");
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, pattern(4 * kBlock, 1)));
  ASSERT_OK(vfs_->fsync(ctx_, ino, fh, false));
  // A second slice hides blocks 1 and 2 of the first.
  ASSERT_TRUE(write(*vfs_, ino, fh, kBlock, pattern(2 * kBlock, 2)));
  ASSERT_OK(vfs_->flush(ctx_, ino, fh));
  ASSERT_OK(vfs_->release(ino, fh));
  auto client = mount();
  WarmupProgress p;
  ASSERT_OK(run(*client, {ino}, WarmupMode::kFill, p));
  EXPECT_EQ(p.blocks.load(), 4u);  // blocks 0 and 3 of slice 1, both blocks of slice 2
  EXPECT_EQ(client->stats().object_gets.load(), 4u);
  EXPECT_OK(client->stop());
}

TEST_F(WarmupTest, MissingInodeIsCountedAndTheRestIsWarmed) {
  Ino a = put("a", 2 * kBlock, 1);
  auto dir = vfs_->mkdir(ctx_, meta::kRootIno, "d", 0755);
  ASSERT_OK(dir);
  auto client = mount();
  WarmupProgress p;
  Status st = run(*client, {987654, dir->ino, a}, WarmupMode::kFill, p);
  EXPECT_EQ(st.code(), Code::kNotFound) << st.ToString();
  EXPECT_EQ(p.errors.load(), 1u);
  EXPECT_EQ(p.total_files.load(), 1u);  // the directory is skipped
  EXPECT_EQ(p.bytes.load(), 2u * kBlock);
  EXPECT_OK(client->stop());
}

TEST_F(WarmupTest, CancelStopsBeforeFetching) {
  Ino a = put("a", 8 * kBlock, 1);
  auto client = mount();
  WarmupProgress p;
  std::atomic<bool> cancel{true};
  Status st = client->warmup({a}, WarmupMode::kFill, 2, p, cancel);
  EXPECT_EQ(st.code(), Code::kInterrupted);
  EXPECT_EQ(client->stats().object_gets.load(), 0u);
  EXPECT_OK(client->stop());
}

}  // namespace
}  // namespace sluice::vfs::testing
