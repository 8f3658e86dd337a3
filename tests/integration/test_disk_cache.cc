// The disk cache through the kernel: blocks read once survive an unmount and are served
// from the cache directory with the object store gone; a cache directory removed or
// corrupted under a live mount never fails a read; blocks this mount verified are read
// from their cache files (spliced) unless --verify-cache-checksum full.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <random>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

namespace fs = std::filesystem;

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Regular files under dir, recursively.
std::vector<fs::path> files_under(const std::string& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    // Block files only: not the record of trusted files (.trusted).
    if (it->is_regular_file(ec) && it->path().filename().string()[0] != '.') {
      out.push_back(it->path());
    }
  }
  return out;
}

class DiskCacheMount : public MountFixture {
 protected:
  std::vector<std::string> MountOptions() const override { return {"--cache-dir", path("cache")}; }
  void Mount(std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"--cache-dir", path("cache")});
    MountFixture::Mount(extra);
  }
  bool file_store() const { return storage_url_.rfind("file://", 0) == 0; }
  std::string objects_dir() const { return storage_url_.substr(7); }
};

TEST_F(DiskCacheMount, ServesCachedBlocksWithTheStoreGone) {
  if (!file_store()) GTEST_SKIP() << "needs a file:// store to take away";
  const std::string data = random_bytes(10'000'000, 7);  // three 4 MiB blocks
  write_file(mnt_ + "/model.bin", data);
  Unmount();
  // Start from an empty cache, so that what the last mount cached came from reads.
  fs::remove_all(path("cache"));
  Mount();
  EXPECT_EQ(read_file(mnt_ + "/model.bin"), data);
  Unmount();
  EXPECT_GE(files_under(path("cache")).size(), 3u);

  fs::rename(objects_dir(), path("objects.away"));
  Mount();
  EXPECT_EQ(read_file(mnt_ + "/model.bin"), data);
  Unmount();
  fs::rename(path("objects.away"), objects_dir());
}

TEST_F(DiskCacheMount, CachesWrittenBlocks) {
  if (!file_store()) GTEST_SKIP() << "needs a file:// store to take away";
  const std::string data = random_bytes(5'000'000, 8);
  write_file(mnt_ + "/written.bin", data);
  Unmount();  // the write queue is written out before the mount process exits
  fs::rename(objects_dir(), path("objects.away"));
  Mount();
  EXPECT_EQ(read_file(mnt_ + "/written.bin"), data);
  Unmount();
  fs::rename(path("objects.away"), objects_dir());
}

TEST_F(DiskCacheMount, CorruptOrRemovedCacheNeverFailsReads) {
  const std::string data = random_bytes(9'000'000, 9);
  write_file(mnt_ + "/f.bin", data);
  Unmount();
  auto cached = files_under(path("cache"));
  ASSERT_GE(cached.size(), 3u);
  for (const fs::path& p : cached) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x5a');
    f.put('\xa5');
  }
  // A 4 MiB memory cache (a quarter of the budget): re-reads need the disk tier again.
  Mount({"--buffer-size", "16M"});
  EXPECT_EQ(read_file(mnt_ + "/f.bin"), data);
  EXPECT_NE(read_file(path("sluice.log")).find("failed verification"), std::string::npos);
  // The cache directory vanishes under the live mount: reads go to the store.
  fs::remove_all(path("cache"));
  ASSERT_EQ(system(("sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; true")), 0);
  EXPECT_EQ(read_file(mnt_ + "/f.bin"), data);
}

TEST_F(DiskCacheMount, VerifiedBlocksAreReadFromTheirCacheFiles) {
  const std::string data = random_bytes(13'000'000, 11);  // four blocks
  write_file(mnt_ + "/f.bin", data);
  Unmount();
  ASSERT_GE(files_under(path("cache")).size(), 4u);
  auto drop_caches = [] {
    ASSERT_EQ(system("sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; true"), 0);
  };
  // A 4 MiB memory cache: the second read finds only the disk copies, which the first
  // read of this mount verified.
  Mount({"--buffer-size", "16M"});
  drop_caches();
  EXPECT_EQ(read_file(mnt_ + "/f.bin"), data);
  drop_caches();
  EXPECT_EQ(read_file(mnt_ + "/f.bin"), data);
  Unmount();
  std::string log = read_file(path("sluice.log"));
  EXPECT_GE(log_counter(log, "read path", "read_file_bytes"), 8 << 20) << log;
  EXPECT_GE(log_counter(log, "block cache", "disk_file_opens"), 2) << log;
  EXPECT_EQ(log_counter(log, "read path", "object_gets"), 0) << log;
  EXPECT_EQ(log_counter(log, "block cache", "disk_corrupt"), 0) << log;

  // Every read verifies: nothing from the files as they are.
  Mount({"--buffer-size", "16M", "--verify-cache-checksum", "full"});
  drop_caches();
  EXPECT_EQ(read_file(mnt_ + "/f.bin"), data);
  drop_caches();
  EXPECT_EQ(read_file(mnt_ + "/f.bin"), data);
  Unmount();
  log = read_file(path("sluice.log"));
  EXPECT_EQ(log_counter(log, "read path", "read_file_bytes"), 0) << log;
  EXPECT_EQ(log_counter(log, "block cache", "disk_file_opens"), 0) << log;
  EXPECT_GE(log_counter(log, "block cache", "disk_hits"), 8) << log;
}

