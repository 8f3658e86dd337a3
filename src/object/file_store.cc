// file://DIR store: each object is a regular file DIR/<key>.
//
// put writes `.<base>.tmp.<16 hex digits>` beside the target, fsyncs it, renames it into
// place and fsyncs the directory (`?fsync=false` skips both syncs, for tests and scratch
// volumes), so an object is whole or absent even across a crash. Leftover temp files are
// never listed, and keys that look like temp files are rejected.
//
// del removes the parent directories it left empty, unless a put of this process is busy
// creating its temp file (dirs_mu_). A put that still finds its directory gone (removed
// by another process between mkdir and create) creates it again, a bounded number of times.
//
// Limitation of the layout: a key cannot also be a directory of other keys ("a" and
// "a/b"); the second put fails with kNotDir or kIsDir.
#include "object/file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <system_error>

#include "common/file_io.h"

namespace sluice::object {

namespace {

constexpr int kPutAttempts = 8;
constexpr std::string_view kTmpMarker = ".tmp.";
constexpr size_t kTmpRandomDigits = 16;
constexpr size_t kTmpMaxBase = 200;

Status errno_status(const char* op, const std::string& path, int err) {
  return Status::FromErrno(
      err, fmt::format("file store: {} '{}': {}", op, path, std::generic_category().message(err)));
}

// Closes the descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports the error close() returned (0 if none).
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

// True for names of the form .<base>.tmp.<16 hex digits>.
bool is_temp_name(std::string_view name) {
  if (name.size() < 2 || name[0] != '.') return false;
  size_t p = name.rfind(kTmpMarker);
  if (p == std::string_view::npos || p < 2) return false;
  std::string_view digits = name.substr(p + kTmpMarker.size());
  return digits.size() == kTmpRandomDigits && std::all_of(digits.begin(), digits.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The base is shortened so that the temp name stays within NAME_MAX.
std::string temp_name(std::string_view base) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format(".{}{}{:016x}", base.substr(0, kTmpMaxBase), kTmpMarker, rng());
}

std::string parent_of(const std::string& path) { return path.substr(0, path.rfind('/')); }

// Creates dir and any missing parents. An existing non-directory is kNotDir.
Status make_dirs(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0) return Status::OK();
  int err = errno;
  if (err == EEXIST) {
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) return errno_status("stat", dir, errno);  // raced a del
    return S_ISDIR(st.st_mode) ? Status::OK() : errno_status("mkdir", dir, ENOTDIR);
  }
  size_t slash = dir.rfind('/');
  if (err != ENOENT || slash == std::string::npos || slash == 0) {
    return errno_status("mkdir", dir, err);
  }
  RETURN_IF_ERROR(make_dirs(dir.substr(0, slash)));
  if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return Status::OK();
  return errno_status("mkdir", dir, errno);
}

Status write_all(int fd, std::string_view data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("write", path, errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status fsync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return errno_status("open directory", dir, errno);
  if (::fsync(fd.get()) != 0) return errno_status("fsync directory", dir, errno);
  return Status::OK();
}

int64_t mtime_ns(const struct stat& st) {
  return int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Reads [off, off+n) of fd into out; shorter if the file ends first.
Status read_at(int fd, const std::string& path, uint64_t off, uint64_t n, std::string& out) {
  out.resize(n);
  const ssize_t done = pread_upto(fd, out.data(), n, off);
  if (done < 0) return errno_status("read", path, errno);
  out.resize(static_cast<size_t>(done));
  return Status::OK();
}

class FileStore : public Store {
 public:
  FileStore(std::string root, bool fsync) : root_(std::move(root)), fsync_(fsync) {}

  Status put(const std::string& key, std::string_view data) override {
    RETURN_IF_ERROR(check_file_key(key));
    const std::string path = path_of(key);
    const std::string dir = parent_of(path);
    const std::string tmp = dir + "/" + temp_name(path.substr(dir.size() + 1));
    int fd;
    std::shared_lock dirs_lock(dirs_mu_);
    for (int attempt = 1;; attempt++) {
      fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd >= 0 || errno != ENOENT || attempt == kPutAttempts) break;
      // kNotFound: a concurrent del removed a parent again; the next attempt recreates it.
      if (Status st = make_dirs(dir); !st.ok() && !st.is(Code::kNotFound)) return st;
    }
    if (fd < 0) return errno_status("create", tmp, errno);
    dirs_lock.unlock();  // the temp file now keeps its directory from being removed
    Fd file(fd);
    Status st = write_all(file.get(), data, tmp);
    if (st.ok() && fsync_ && ::fsync(file.get()) != 0) st = errno_status("fsync", tmp, errno);
    if (int err = file.close(); st.ok() && err != 0) st = errno_status("close", tmp, err);
    if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
      st = errno_status("rename into", path, errno);
    }
    if (!st.ok()) {
      ::unlink(tmp.c_str());
      return st;
    }
    return fsync_ ? fsync_dir(dir) : Status::OK();
  }

  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override {
    return read_object<std::string>(
        key, [&](int fd, const std::string& path, uint64_t size) -> Result<std::string> {
          if (off >= size) return std::string();
          uint64_t n = size - off;
          if (len >= 0) n = std::min(n, static_cast<uint64_t>(len));
          std::string out;
          RETURN_IF_ERROR(read_at(fd, path, off, n, out));
          return out;
        });
  }

  // Reads head and body with one pread each, straight into the two strings.
  Result<SplitObject> get_split(const std::string& key, size_t head_len) override {
    return read_object<SplitObject>(
        key, [&](int fd, const std::string& path, uint64_t size) -> Result<SplitObject> {
          const uint64_t h = std::min<uint64_t>(head_len, size);
          SplitObject out;
          RETURN_IF_ERROR(read_at(fd, path, 0, h, out.head));
          if (out.head.size() == h) RETURN_IF_ERROR(read_at(fd, path, h, size - h, out.body));
          return out;
        });
  }

  Result<ObjectInfo> head(const std::string& key) override {
    RETURN_IF_ERROR(check_file_key(key));
    const std::string path = path_of(key);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return missing_or_error("stat", key, path, errno);
    if (!S_ISREG(st.st_mode)) return not_found(key);
    return ObjectInfo{key, static_cast<uint64_t>(st.st_size), mtime_ns(st)};
  }

  Status del(const std::string& key) override {
    RETURN_IF_ERROR(check_file_key(key));
    const std::string path = path_of(key);
    if (::unlink(path.c_str()) != 0) {
      int err = errno;
      // A directory or a missing path is no object: nothing to delete.
      if (err == ENOENT || err == ENOTDIR || err == EISDIR) return Status::OK();
      return errno_status("unlink", path, err);
    }
    // Best effort: skipped while a put is creating its temp file, and stops at the first
    // directory that is not empty (or not removable).
    std::unique_lock dirs_lock(dirs_mu_, std::try_to_lock);
    if (!dirs_lock.owns_lock()) return Status::OK();
    for (std::string dir = parent_of(path); dir.size() > root_.size(); dir = parent_of(dir)) {
      if (::rmdir(dir.c_str()) != 0) break;
    }
    return Status::OK();
  }

  Result<std::vector<ObjectInfo>> list(const std::string& prefix, const std::string& start_after,
                                       size_t limit) override {
    std::vector<ObjectInfo> out;
    RETURN_IF_ERROR(walk("", prefix, start_after, limit, out));
    return out;
  }

  std::string describe() const override { return "file://" + root_; }

 private:
  // Opens key's regular file and returns read(fd, path, size).
  template <class T, class Read>
  Result<T> read_object(const std::string& key, Read read) {
    RETURN_IF_ERROR(check_file_key(key));
    const std::string path = path_of(key);
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return missing_or_error("open", key, path, errno);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return errno_status("stat", path, errno);
    if (!S_ISREG(st.st_mode)) return not_found(key);
    return read(fd.get(), path, static_cast<uint64_t>(st.st_size));
  }

  std::string path_of(const std::string& key) const { return root_ + "/" + key; }

  Status check_file_key(const std::string& key) const {
    RETURN_IF_ERROR(check_key(key));
    if (is_temp_name(key.substr(key.rfind('/') + 1))) {
      return Status(Code::kInvalid,
                    "invalid object key '" + key + "': the name of a file store temp file");
    }
    return Status::OK();
  }

  Status not_found(const std::string& key) const {
    return Status(Code::kNotFound, "object '" + key + "' not found in " + describe());
  }

  Status missing_or_error(const char* op, const std::string& key, const std::string& path,
                          int err) const {
    if (err == ENOENT || err == ENOTDIR) return not_found(key);
    return errno_status(op, path, err);
  }

  // Appends the objects under rel_dir ("" or "a/b/") in ascending key order. Entries are
  // visited sorted by name, with '/' appended to directory names, so that a depth-first walk
  // yields keys in byte order. Subtrees outside the prefix or wholly <= start_after are
  // skipped, and the walk stops at limit.
  Status walk(const std::string& rel_dir, const std::string& prefix, const std::string& start_after,
              size_t limit, std::vector<ObjectInfo>& out) const {
    const std::string dir_path = rel_dir.empty() ? root_ : root_ + "/" + rel_dir;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_path.c_str()), ::closedir);
    if (d == nullptr) {
      // Not created yet, or removed by a concurrent del: nothing to list.
      if (errno == ENOENT || errno == ENOTDIR) return Status::OK();
      return errno_status("open directory", dir_path, errno);
    }
    std::vector<std::string> names;  // directories get a trailing '/'
    while (true) {
      errno = 0;
      struct dirent* e = ::readdir(d.get());
      if (e == nullptr) break;
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      unsigned type = e->d_type;
      if (type == DT_UNKNOWN) {
        struct stat st;
        if (::fstatat(::dirfd(d.get()), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
      }
      if (type == DT_DIR) {
        names.push_back(std::string(name) + "/");
      } else if (type == DT_REG && !is_temp_name(name)) {
        names.emplace_back(name);
      }
    }
    if (errno != 0) return errno_status("read directory", dir_path, errno);
    std::sort(names.begin(), names.end());

    for (const std::string& name : names) {
      std::string full = rel_dir + name;
      bool in_prefix = full.starts_with(prefix);
      if (!in_prefix && full > prefix && !prefix.starts_with(full)) break;  // past the prefix
      if (name.back() == '/') {
        if (!in_prefix && !prefix.starts_with(full)) continue;
        if (start_after > full && !start_after.starts_with(full)) continue;
        RETURN_IF_ERROR(walk(full, prefix, start_after, limit, out));
      } else if (in_prefix && full > start_after) {
        struct stat st;
        // A file deleted since readdir is skipped.
        if (::fstatat(::dirfd(d.get()), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        out.push_back(ObjectInfo{full, static_cast<uint64_t>(st.st_size), mtime_ns(st)});
      }
      if (limit != 0 && out.size() >= limit) return Status::OK();
    }
    return Status::OK();
  }

  const std::string root_;
  const bool fsync_;
  // Held shared by a put until its temp file exists, and exclusively by del while it
  // removes emptied directories: within one process a put never loses its directory.
  // Other processes sharing DIR are covered by the put retries alone.
  std::shared_mutex dirs_mu_;
};

Result<bool> parse_fsync(const Url& url) {
  std::string v = url.param("fsync", "true");
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return Status(Code::kInvalid, "file store: fsync must be true or false, not '" + v + "'");
}

}  // namespace

Result<std::shared_ptr<Store>> open_file_store(const Url& url) {
  std::string root = url.body;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root.empty()) {
    return Status(Code::kInvalid, "file store: empty directory in URL (expected file://DIR)");
  }
  ASSIGN_OR_RETURN(bool fsync, parse_fsync(url));
  struct stat st;
  if (::stat(root.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return Status(Code::kNotDir, "file store: '" + root + "' exists and is not a directory");
    }
  } else if (errno != ENOENT) {
    return errno_status("stat", root, errno);
  }
  return std::shared_ptr<Store>(std::make_shared<FileStore>(std::move(root), fsync));
}

}  // namespace sluice::object
