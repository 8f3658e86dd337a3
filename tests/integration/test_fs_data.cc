// Volume limits and bulk data through the kernel (the heavier half of the file-system
// operation tests): statfs of a volume formatted with --capacity and --inodes, ENOSPC
// past either limit, a sparse file across 64 MiB chunks, a 1,000,000-byte random round
// trip across a remount, a 10,000-entry directory listed completely, and readdir
// stability while the directory changes under an open iteration.
#include <dirent.h>
#include <sys/statvfs.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

#define ASSERT_OK(expr) ASSERT_NE(static_cast<long>(expr), -1L) << #expr << ": " << std::strerror(errno)

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class FsData : public MountFixture {
 protected:
  std::string P(const std::string& rel) const { return mnt_ + "/" + rel; }
};

// A volume of its own with both limits, mounted beside the fixture's.
class FsLimits : public FsData {
 protected:
  void SetUp() override {
    FsData::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    cap_url_ = "sqlite3://" + path("cap.db");
    CliResult f = cli({"format", cap_url_, "capvol", "--storage", "file://" + path("capobj"),
                       "--capacity", "64M", "--inodes", "100"});
    ASSERT_EQ(f.code, 0) << f.err;
    cap_ = path("cap");
    MountAt(cap_url_, cap_);
  }

  struct statvfs Statfs() const {
    struct statvfs sv = {};
    EXPECT_EQ(::statvfs(cap_.c_str(), &sv), 0) << std::strerror(errno);
    return sv;
  }

  std::string cap_url_, cap_;
};

