// Consistency across mounts and crashes. Two mounts of one volume (zero kernel cache
// timeouts) see each other's data at close-to-open and each other's namespace and
// attribute changes at once; data survives umount/mount; and after kill -9 of the mount
// process in the middle of fsync'ed writes, a lazy unmount and a new mount, every file
// whose fsync returned is there with its content, and `sluice fsck` finds the volume
// consistent. A read-only second mount reads all and changes nothing (EROFS).
#include <dirent.h>
#include <signal.h>
#include <sys/xattr.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <thread>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

uint64_t fnv(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// False once pid has exited (a zombie counts as exited: nobody may reap it here).
bool alive(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  size_t p = stat.rfind(')');
  return p != std::string::npos && p + 2 < stat.size() && stat[p + 2] != 'Z';
}

class Consistency : public MountFixture {
 protected:
  std::vector<std::string> MountOptions() const override {
    return {"--entry-timeout", "0", "--attr-timeout", "0", "--dir-entry-timeout", "0"};
  }
  std::string A(const std::string& rel) const { return mnt_ + "/" + rel; }
  std::string B(const std::string& rel) const { return path("mnt2/" + rel); }
};

TEST_F(Consistency, MountOptionsExist) {
  CliResult h = cli({"mount", "--help"});
  ASSERT_EQ(h.code, 0) << h.err;
  for (const char* opt : {"--entry-timeout", "--attr-timeout", "--dir-entry-timeout"}) {
    EXPECT_NE(h.out.find(opt), std::string::npos) << opt << " missing from:\n" << h.out;
  }
}

TEST_F(Consistency, CloseToOpenAcrossMounts) {
  MountAt(meta_url_, path("mnt2"), MountOptions());
  write_file(A("f"), "version one");
  EXPECT_EQ(read_file(B("f")), "version one");
  write_file(A("f"), "version two, longer");
  EXPECT_EQ(read_file(B("f")), "version two, longer");

  // Same size, new bytes: B must not serve its cached pages from the previous open.
  int fd = ::open(A("f").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::pwrite(fd, "VERSION", 7, 0), 7);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(read_file(B("f")), "VERSION two, longer");

  // And the other way, with a larger file crossing blocks.
  const std::string big = random_bytes((5 << 20) + 17, 3);
  write_file(B("big"), big);
  EXPECT_EQ(read_file(A("big")), big);
  fd = ::open(B("big").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "appended", 8), 8);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(read_file(A("big")), big + "appended");
  struct stat st;
  ASSERT_EQ(::stat(A("big").c_str(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), big.size() + 8);

  // Truncation in one mount, seen in the other.
  ASSERT_EQ(::truncate(A("big").c_str(), 10), 0);
  EXPECT_EQ(read_file(B("big")), big.substr(0, 10));

  // Writes still buffered in A: A's own stat (attributes not cached) shows the new size
  // at once; B sees the data once A closes.
  fd = ::open(A("open").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, big.data(), 100000), 100000);
  ASSERT_EQ(::stat(A("open").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 100000);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(read_file(B("open")), big.substr(0, 100000));
}

// A file open in one mount and unlinked (or replaced by rename) in the other stays
// readable through the open descriptor, as on a local file system. Disabled: Sluice
// keeps open-unlinked files only for the session that unlinks them (reported to the
// lead); enable once open files are tracked across sessions.
TEST_F(Consistency, DISABLED_OpenFileSurvivesUnlinkInOtherMount) {
  MountAt(meta_url_, path("mnt2"), MountOptions());
  const std::string data = random_bytes(100000, 8);
  write_file(A("e"), data);
  int fd = ::open(B("e").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::unlink(A("e").c_str()), 0);
  std::string buf(200000, '\0');
  ssize_t n = ::pread(fd, buf.data(), buf.size(), 0);
  EXPECT_EQ(n, 100000) << std::strerror(errno);
  if (n > 0) {
    EXPECT_EQ(buf.substr(0, static_cast<size_t>(n)), data);
  }
  ::close(fd);
}

TEST_F(Consistency, NamespaceAndAttributesAcrossMounts) {
  MountAt(meta_url_, path("mnt2"), MountOptions());
  struct stat st;
  ASSERT_EQ(::stat(B("new").c_str(), &st), -1);  // a negative lookup the kernel could cache
  write_file(A("new"), "n");
  EXPECT_EQ(::stat(B("new").c_str(), &st), 0) << "a file created in A is missing in B";
  EXPECT_EQ(read_file(B("new")), "n");

  ASSERT_EQ(::mkdir(A("dir").c_str(), 0755), 0);
  write_file(A("dir/x"), "x");
  EXPECT_EQ(list_dir(B("dir")), (std::set<std::string>{"x"}));
  ASSERT_EQ(::rename(A("dir/x").c_str(), A("dir/y").c_str()), 0);
  EXPECT_EQ(list_dir(B("dir")), (std::set<std::string>{"y"}));
  EXPECT_EQ(::stat(B("dir/x").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(read_file(B("dir/y")), "x");

  ASSERT_EQ(::chmod(A("new").c_str(), 0600), 0);
  ASSERT_EQ(::stat(B("new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::unlink(A("new").c_str()), 0);
  EXPECT_EQ(::stat(B("new").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);

  // A directory removed in B and recreated as a file in A.
  ASSERT_EQ(::unlink(B("dir/y").c_str()), 0);
  ASSERT_EQ(::rmdir(B("dir").c_str()), 0);
  write_file(A("dir"), "now a file");
  ASSERT_EQ(::stat(B("dir").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(read_file(B("dir")), "now a file");
  EXPECT_EQ(list_dir(B("")), list_dir(A("")));
}

TEST_F(Consistency, DataSurvivesRemount) {
  const std::vector<size_t> sizes = {0, 1, 4095, 4096, 65537, (4 << 20) + 1, 7'777'777,
                                     20'000'000};
  std::vector<std::string> contents;
  ASSERT_EQ(::mkdir(A("d").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(A("d/e").c_str(), 0755), 0);
  for (size_t i = 0; i < sizes.size(); i++) {
    contents.push_back(random_bytes(sizes[i], 100 + i));
    write_file(A((i % 2 ? "d/e/f" : "d/f") + std::to_string(i)), contents.back());
  }
  Unmount();
  Mount(MountOptions());
  for (size_t i = 0; i < sizes.size(); i++) {
    std::string got = read_file(A((i % 2 ? "d/e/f" : "d/f") + std::to_string(i)));
    EXPECT_EQ(got.size(), sizes[i]) << i;
    EXPECT_EQ(fnv(got), fnv(contents[i])) << "file " << i << " of " << sizes[i] << " bytes";
  }
}

// A second, read-only mount of the volume reads everything and changes nothing (EROFS).
TEST_F(Consistency, ReadOnlySecondMount) {
  write_file(A("f"), "readable");
  ASSERT_EQ(::mkdir(A("d").c_str(), 0755), 0);
  std::string ro = path("ro");
  MountAt(meta_url_, ro, {"--read-only", "--attr-timeout", "0", "--entry-timeout", "0"});
  EXPECT_EQ(read_file(ro + "/f"), "readable");
  EXPECT_ERRNO(::open((ro + "/f").c_str(), O_WRONLY), EROFS);
  EXPECT_ERRNO(::open((ro + "/new").c_str(), O_CREAT | O_WRONLY, 0644), EROFS);
  EXPECT_ERRNO(::mkdir((ro + "/d2").c_str(), 0755), EROFS);
  EXPECT_ERRNO(::unlink((ro + "/f").c_str()), EROFS);
  EXPECT_ERRNO(::rename((ro + "/f").c_str(), (ro + "/g").c_str()), EROFS);
  EXPECT_ERRNO(::chmod((ro + "/f").c_str(), 0600), EROFS);
  EXPECT_ERRNO(::truncate((ro + "/f").c_str(), 0), EROFS);
  EXPECT_ERRNO(::setxattr((ro + "/f").c_str(), "user.x", "1", 1, 0), EROFS);
  EXPECT_ERRNO(::access((ro + "/f").c_str(), W_OK), EROFS);
  EXPECT_EQ(list_dir(ro), (std::set<std::string>{"f", "d"}));
  EXPECT_EQ(read_file(A("f")), "readable");
}

TEST_F(Consistency, KillNineKeepsFsyncedFiles) {
  ASSERT_EQ(::mkdir(A("k").c_str(), 0755), 0);
  const std::string record = path("record.txt");
  pid_t writer = fork();
  if (writer == 0) {
    int rec = ::open(record.c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
    for (int i = 0; i < 100000; i++) {
      std::string name = "k/file-" + std::to_string(i);
      std::string data = random_bytes(1 + (static_cast<size_t>(i) * 7919) % 300000, 500 + i);
      int fd = ::open(A(name).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
      if (fd < 0) _exit(0);
      if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) _exit(0);
      if (::fsync(fd) != 0) _exit(0);
      char line[128];
      int n = snprintf(line, sizeof line, "%s %zu %llu\n", name.c_str(), data.size(),
                       static_cast<unsigned long long>(fnv(data)));
      (void)!::write(rec, line, static_cast<size_t>(n));
      ::close(fd);
    }
    _exit(0);
  }
  ASSERT_GT(writer, 0);
  auto lines_of = [&] {
    std::string s = read_file(record);
    return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (lines_of() < 50 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_t server = mount_pid(mnt_);
  CliResult st = cli({"status", meta_url_});
  bool enough = lines_of() >= 50;
  if (server > 0) {
    ASSERT_EQ(kill(server, SIGKILL), 0) << std::strerror(errno);
  }
  // The writer's next request fails once the server is gone.
  int wstatus = 0;
  pid_t reaped = 0;
  for (int i = 0; i < 2000 && reaped == 0; i++) {
    reaped = waitpid(writer, &wstatus, WNOHANG);
    if (reaped == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (reaped == 0) {
    kill(writer, SIGKILL);
    waitpid(writer, &wstatus, 0);
  }
  ASSERT_GT(server, 0) << "no mount process found for " << mnt_;
  EXPECT_NE(st.out.find(" " + std::to_string(server) + " "), std::string::npos)
      << "sluice status does not list pid " << server << ":\n" << st.out;
  EXPECT_GT(reaped, 0) << "the writer hung after the mount process was killed";
  ASSERT_TRUE(enough) << "the writer recorded only " << lines_of() << " files in 60 s";
  for (int i = 0; i < 500 && alive(server); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  ASSERT_EQ(umount2(mnt_.c_str(), MNT_DETACH), 0) << std::strerror(errno);
  ASSERT_FALSE(is_mounted(mnt_));
  Mount(MountOptions());

  std::istringstream in(read_file(record));
  int checked = 0;
  for (std::string name; in >> name;) {
    size_t size = 0;
    unsigned long long sum = 0;
    in >> size >> sum;
    std::string got = read_file(A(name));
    EXPECT_EQ(got.size(), size) << name;
    EXPECT_EQ(fnv(got), sum) << name << ": content differs from what was fsync'ed";
    checked++;
  }
  EXPECT_GE(checked, 50);

  Unmount();
  CliResult fsck = cli({"fsck", meta_url_});
  EXPECT_EQ(fsck.code, 0) << "sluice fsck after kill -9:\n" << fsck.out << fsck.err;
}

}  // namespace
}  // namespace sluice::test