// A clean unmount records the cache files its mount trusted: the next mount reads the
// unchanged ones from their files without hashing them again, and still catches one
// damaged in between (docs/cache.md, "Restart"). A killed mount leaves no record.
TEST_F(DiskCacheMount, ACleanRemountTrustsUnchangedFilesAndChecksChangedOnes) {
  const std::string data = random_bytes(13'000'000, 12);  // four blocks
  write_file(mnt_ + "/f.bin", data);
  Unmount();
  auto cached = files_under(path("cache"));
  ASSERT_EQ(cached.size(), 4u);
  {
    std::fstream f(cached[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x5a');
    f.put('\xa5');
  }
  Mount({"--buffer-size", "16M"});
  ASSERT_EQ(system("sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; true"), 0);
  EXPECT_EQ(read_file(mnt_ + "/f.bin"), data);
  Unmount();
  std::string log = read_file(path("sluice.log"));
  EXPECT_EQ(log_counter(log, "block cache", "disk_remembered"), 3) << log;
  EXPECT_EQ(log_counter(log, "block cache", "disk_corrupt"), 1) << log;
  // The damaged block came from the store again (in one GET or in parallel parts, retried
  // where the suite injects store faults); the other three from their files, unhashed.
  EXPECT_GE(log_counter(log, "read path", "object_gets"), 1) << log;
  EXPECT_EQ(log_counter(log, "block cache", "disk_hits"), 3) << log;

  // Killed: no record (the mount took it), so the next mount checks every file again.
  const fs::path record = cached[1].parent_path().parent_path() / ".trusted";
  ASSERT_TRUE(fs::exists(record));
  Mount({"--buffer-size", "16M"});
  EXPECT_EQ(read_file(mnt_ + "/f.bin"), data);
  const pid_t pid = mount_pid(mnt_);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0) << std::strerror(errno);
  for (int i = 0; i < 500 && kill(pid, 0) == 0; i++) usleep(10'000);
  umount2(mnt_.c_str(), MNT_DETACH);
  EXPECT_FALSE(fs::exists(record));
}

// Reads of every size from verified cache files: those a pipe holds are spliced from the
// files, larger ones are read by the mount first (docs/cache.md); both return the file's
// bytes, across block boundaries too. O_DIRECT: each read reaches the mount as it is.
TEST_F(DiskCacheMount, ReadsOfEverySizeFromCacheFilesReturnTheirBytes) {
  const std::string data = random_bytes(13'000'000, 12);  // four blocks
  write_file(mnt_ + "/f.bin", data);
  Unmount();
  Mount({"--buffer-size", "16M"});  // a 4 MiB memory cache: the reads go to the files
  ASSERT_TRUE(read_file(mnt_ + "/f.bin") == data);  // verifies each file (once)
  ASSERT_EQ(system("sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; true"), 0);
  const int fd = open((mnt_ + "/f.bin").c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  void* mem = nullptr;
  ASSERT_EQ(posix_memalign(&mem, 4096, 1 << 20), 0);
  char* buf = static_cast<char*>(mem);
  uint64_t asked = 0;
  for (const size_t n : {8192ul, 128ul << 10, 512ul << 10, 1000ul << 10, 1ul << 20}) {
    // Within a block, and across the boundaries of blocks 1-2 and 2-3.
    for (const uint64_t at : std::vector<uint64_t>{1ull << 20, (4ull << 20) - n / 2 / 4096 * 4096,
                                                   (8ull << 20) - 4096}) {
      const ssize_t got = pread(fd, buf, n, static_cast<off_t>(at));
      ASSERT_EQ(got, static_cast<ssize_t>(n)) << n << " at " << at << ": " << std::strerror(errno);
      EXPECT_TRUE(std::string(buf, n) == data.substr(at, n)) << n << " bytes at " << at;
      asked += n;
    }
  }
  free(mem);
  close(fd);
  Unmount();
  const std::string log = read_file(path("sluice.log"));
  EXPECT_GE(log_counter(log, "read path", "read_file_bytes"), static_cast<long long>(asked)) << log;
  EXPECT_EQ(log_counter(log, "read path", "object_gets"), 0) << log;
}

}  // namespace
}  // namespace sluice::test
