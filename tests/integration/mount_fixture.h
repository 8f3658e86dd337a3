// Integration-test fixtures that drive the real `sluice` binary (SLUICE_BINARY).
//
// TempDirTest: a fresh temp directory per test and run_cli() to run the CLI with its
// output captured. MountFixture adds a volume formatted on the backends that backends.h
// picks (by default sqlite3://<tmp>/meta.db and file://<tmp>/objects), mounted in the
// background at <tmp>/mnt. TearDown
// unmounts (sluice umount, then a lazy umount as a fallback) and removes the directory;
// a directory that is still mounted is never removed (that would delete through the
// mount). Mount tests skip when there is no usable /dev/fuse.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backends.h"
#include "object/store.h"

extern char** environ;

// Expects `expr` to return -1 with errno `e`.
#define EXPECT_ERRNO(expr, e)                                                      \
  do {                                                                             \
    errno = 0;                                                                     \
    long r_ = static_cast<long>(expr);                                             \
    int e_ = errno;                                                                \
    EXPECT_EQ(r_, -1) << #expr;                                                    \
    EXPECT_EQ(e_, e) << #expr << ": errno " << std::strerror(e_) << ", expected " \
                     << std::strerror(e);                                          \
  } while (0)

namespace sluice::test {

struct CliResult {
  int code = -1;    // exit status; -1 if it did not exit normally
  std::string out;  // stdout
  std::string err;  // stderr

  std::vector<std::string> err_lines() const {
    std::vector<std::string> lines;
    std::istringstream in(err);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
};

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The pid of the `sluice mount ... <mountpoint>` process serving mountpoint, or -1.
inline pid_t mount_pid(const std::string& mountpoint) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_file(e.path().string() + "/cmdline");
    std::vector<std::string> argv;
    for (size_t p = 0; p < cmdline.size();) {
      size_t z = cmdline.find('\0', p);
      if (z == std::string::npos) z = cmdline.size();
      argv.push_back(cmdline.substr(p, z - p));
      p = z + 1;
    }
    if (argv.size() < 4) continue;
    const std::string& exe = argv[0];
    bool is_sluice = exe == "sluice" || (exe.size() > 7 && exe.substr(exe.size() - 7) == "/sluice");
    bool has_mnt = false, has_mount = false;
    for (const std::string& a : argv) {
      has_mnt |= a == mountpoint;
      has_mount |= a == "mount";
    }
    if (is_sluice && has_mount && has_mnt) return static_cast<pid_t>(std::stoi(name));
  }
  return -1;
}

// The value of `name N` on the last "<line>:" log line of a mount log (the read path and
// block cache counters logged at unmount), or -1.
inline long long log_counter(const std::string& log, const std::string& line,
                             const std::string& name) {
  const size_t at = log.rfind(line + ":");
  if (at == std::string::npos) return -1;
  const std::string text = log.substr(at, log.find('\n', at) - at);
  const std::string key = " " + name + " ";
  const size_t k = text.find(key);
  if (k == std::string::npos) return -1;
  return std::atoll(text.c_str() + k + key.size());
}

inline void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// The names in a directory, without "." and "..".
inline std::set<std::string> list_dir(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.insert(n);
  }
  closedir(d);
  return names;
}

// True if `path` is a mount point in /proc/self/mountinfo (paths there escape spaces,
// which our temp paths never contain).
inline bool is_mounted(const std::string& path) {
  std::ifstream f("/proc/self/mountinfo");
  for (std::string line; std::getline(f, line);) {
    std::istringstream in(line);
    std::string id, parent, dev, root, mnt;
    in >> id >> parent >> dev >> root >> mnt;
    if (mnt == path) return true;
  }
  return false;
}

