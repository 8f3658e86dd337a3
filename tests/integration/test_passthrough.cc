// FUSE passthrough (--passthrough, docs/cache.md "Passthrough"): `warmup` makes a whole
// local copy of each file, and a read-only open of a file with a copy is handed to the
// kernel, which then reads and maps the copy without a request to the mount. A changed
// file is never read from an old copy, and while a passthrough handle is open an open for
// writing is refused (ETXTBSY), as the kernel takes no other kind of open then.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
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

// The file's bytes as a loader sees them: mapped, every byte read from the mapping.
std::string read_mapped(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return "open failed: " + std::string(std::strerror(errno));
  const off_t size = ::lseek(fd, 0, SEEK_END);
  void* p = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return "mmap failed: " + std::string(std::strerror(errno));
  std::string out(static_cast<const char*>(p), static_cast<size_t>(size));
  ::munmap(p, static_cast<size_t>(size));
  return out;
}

void drop_caches() {
  ASSERT_EQ(system("sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; true"), 0);
}

// Copies under the cache directory (their names start with the escaped "~copy/").
std::vector<fs::path> copies_under(const std::string& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().filename().string().rfind("~copy", 0) == 0) {
      out.push_back(it->path());
    }
  }
  return out;
}

class Passthrough : public MountFixture {
 protected:
  std::vector<std::string> MountOptions() const override {
    return {"--cache-dir", path("cache"), "--passthrough"};
  }
  void SetUp() override {
    MountFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    const std::string log = read_file(path("sluice.log"));
    if (log.find("passthrough on") == std::string::npos) {
      GTEST_SKIP() << "the kernel or this process cannot use FUSE passthrough:\n" << log;
    }
  }
  // A counter of the mount, read over its control socket.
  double counter(const std::string& name) {
    CliResult js = cli({"stats", "--json", mnt_});
    EXPECT_EQ(js.code, 0) << js.err;
    auto j = nlohmann::json::parse(js.out, nullptr, false);
    if (j.is_discarded() || !j["samples"].contains(name)) {
      ADD_FAILURE() << "no " << name << " in: " << js.out;
      return -1;
    }
    return j["samples"][name].get<double>();
  }
};

TEST_F(Passthrough, WarmedFilesAreReadByTheKernelFromTheirCopies) {
  const std::string data = random_bytes(9'000'000, 21);  // three 4 MiB blocks
  write_file(mnt_ + "/model.bin", data);
  write_file(mnt_ + "/empty", "");
  CliResult w = cli({"warmup", mnt_ + "/model.bin", mnt_ + "/empty"});
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_EQ(counter("sluice_copies_made_total"), 1);  // an empty file needs no copy
  EXPECT_EQ(counter("sluice_copy_bytes_total"), data.size());
  ASSERT_EQ(copies_under(path("cache")).size(), 1u);

  drop_caches();
  const double read_before = counter("sluice_read_bytes_total");
  EXPECT_EQ(read_mapped(mnt_ + "/model.bin"), data);
  EXPECT_EQ(read_file(mnt_ + "/model.bin"), data);
  EXPECT_GE(counter("sluice_copy_opens_total"), 2);
  // The kernel read the copy: no read reached the mount.
  EXPECT_EQ(counter("sluice_read_bytes_total"), read_before);

  // The copy outlives the mount, and the next mount hands it out again.
  Unmount();
  Mount(MountOptions());
  drop_caches();
  EXPECT_EQ(read_mapped(mnt_ + "/model.bin"), data);
  EXPECT_GE(counter("sluice_copy_opens_total"), 1);
  EXPECT_EQ(counter("sluice_read_bytes_total"), 0);

  // --evict drops the copy with the blocks.
  CliResult e = cli({"warmup", "--evict", mnt_ + "/model.bin"});
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_TRUE(copies_under(path("cache")).empty());
  EXPECT_EQ(read_file(mnt_ + "/model.bin"), data);
  EXPECT_GT(counter("sluice_read_bytes_total"), 0);
}