TEST_F(FsLimits, StatfsAndNoSpace) {
  struct statvfs sv = Statfs();
  EXPECT_EQ(uint64_t{sv.f_blocks} * sv.f_frsize, uint64_t{64} << 20);
  EXPECT_EQ(sv.f_files, 100u);
  EXPECT_LE(sv.f_bavail, sv.f_blocks);
  const uint64_t free_before = uint64_t{sv.f_bavail} * sv.f_frsize;
  EXPECT_GT(free_before, uint64_t{63} << 20);

  // 10 MiB written: statfs shows it used.
  const std::string mib = random_bytes(1 << 20, 3);
  {
    int fd = ::open((cap_ + "/ten").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_OK(fd);
    for (int i = 0; i < 10; i++) ASSERT_EQ(::write(fd, mib.data(), mib.size()), 1 << 20);
    ASSERT_OK(::close(fd));
  }
  sv = Statfs();
  EXPECT_EQ(free_before - uint64_t{sv.f_bavail} * sv.f_frsize, uint64_t{10} << 20);

  // Writing 80 MiB more fails with ENOSPC on write, fsync or close, and nothing else.
  int fd = ::open((cap_ + "/big").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_OK(fd);
  std::vector<std::string> failures;
  int enospc = 0;
  uint64_t written = 0;
  for (int i = 0; i < 80; i++) {
    ssize_t r = ::write(fd, mib.data(), mib.size());
    if (r < 0) {
      if (errno == ENOSPC) enospc++;
      else failures.push_back(std::string("write: ") + std::strerror(errno));
      break;
    }
    written += static_cast<uint64_t>(r);
  }
  for (const char* what : {"fsync", "close"}) {
    int r = std::string(what) == "fsync" ? ::fsync(fd) : ::close(fd);
    if (r != 0) {
      if (errno == ENOSPC) enospc++;
      else failures.push_back(std::string(what) + ": " + std::strerror(errno));
    }
  }
  EXPECT_GE(enospc, 1) << "80 MiB past a 64 MiB capacity were accepted (written " << written
                       << ")";
  struct stat st;
  ASSERT_OK(::stat((cap_ + "/big").c_str(), &st));
  EXPECT_LE(static_cast<uint64_t>(st.st_size), uint64_t{54} << 20);
  sv = Statfs();
  EXPECT_LE(uint64_t{sv.f_bavail} * sv.f_frsize, free_before);

  // Deleting frees the space: a 20 MiB file fits again.
  ASSERT_OK(::unlink((cap_ + "/big").c_str()));
  ASSERT_OK(::unlink((cap_ + "/ten").c_str()));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (uint64_t{Statfs().f_bavail} * sv.f_frsize < free_before &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(uint64_t{Statfs().f_bavail} * sv.f_frsize, free_before);
  fd = ::open((cap_ + "/again").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_OK(fd);
  for (int i = 0; i < 20; i++) ASSERT_EQ(::write(fd, mib.data(), mib.size()), 1 << 20);
  ASSERT_OK(::close(fd));
  EXPECT_TRUE(failures.empty()) << failures.front();
}

TEST_F(FsLimits, InodeLimit) {
  struct statvfs sv = Statfs();
  const uint64_t free_inodes = sv.f_ffree;
  ASSERT_GT(free_inodes, 90u);
  ASSERT_LE(free_inodes, 100u);
  uint64_t created = 0;
  int err = 0;
  for (int i = 0; i < 150; i++) {
    std::string p = cap_ + "/f" + std::to_string(i);
    int fd = ::open(p.c_str(), O_CREAT | O_WRONLY, 0644);
    if (fd < 0) {
      err = errno;
      break;
    }
    ::close(fd);
    created++;
  }
  EXPECT_EQ(err, ENOSPC) << std::strerror(err);
  EXPECT_EQ(created, free_inodes);
  EXPECT_EQ(Statfs().f_ffree, 0u);
  errno = 0;
  EXPECT_EQ(::mkdir((cap_ + "/dir").c_str(), 0755), -1);
  EXPECT_EQ(errno, ENOSPC);
  errno = 0;
  EXPECT_EQ(::symlink("x", (cap_ + "/ln").c_str()), -1);
  EXPECT_EQ(errno, ENOSPC);
  // A hard link is no new inode.
  EXPECT_EQ(::link((cap_ + "/f0").c_str(), (cap_ + "/f0-link").c_str()), 0) << std::strerror(errno);
  ASSERT_OK(::unlink((cap_ + "/f1").c_str()));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Statfs().f_ffree == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(::mkdir((cap_ + "/dir").c_str(), 0755), 0) << std::strerror(errno);
}

TEST_F(FsData, SparseFileAcrossChunks) {
  constexpr off_t kChunk = off_t{64} << 20;
  constexpr off_t kFar = off_t{130} << 20;
  const std::string mid = "ABCDEFGHIJKLMNOPQRST";  // crosses the first chunk boundary
  {
    int fd = ::open(P("sparse").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_OK(fd);
    ASSERT_EQ(::pwrite(fd, mid.data(), mid.size(), kChunk - 10), 20);
    ASSERT_EQ(::pwrite(fd, "tail!", 5, kFar), 5);
    ASSERT_OK(::close(fd));
  }
  Unmount();  // read back from the store, not the page cache
  Mount();
  struct stat st;
  ASSERT_OK(::stat(P("sparse").c_str(), &st));
  EXPECT_EQ(st.st_size, kFar + 5);
  int fd = ::open(P("sparse").c_str(), O_RDONLY);
  ASSERT_OK(fd);
  std::string buf(4 << 20, '\0');
  off_t off = 0;
  uint64_t nonzero_wrong = 0;
  std::string seen_mid, seen_tail;
  while (true) {
    ssize_t r = ::pread(fd, buf.data(), buf.size(), off);
    ASSERT_GE(r, 0) << std::strerror(errno);
    if (r == 0) break;
    for (ssize_t i = 0; i < r; i++) {
      off_t at = off + i;
      if (at >= kChunk - 10 && at < kChunk + 10) seen_mid.push_back(buf[i]);
      else if (at >= kFar) seen_tail.push_back(buf[i]);
      else if (buf[i] != 0) nonzero_wrong++;
    }
    off += r;
  }
  ASSERT_OK(::close(fd));
  EXPECT_EQ(off, kFar + 5);
  EXPECT_EQ(seen_mid, mid);
  EXPECT_EQ(seen_tail, "tail!");
  EXPECT_EQ(nonzero_wrong, 0u) << "holes must read as zeros";
}

TEST_F(FsData, MillionRandomBytes) {
  const std::string data = random_bytes(1'000'000, 1234);
  std::mt19937_64 rng(99);
  {
    int fd = ::open(P("rand").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_OK(fd);
    for (size_t off = 0; off < data.size();) {  // odd-sized sequential writes
      size_t n = std::min<size_t>(1 + rng() % 70000, data.size() - off);
      ASSERT_EQ(::write(fd, data.data() + off, n), static_cast<ssize_t>(n));
      off += n;
    }
    ASSERT_OK(::close(fd));
  }
  EXPECT_EQ(read_file(P("rand")), data);
  Unmount();
  Mount();
  EXPECT_EQ(read_file(P("rand")), data);
  int fd = ::open(P("rand").c_str(), O_RDONLY);
  ASSERT_OK(fd);
  for (int i = 0; i < 200; i++) {
    size_t off = rng() % data.size(), len = 1 + rng() % 100000;
    std::string buf(len, '\0');
    ssize_t r = ::pread(fd, buf.data(), len, static_cast<off_t>(off));
    ASSERT_EQ(r, static_cast<ssize_t>(std::min(len, data.size() - off)));
    ASSERT_EQ(buf.substr(0, static_cast<size_t>(r)), data.substr(off, static_cast<size_t>(r)))
        << "at " << off;
  }
  ASSERT_OK(::close(fd));
}

// Thousands of metadata transactions: SQLite without a full sync per commit (still safe
// against a crash of the process, which is all these tests need).
class FsBigDir : public FsData {
 protected:
  std::string MetaUrlOptions() const override { return "?sync=normal"; }
};

TEST_F(FsBigDir, TenThousandEntries) {
  ASSERT_OK(::mkdir(P("big").c_str(), 0755));
  std::set<std::string> want;
  for (int i = 0; i < 10000; i++) {
    char name[32];
    snprintf(name, sizeof name, "entry-%05d", i);
    want.insert(name);
    ASSERT_OK(::mknod(P(std::string("big/") + name).c_str(), S_IFREG | 0644, 0));
  }
  DIR* d = opendir(P("big").c_str());
  ASSERT_NE(d, nullptr) << std::strerror(errno);
  std::map<std::string, int> seen;
  while (dirent* e = readdir(d)) seen[e->d_name]++;
  closedir(d);
  EXPECT_EQ(seen["."], 1);
  EXPECT_EQ(seen[".."], 1);
  seen.erase(".");
  seen.erase("..");
  EXPECT_EQ(seen.size(), 10000u);
  std::set<std::string> got;
  for (auto& [name, n] : seen) {
    EXPECT_EQ(n, 1) << name << " listed " << n << " times";
    got.insert(name);
  }
  EXPECT_EQ(got, want);
  struct stat st;
  ASSERT_OK(::stat(P("big/entry-09999").c_str(), &st));
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

// Entries present for the whole iteration appear exactly once, even while others are
// created and deleted between readdir calls; no name appears twice.
TEST_F(FsBigDir, ReaddirStableWhileChanging) {
  ASSERT_OK(::mkdir(P("d").c_str(), 0755));
  std::set<std::string> keep;
  for (int i = 0; i < 2000; i++) {
    std::string n = "keep-" + std::to_string(i);
    keep.insert(n);
    ASSERT_OK(::mknod(P("d/" + n).c_str(), S_IFREG | 0644, 0));
  }
  for (int i = 0; i < 500; i++) ASSERT_OK(::mknod(P("d/tmp-" + std::to_string(i)).c_str(), S_IFREG | 0644, 0));

  DIR* d = opendir(P("d").c_str());
  ASSERT_NE(d, nullptr) << std::strerror(errno);
  std::map<std::string, int> seen;
  int read_count = 0, created = 0, deleted = 0;
  while (dirent* e = readdir(d)) {
    seen[e->d_name]++;
    if (++read_count % 25 == 0) {
      for (int k = 0; k < 5; k++) {
        ASSERT_OK(::mknod(P("d/new-" + std::to_string(created++)).c_str(), S_IFREG | 0644, 0));
        if (deleted < 500) {
          ASSERT_OK(::unlink(P("d/tmp-" + std::to_string(deleted++)).c_str()));
        }
      }
    }
  }
  closedir(d);
  EXPECT_GT(created, 400);
  for (const std::string& n : keep) EXPECT_EQ(seen[n], 1) << n;
  for (auto& [name, count] : seen) {
    EXPECT_EQ(count, 1) << name << " returned " << count << " times";
    bool known = name == "." || name == ".." || name.rfind("keep-", 0) == 0 ||
                 name.rfind("tmp-", 0) == 0 || name.rfind("new-", 0) == 0;
    EXPECT_TRUE(known) << name;
  }
  // A fresh listing shows exactly the current state.
  std::set<std::string> now;
  d = opendir(P("d").c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) now.insert(e->d_name);
  closedir(d);
  EXPECT_EQ(now.size(), 2u + 2000u + static_cast<size_t>(created) + 500u - static_cast<size_t>(deleted));
  EXPECT_FALSE(now.count("tmp-0"));
  EXPECT_TRUE(now.count("new-0"));
}

}  // namespace
}  // namespace sluice::test