// Runs `binary args...` with stdin from /dev/null and stdout/stderr in files under
// scratch_dir (files, not pipes: a background mount process must not keep a pipe open
// that we read to EOF).
inline CliResult run_program(const std::string& binary, const std::vector<std::string>& args,
                             const std::string& scratch_dir) {
  static int seq = 0;
  std::string base = scratch_dir + "/.cli." + std::to_string(getpid()) + "." + std::to_string(seq++);
  std::string out_path = base + ".out", err_path = base + ".err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> words = {binary};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  CliResult r;
  pid_t pid = 0;
  int err = posix_spawnp(&pid, binary.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (err != 0) {
    r.err = "spawn " + binary + ": " + std::strerror(err);
    return r;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  unlink(out_path.c_str());
  unlink(err_path.c_str());
  return r;
}

// Asserts a CLI failure: exit code 1 and exactly one stderr line "sluice: ..." that
// contains `expected`.
inline void expect_one_line_error(const CliResult& r, const std::string& expected) {
  EXPECT_EQ(r.code, 1) << "stdout: " << r.out << "\nstderr: " << r.err;
  auto lines = r.err_lines();
  ASSERT_EQ(lines.size(), 1u) << "stderr: " << r.err;
  EXPECT_EQ(lines[0].rfind("sluice: ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(expected), std::string::npos)
      << "expected '" << expected << "' in: " << lines[0];
}

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-it-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }

  void TearDown() override {
    if (dir_.empty()) return;
    // Never delete through a mount that is still there.
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      if (is_mounted(e.path().string())) {
        ADD_FAILURE() << e.path() << " is still mounted; leaving " << dir_ << " in place";
        return;
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string path(const std::string& rel) const { return dir_ + "/" + rel; }

  CliResult cli(std::vector<std::string> args) const {
    if (!args.empty() && args[0] == "mount") add_cache_dir(args);
    return run_program(SLUICE_BINARY, args, dir_);
  }

  // Every `sluice mount` run through cli() goes without the disk cache (--cache-size 0),
  // so that a remount reads from the store as the tests intend, and nothing is written to
  // the default /var/cache/sluice.
  // A test that passes --cache-dir or --cache-size decides itself; with
  // SLUICE_TEST_DISK_CACHE=1 every mount caches in <tmp>/cache.
  void add_cache_dir(std::vector<std::string>& args) const {
    for (const std::string& a : args) {
      if (a == "--cache-dir" || a == "--cache-size") return;
    }
    const char* env = std::getenv("SLUICE_TEST_DISK_CACHE");
    if (env != nullptr && std::string(env) == "1") {
      args.insert(args.end(), {"--cache-dir", path("cache")});
    } else {
      args.insert(args.end(), {"--cache-size", "0"});
    }
  }


  std::string dir_;
};

class MountFixture : public TempDirTest {
 protected:
  static constexpr const char* kVolume = "testvol";

  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/fuse";
    TempDirTest::SetUp();
    if (HasFatalFailure()) return;
    const std::string unique = std::filesystem::path(dir_).filename().string();
    BackendUrl meta = test_meta_url(dir_, unique, MetaUrlOptions());
    ASSERT_FALSE(meta.url.empty()) << meta.error;
    BackendUrl storage = test_storage_url(dir_, unique);
    ASSERT_FALSE(storage.url.empty()) << storage.error;
    meta_url_ = meta.url;
    storage_url_ = storage.url;
    mnt_ = path("mnt");
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0) << std::strerror(errno);
    CliResult f = cli({"format", meta_url_, kVolume, "--storage", storage_url_});
    ASSERT_EQ(f.code, 0) << f.err;
    Mount(MountOptions());
  }

  void TearDown() override {
    for (auto it = extra_mounts_.rbegin(); it != extra_mounts_.rend(); ++it) UnmountAt(*it);
    extra_mounts_.clear();
    Unmount();
    TempDirTest::TearDown();
  }

  // Appended to a sqlite3:// metadata URL (other engines ignore it), e.g. "?sync=normal" where a test makes thousands of
  // metadata changes and need not survive power loss.
  virtual std::string MetaUrlOptions() const { return ""; }

  // Options for the mount made by SetUp (a fixture overrides this, e.g. zero timeouts).
  virtual std::vector<std::string> MountOptions() const { return {}; }

  // Mounts meta_url at `mountpoint` (created if missing) in the background; TearDown
  // unmounts it. For a second mount of this volume or a volume of the test's own.
  void MountAt(const std::string& meta_url, const std::string& mountpoint,
               const std::vector<std::string>& extra = {}) {
    mkdir(mountpoint.c_str(), 0755);
    std::string log = mountpoint + ".log";
    std::vector<std::string> args = {"mount", meta_url, mountpoint, "--log", log};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = cli(args);
    ASSERT_EQ(r.code, 0) << r.err << "\nlog:\n" << read_file(log);
    ASSERT_TRUE(is_mounted(mountpoint));
    extra_mounts_.push_back(mountpoint);
  }

  // Unmounts a mount made by MountAt (sluice umount, else lazily). Safe to call twice.
  void UnmountAt(const std::string& mountpoint) {
    if (!is_mounted(mountpoint)) return;
    CliResult r = cli({"umount", mountpoint});
    EXPECT_EQ(r.code, 0) << r.err;
    if (is_mounted(mountpoint)) umount2(mountpoint.c_str(), MNT_DETACH);
    EXPECT_FALSE(is_mounted(mountpoint));
  }

  // Mounts in the background mode at mnt_; extra options are appended.
  void Mount(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"mount", meta_url_, mnt_, "--log", path("sluice.log")};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = cli(args);
    ASSERT_EQ(r.code, 0) << r.err << "\nlog:\n" << read_file(path("sluice.log"));
    ASSERT_TRUE(is_mounted(mnt_));
  }

  // sluice umount; if the mount is still there, a lazy unmount. Safe to call twice.
  void Unmount() {
    if (mnt_.empty() || !is_mounted(mnt_)) return;
    CliResult r = cli({"umount", mnt_});
    EXPECT_EQ(r.code, 0) << r.err;
    if (is_mounted(mnt_)) umount2(mnt_.c_str(), MNT_DETACH);
    EXPECT_FALSE(is_mounted(mnt_));
  }

  // Whether the volume's object store holds `key` (asked through the store itself, so it
  // works on every backend).
  bool object_exists(const std::string& key) const {
    auto store = object::open_store(storage_url_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return false;
    auto info = (*store)->head(key);
    EXPECT_TRUE(info.ok() || info.status().code() == sluice::Code::kNotFound)
        << info.status().ToString();
    return info.ok();
  }

  std::string meta_url_, storage_url_, mnt_;
  std::vector<std::string> extra_mounts_;  // by MountAt, unmounted in TearDown
};

}  // namespace sluice::test