// Warmup writes a file to the local disk once, as its copy (no block files), and a mount
// without --passthrough on the same cache reads the file from the copy through FUSE,
// with no GET.
TEST_F(Passthrough, AWarmedFileIsWrittenOnceAndAMountWithoutPassthroughReadsItsCopy) {
  const std::string data = random_bytes(9'000'000, 23);
  write_file(mnt_ + "/model.bin", data);
  Unmount();
  fs::remove_all(path("cache"));  // the blocks the writes cached
  Mount(MountOptions());
  ASSERT_EQ(cli({"warmup", mnt_ + "/model.bin"}).code, 0);
  EXPECT_EQ(counter("sluice_copies_made_total"), 1);
  EXPECT_EQ(counter("sluice_disk_cache_written_bytes_total"), data.size());

  Unmount();
  Mount({"--cache-dir", path("cache")});
  drop_caches();
  EXPECT_EQ(read_file(mnt_ + "/model.bin"), data);
  EXPECT_EQ(read_mapped(mnt_ + "/model.bin"), data);
  EXPECT_EQ(counter("sluice_object_get_total"), 0);
  EXPECT_GE(counter("sluice_copy_read_bytes_total"), data.size());
  EXPECT_GE(counter("sluice_copy_opens_total"), 1);
  CliResult check = cli({"warmup", "--check", mnt_ + "/model.bin"});
  EXPECT_EQ(check.code, 0) << check.err;
  EXPECT_NE(check.out.find("cached (100.0%)"), std::string::npos) << check.out;
}

TEST_F(Passthrough, AChangedFileIsNeverReadFromItsOldCopy) {
  std::string data = random_bytes(5'000'000, 22);
  write_file(mnt_ + "/f", data);
  ASSERT_EQ(cli({"warmup", mnt_ + "/f"}).code, 0);

  // A reader holds a passthrough handle: writers are refused, readers share the copy.
  const int held = ::open((mnt_ + "/f").c_str(), O_RDONLY);
  ASSERT_GE(held, 0) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(::open((mnt_ + "/f").c_str(), O_WRONLY), -1);
  EXPECT_EQ(errno, ETXTBSY);
  EXPECT_EQ(read_file(mnt_ + "/f"), data);
  ::close(held);

  // With no handle open, a writer gets in; the copy no longer matches the file.
  const int wfd = ::open((mnt_ + "/f").c_str(), O_WRONLY);
  ASSERT_GE(wfd, 0) << std::strerror(errno);
  ASSERT_EQ(::pwrite(wfd, "CHANGED", 7, 1000), 7);
  ASSERT_EQ(::close(wfd), 0);
  data.replace(1000, 7, "CHANGED");
  drop_caches();
  const double opens = counter("sluice_copy_opens_total");
  EXPECT_EQ(read_mapped(mnt_ + "/f"), data);
  EXPECT_EQ(read_file(mnt_ + "/f"), data);
  EXPECT_EQ(counter("sluice_copy_opens_total"), opens);

  // Warmed again, the new bytes get a copy of their own.
  ASSERT_EQ(cli({"warmup", mnt_ + "/f"}).code, 0);
  drop_caches();
  EXPECT_EQ(read_mapped(mnt_ + "/f"), data);
  EXPECT_GT(counter("sluice_copy_opens_total"), opens);
}

// A copy holds each block's bytes where the file shows them: a file of several slices
// (a part overwritten after the first flush, a hole, a tail past the hole) reads the same
// from its copy as through the mount.
TEST_F(Passthrough, ACopyOfOverwrittenAndSparseBytesReadsTheSame) {
  std::string data = random_bytes(6'000'000, 23);
  const std::string path = mnt_ + "/sparse";
  write_file(path, data);
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string patch = random_bytes(1'500'000, 24);
  ASSERT_EQ(::pwrite(fd, patch.data(), patch.size(), 3'000'000), ssize_t(patch.size()));
  const std::string tail = random_bytes(700'000, 25);
  ASSERT_EQ(::pwrite(fd, tail.data(), tail.size(), 11'000'000), ssize_t(tail.size()));
  ASSERT_EQ(::close(fd), 0);
  data.replace(3'000'000, patch.size(), patch);
  data.resize(11'000'000, '\0');
  data += tail;

  Unmount();  // the next mount reads it from the store, not from buffers
  Mount(MountOptions());
  ASSERT_EQ(cli({"warmup", path}).code, 0);
  ASSERT_EQ(counter("sluice_copies_made_total"), 1);
  drop_caches();
  EXPECT_EQ(read_mapped(path), data);
  EXPECT_EQ(read_file(path), data);
  EXPECT_EQ(counter("sluice_read_bytes_total"), 0);
}

}  // namespace
}  // namespace sluice::test
