// DiskCache: block files with a verifying trailer, per-directory LRU indexes, eviction by
// capacity and free space, and the background scan that rebuilds the index. See
// disk_cache.h for the file format and the failure rules.
#include "cache/disk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <tuple>

#include "common/clock.h"
#include "common/encoding.h"
#include "common/file_io.h"
#include "common/hash.h"
#include "common/logging.h"

namespace sluice::cache {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kMagic = 0x534c4342;  // "SLCB"
constexpr size_t kFooter = 4 + 8 + 8 + 4;  // key_len, data_len, checksum, magic

// Whether `tail`, the last key.size() + kFooter bytes of a cache file of `size` bytes,
// frames key's data: the trailer names key, the data's length that fills the rest of the
// file, and the magic. The data's length and checksum in *len and *sum.
bool framed(std::string_view tail, const std::string& key, uint64_t size, uint64_t* len,
            uint64_t* sum) {
  if (tail.size() != key.size() + kFooter || size < tail.size()) return false;
  Decoder f(tail.substr(key.size()));
  const uint32_t key_len = f.get_u32();
  *len = f.get_u64();
  *sum = f.get_u64();
  const uint32_t magic = f.get_u32();
  return magic == kMagic && key_len == key.size() && *len == size - tail.size() &&
         tail.substr(0, key.size()) == key;
}

// Whether `file` (a cache file's whole contents) frames key's data and the data matches
// its checksum; the data's length in *data_len.
bool verified(std::string_view file, const std::string& key, uint64_t* data_len) {
  const size_t tail_len = key.size() + kFooter;
  uint64_t len = 0, sum = 0;
  if (file.size() < tail_len ||
      !framed(file.substr(file.size() - tail_len), key, file.size(), &len, &sum) ||
      checksum64(file.substr(0, len)) != sum) {
    return false;
  }
  *data_len = len;
  return true;
}

// verified() for the open file fd of `size` bytes, read in pieces through a small
// per-thread buffer: no block-sized buffer to allocate, zero and copy into. A read error
// fails the check.
// With hash false, only the framing is checked (a file remembered as verified).
bool verified_in_pieces(int fd, uint64_t size, const std::string& key, uint64_t* data_len,
                        bool hash = true) {
  std::string tail(key.size() + kFooter, '\0');
  uint64_t len = 0, sum = 0;
  if (size < tail.size() || !pread_full(fd, tail.data(), tail.size(), size - tail.size()) ||
      !framed(tail, key, size, &len, &sum)) {
    return false;
  }
  if (!hash) {
    *data_len = len;
    return true;
  }
  constexpr size_t kPiece = 256 << 10;
  thread_local std::unique_ptr<char[]> buf(new char[kPiece]);
  Checksum64 c;
  for (uint64_t at = 0; at < len;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kPiece, len - at));
    if (!pread_full(fd, buf.get(), n, at)) return false;
    c.update(std::string_view(buf.get(), n));
    at += n;
  }
  if (c.value() != sum) return false;
  *data_len = len;
  return true;
}

constexpr int64_t kLogEveryNs = 10'000'000'000;
constexpr const char* kTmpPrefix = ".tmp-";

// The record of the files a mount trusted, written when it closes cleanly (see the header):
// "SLTR", u32 version, u64 count, then per file u32 key length, key, u64 inode, u64 size,
// i64 mtime and ctime (ns); then the checksum64 of all of that. Big-endian (encoding.h).
constexpr const char* kTrustFile = ".trusted";
constexpr uint32_t kTrustVersion = 1;
// The most a record may hold: a mount writes at most this much (the files past it are
// verified on their first read, as after a crash) and reads no larger file, so that a
// file planted there cannot make a mount allocate without bound. 64 MiB is about 800,000
// files of 4 MiB blocks with keys of 40 bytes: 3 TiB of cache.
constexpr size_t kMaxTrustRecord = 64 << 20;

FileStamp stamp_of(const struct stat& st) {
  return {uint64_t(st.st_ino), uint64_t(st.st_size),
          int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
          int64_t(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec};
}

std::string encode_trust(const std::vector<std::pair<std::string, FileStamp>>& files) {
  std::string out = "SLTR";
  put_u32(out, kTrustVersion);
  put_u64(out, files.size());
  for (const auto& [key, s] : files) {
    put_u32(out, static_cast<uint32_t>(key.size()));
    out += key;
    put_u64(out, s.ino);
    put_u64(out, s.size);
    put_i64(out, s.mtime_ns);
    put_i64(out, s.ctime_ns);
  }
  put_u64(out, checksum64(out));
  return out;
}

// nullopt for a record that is damaged or of another version (then nothing is remembered).
std::optional<std::unordered_map<std::string, FileStamp>> decode_trust(std::string_view rec) {
  if (rec.size() < 4 + 4 + 8 + 8 || rec.substr(0, 4) != "SLTR") return std::nullopt;
  const std::string_view body = rec.substr(0, rec.size() - 8);
  if (Decoder(rec.substr(body.size())).get_u64() != checksum64(body)) return std::nullopt;
  Decoder d(body.substr(4));
  if (d.get_u32() != kTrustVersion) return std::nullopt;
  const uint64_t n = d.get_u64();
  std::unordered_map<std::string, FileStamp> out;
  for (uint64_t i = 0; i < n && d.ok(); i++) {
    std::string key(d.get_bytes(d.get_u32()));
    FileStamp s;
    s.ino = d.get_u64();
    s.size = d.get_u64();
    s.mtime_ns = d.get_i64();
    s.ctime_ns = d.get_i64();
    out.emplace(std::move(key), s);
  }
  if (!d.ok() || d.remaining() != 0) return std::nullopt;
  return out;
}

// Keys contain '/': escape it, '%' and a leading '.', so a key is one file name that can
// be mapped back, and never looks like a temporary file.
std::string escape(const std::string& key) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < key.size(); i++) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c == '/' || c == '%' || (c == '.' && i == 0) || c < 0x20) {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::optional<std::string> unescape(const std::string& name) {
  std::string out;
  for (size_t i = 0; i < name.size(); i++) {
    if (name[i] != '%') {
      out += name[i];
      continue;
    }
    if (i + 2 >= name.size()) return std::nullopt;
    unsigned v = 0;
    for (int k = 1; k <= 2; k++) {
      const char h = name[i + k];
      v <<= 4;
      if (h >= '0' && h <= '9') {
        v |= unsigned(h - '0');
      } else if (h >= 'A' && h <= 'F') {
        v |= unsigned(h - 'A' + 10);
      } else {
        return std::nullopt;
      }
    }
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

std::string footer(const std::string& key, std::string_view data, std::optional<uint64_t> sum) {
  std::string t = key;
  put_u32(t, static_cast<uint32_t>(key.size()));
  put_u64(t, data.size());
  put_u64(t, sum ? *sum : checksum64(data));
  put_u32(t, kMagic);
  return t;
}

bool write_all(int fd, std::string_view a, std::string_view b) {
  iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
  size_t total = a.size() + b.size(), done = 0;
  while (done < total) {
    iovec v[2];
    int n = 0;
    size_t skip = done;
    for (auto& x : iov) {
      if (skip >= x.iov_len) {
        skip -= x.iov_len;
        continue;
      }
      v[n++] = {static_cast<char*>(x.iov_base) + skip, x.iov_len - skip};
      skip = 0;
    }
    ssize_t w = writev(fd, v, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
  }
  return true;
}

// Writes a then b to fd, opened with O_DIRECT (pwrite_direct), and truncates the file to
// their size.
bool write_direct(int fd, std::string_view a, std::string_view b) {
  return pwrite_direct(fd, {a, b}, 0) &&
         ftruncate(fd, static_cast<off_t>(a.size() + b.size())) == 0;
}

}  // namespace

CacheFile::~CacheFile() { ::close(fd); }

Result<std::unique_ptr<DiskCache>> DiskCache::open(DiskCacheOptions opts) {
  if (opts.dirs.empty()) return Status(Code::kInvalid, "disk cache: no directory");
  std::unique_ptr<DiskCache> c(new DiskCache(std::move(opts)));
  size_t usable = 0;
  for (Dir& d : c->dirs_) {
    std::error_code ec;
    fs::create_directories(d.path, ec);
    if (!ec && access(d.path.c_str(), W_OK | X_OK) == 0) {
      usable++;
    } else {
      LOG_WARN("disk cache: directory {} is not usable: {}", d.path,
               ec ? ec.message() : std::strerror(errno));
    }
  }
  if (usable == 0) {
    return Status(Code::kIO, "disk cache: no usable directory among " + c->dirs_[0].path +
                                 (c->dirs_.size() > 1 ? " ..." : ""));
  }
  for (Dir& d : c->dirs_) c->recall_trusted(d);
  DiskCache* self = c.get();
  c->scanner_ = std::thread([self] { self->scan(); });
  return c;
}

DiskCache::DiskCache(DiskCacheOptions opts) : opts_(std::move(opts)) {
  direct_ = opts_.direct_io;
  dirs_.resize(opts_.dirs.size());
  for (size_t i = 0; i < dirs_.size(); i++) {
    dirs_[i].path = opts_.dirs[i];
    dirs_[i].capacity = opts_.capacity / dirs_.size();
  }
}

DiskCache::~DiskCache() {
  stopping_ = true;
  if (scanner_.joinable()) scanner_.join();
  for (Dir& d : dirs_) record_trusted(d);
}

void DiskCache::recall_trusted(Dir& d) {
  const std::string path = d.path + "/" + kTrustFile;
  // O_NONBLOCK: something else planted under that name (a FIFO) must not hang the mount.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;  // none: a first start, or the last one did not close cleanly
  std::string rec;
  struct stat st {};
  const bool stated = fstat(fd, &st) == 0;
  const bool oversized = stated && (!S_ISREG(st.st_mode) || uint64_t(st.st_size) > kMaxTrustRecord);
  if (oversized) {
    LOG_WARN(
        "disk cache: ignoring {}: not a record of at most {} bytes; every file will be "
        "verified",
        path, kMaxTrustRecord);
  } else if (stated) {
    rec.resize(static_cast<size_t>(st.st_size));
    if (!pread_full(fd, rec.data(), rec.size(), 0)) rec.clear();
  }
  ::close(fd);
  ::unlink(path.c_str());  // taken: a crash of this mount leaves no stale record behind
  if (oversized) return;
  auto files = decode_trust(rec);
  if (!files) {
    LOG_WARN("disk cache: ignoring {}: it is damaged; every file will be verified", path);
    return;
  }
  LOG_INFO("disk cache: {} files in {} were verified by the last mount, which closed cleanly",
           files->size(), d.path);
  std::lock_guard lk(mu_);
  d.remembered = std::move(*files);
}

void DiskCache::record_trusted(Dir& d) {
  std::vector<std::string> keys;
  {
    std::lock_guard lk(mu_);
    for (const auto& [key, e] : d.index) {
      if (e.trusted) keys.push_back(key);
    }
    // Remembered files not checked in this mount stay remembered: still unchanged, or not.
    for (const auto& [key, s] : d.remembered) {
      if (d.index.count(key) > 0) keys.push_back(key);
    }
  }
  const size_t di = static_cast<size_t>(&d - dirs_.data());
  std::vector<std::pair<std::string, FileStamp>> files;
  size_t bytes = 4 + 4 + 8 + 8;  // the record's size so far (encode_trust)
  for (auto& key : keys) {
    bytes += 4 + key.size() + 4 * 8;
    if (bytes > kMaxTrustRecord) break;  // the rest are verified again, as after a crash
    struct stat st {};
    if (::stat(file_path(di, key).c_str(), &st) != 0) continue;
    FileStamp s = stamp_of(st);
    {
      std::lock_guard lk(mu_);
      auto r = d.remembered.find(key);
      // A remembered file whose stamp changed since is not trusted any more.
      if (r != d.remembered.end() && !(r->second == s)) continue;
    }
    files.emplace_back(std::move(key), s);
  }
  if (files.empty()) return;
  // The files written without fsync reach the disk before the record says they are good.
  const int dfd = ::open(d.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  const bool synced = syncfs(dfd) == 0;
  ::close(dfd);
  if (!synced) return;
  const std::string path = d.path + "/" + kTrustFile;
  const std::string tmp = path + kTmpPrefix + std::to_string(getpid());
  const std::string rec = encode_trust(files);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const bool ok = write_all(fd, rec, {}) && fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    LOG_WARN(
        "disk cache: could not record the verified files in {}; the next mount "
        "verifies them again",
        path);
    return;
  }
  LOG_INFO("disk cache: recorded {} verified files in {}", files.size(), path);
}

void DiskCache::wait_scan() {
  while (!scan_done_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

size_t DiskCache::dir_of(const std::string& key) const {
  // Rendezvous hashing: the directory whose (dir, key) hash is highest.
  size_t best = 0;
  uint64_t best_h = 0;
  for (size_t i = 0; i < dirs_.size(); i++) {
    uint64_t h = checksum64(dirs_[i].path + '\0' + key);
    if (i == 0 || h > best_h) {
      best = i;
      best_h = h;
    }
  }
  return best;
}

std::string DiskCache::file_path(size_t d, const std::string& key) const {
  char sub[4];
  std::snprintf(sub, sizeof sub, "%02x", static_cast<unsigned>(checksum64(key) & 0xff));
  return dirs_[d].path + "/" + sub + "/" + escape(key);
}

std::string DiskCache::path_of(const std::string& key) const { return file_path(dir_of(key), key); }

Result<FsSpace> DiskCache::space(const std::string& dir) const {
  if (opts_.statfs) return opts_.statfs(dir);
  struct statvfs sv {};
  if (statvfs(dir.c_str(), &sv) != 0) {
    return Status(Code::kIO, "statvfs " + dir + ": " + std::strerror(errno));
  }
  return FsSpace{uint64_t(sv.f_blocks) * sv.f_frsize, uint64_t(sv.f_bavail) * sv.f_frsize};
}

void DiskCache::log_event(LogKind kind, const std::string& msg) {
  uint64_t suppressed = 0;
  {
    std::lock_guard lk(log_mu_);
    const int64_t now = mono_ns();
    if (last_log_[kind] != 0 && now - last_log_[kind] < kLogEveryNs) {
      suppressed_[kind]++;
      return;
    }
    last_log_[kind] = now;
    suppressed = std::exchange(suppressed_[kind], 0);
  }
  if (suppressed > 0) {
    LOG_WARN("disk cache: {} ({} similar events not logged)", msg, suppressed);
  } else {
    LOG_WARN("disk cache: {}", msg);
  }
}

void DiskCache::insert_locked(Dir& d, const std::string& key, uint64_t size) {
  unindex_locked(d, key);
  d.lru.push_front(key);
  d.index.emplace(key, Entry{size, d.lru.begin()});
  d.bytes += size;
  stats_.bytes += size;
  stats_.blocks++;
}

void DiskCache::trust_locked(Dir& d, const std::string& key) {
  auto it = d.index.find(key);
  if (it != d.index.end()) it->second.trusted = true;
  d.remembered.erase(key);  // trusted now, on this mount's own grounds
}

bool DiskCache::take_remembered_locked(Dir& d, const std::string& key, const struct stat& st) {
  auto r = d.remembered.find(key);
  if (r == d.remembered.end()) return false;
  const bool same = r->second == stamp_of(st);
  d.remembered.erase(r);
  return same;
}

void DiskCache::remove_locked(Dir& d, const std::string& key) {
  d.remembered.erase(key);  // its file goes, or is replaced
  unindex_locked(d, key);
}

void DiskCache::unindex_locked(Dir& d, const std::string& key) {
  auto it = d.index.find(key);
  if (it == d.index.end()) return;
  d.bytes -= it->second.size;
  stats_.bytes -= it->second.size;
  stats_.blocks--;
  d.lru.erase(it->second.lru_pos);
  d.index.erase(it);
}

bool DiskCache::make_room_locked(Dir& d, uint64_t incoming, std::vector<std::string>* doomed) {
  auto evict_one = [&] {
    const std::string key = d.lru.back();
    doomed->push_back(key);
    const uint64_t size = d.index.at(key).size;
    remove_locked(d, key);
    stats_.evictions++;
    return size;
  };
  while (d.bytes + incoming > d.capacity && !d.lru.empty()) evict_one();
  if (d.bytes + incoming > d.capacity) return false;
  if (opts_.free_ratio <= 0 && !d.low_space) return true;  // low_space: after an ENOSPC

  const int64_t now = mono_ns();
  if (d.last_space_check == 0 || now - d.last_space_check >= opts_.space_check_interval_ns) {
    d.last_space_check = now;
    auto sp = space(d.path);
    if (!sp.ok()) return true;  // the write itself will tell whether the dir works
    const auto keep = static_cast<uint64_t>(opts_.free_ratio * double(sp->total));
    uint64_t avail = sp->avail;
    // Free space counts the files evicted now, whose unlinks come after this returns.
    while (avail < keep + incoming && !d.lru.empty()) avail += evict_one();
    d.low_space = avail < keep + incoming;
  }
  return !d.low_space;
}

std::optional<std::string> DiskCache::get(const std::string& key) {
  const size_t di = dir_of(key);
  Dir& d = dirs_[di];
  bool indexed;
  {
    std::lock_guard lk(mu_);
    auto it = d.index.find(key);
    indexed = it != d.index.end();
    if (indexed) d.lru.splice(d.lru.begin(), d.lru, it->second.lru_pos);
    if (!indexed && scan_done_.load()) {
      stats_.misses++;
      return std::nullopt;
    }
  }
  const std::string path = file_path(di, key);
  auto miss = [&](bool drop) -> std::optional<std::string> {
    std::lock_guard lk(mu_);
    if (drop) remove_locked(d, key);
    stats_.misses++;
    return std::nullopt;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (indexed) {
      struct stat st {};
      if (::stat(d.path.c_str(), &st) != 0) {
        {
          std::lock_guard lk(mu_);
          stats_.dir_errors++;
        }
        log_event(kLogDir, "directory " + d.path + " is gone: " + std::strerror(errno));
      } else if (err != ENOENT) {
        log_event(kLogDir, "cannot open " + path + ": " + std::strerror(err));
      }
    }
    return miss(indexed);
  }
  struct stat st {};
  std::string buf;
  bool read_ok = fstat(fd, &st) == 0 && st.st_size >= static_cast<off_t>(kFooter);
  if (read_ok) {
    buf.resize(static_cast<size_t>(st.st_size));
    read_ok = pread_full(fd, buf.data(), buf.size(), 0);
  }
  ::close(fd);
  uint64_t data_len = 0;
  const bool valid = read_ok && verified(buf, key, &data_len);
  if (valid) buf.resize(data_len);
  if (!valid) {
    ::unlink(path.c_str());
    {
      std::lock_guard lk(mu_);
      stats_.corrupt++;
    }
    log_event(kLogCorrupt, "removed " + path + ": it failed verification");
    return miss(true);
  }
  std::lock_guard lk(mu_);
  if (!indexed) insert_locked(d, key, static_cast<uint64_t>(st.st_size));
  trust_locked(d, key);
  stats_.hits++;
  stats_.hit_bytes += buf.size();
  return buf;
}

FileBlock DiskCache::open_file(const std::string& key) {
  if (opts_.verify == CacheVerify::kFull) return nullptr;
  const size_t di = dir_of(key);
  Dir& d = dirs_[di];
  uint64_t size;
  bool trusted;
  {
    std::lock_guard lk(mu_);
    auto it = d.index.find(key);
    if (it == d.index.end()) return nullptr;
    size = it->second.size;
    trusted = it->second.trusted;
    if (!trusted && opts_.verify == CacheVerify::kOnce && d.remembered.count(key) == 0) {
      return nullptr;
    }
  }
  if (size < key.size() + kFooter) return nullptr;
  const int fd = ::open(file_path(di, key).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;  // get() tells why, and drops the entry
  const uint64_t data_len = size - key.size() - kFooter;
  auto file = std::make_shared<const CacheFile>(fd, data_len);
  // A file of another size than indexed was replaced or cut behind the cache's back.
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != size) return nullptr;
  bool remembered = false;  // kOnce, untrusted: the last clean mount trusted it, unchanged
  if (!trusted && opts_.verify == CacheVerify::kOnce) {
    std::lock_guard lk(mu_);
    remembered = take_remembered_locked(d, key, st);
    // Changed since, or taken by a check meanwhile: verify_file decides.
    if (!remembered) return nullptr;
  }
  if (!trusted) {  // kNone, or remembered: the trailer must frame this key's data
    std::string tail(key.size() + kFooter, '\0');
    uint64_t len = 0, sum = 0;  // the checksum is not checked
    if (!pread_full(fd, tail.data(), tail.size(), data_len) ||
        !framed(tail, key, size, &len, &sum)) {
      return nullptr;
    }
  }
  std::lock_guard lk(mu_);
  auto it = d.index.find(key);
  if (it != d.index.end()) {  // else evicted meanwhile: the open file still serves this read
    d.lru.splice(d.lru.begin(), d.lru, it->second.lru_pos);
    it->second.trusted = true;
  }
  if (remembered) {  // counted as verify_file counts a check
    stats_.remembered++;
    stats_.hits++;
    stats_.hit_bytes += data_len;
  }
  stats_.file_opens++;
  return file;
}

bool DiskCache::verify_file(const std::string& key) {
  const size_t di = dir_of(key);
  Dir& d = dirs_[di];
  auto trusted_locked = [&] {
    auto it = d.index.find(key);
    return it != d.index.end() && it->second.trusted;
  };
  const std::string path = file_path(di, key);
  {
    std::unique_lock lk(mu_);
    if (d.index.find(key) == d.index.end()) {
      // Until the scan after a restart has indexed the directories, a block's file may be
      // there unindexed: it is indexed here, as get() does, and checked where it lies
      // (else a loader's first reads after a remount would lift their blocks into memory).
      if (scan_done_.load()) return false;
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
      insert_locked(d, key, static_cast<uint64_t>(st.st_size));
    }
    if (verifying_.count(key) > 0) {  // another caller is checking it: take its verdict
      verified_cv_.wait(lk, [&] { return verifying_.count(key) == 0; });
      return trusted_locked();
    }
    if (trusted_locked()) return true;
    verifying_.insert(key);
  }
  auto done = [&] {
    {
      std::lock_guard lk(mu_);
      verifying_.erase(key);
    }
    verified_cv_.notify_all();
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // Unopenable: get() says why, and drops the entry where it should.
    const bool ok = get(key).has_value();
    done();
    return ok;
  }
  struct stat st {};
  uint64_t data_len = 0;
  const bool stat_ok = fstat(fd, &st) == 0;
  bool remembered;  // trusted by the last clean mount, and unchanged since
  {
    std::lock_guard lk(mu_);
    remembered = stat_ok && take_remembered_locked(d, key, st);
  }
  const bool valid = stat_ok && verified_in_pieces(fd, static_cast<uint64_t>(st.st_size), key,
                                                   &data_len, !remembered);
  ::close(fd);
  if (!valid) {
    ::unlink(path.c_str());
    {
      std::lock_guard lk(mu_);
      remove_locked(d, key);
      stats_.corrupt++;
      stats_.misses++;
    }
    done();
    log_event(kLogCorrupt, "removed " + path + ": it failed verification");
    return false;
  }
  {
    std::lock_guard lk(mu_);
    trust_locked(d, key);
    stats_.hits++;
    stats_.hit_bytes += data_len;
    if (remembered) stats_.remembered++;
  }
  done();
  return true;
}

FileBlock DiskCache::ready_file(const std::string& key) {
  if (opts_.verify == CacheVerify::kFull) return nullptr;
  FileBlock f = open_file(key);
  if (!f) {
    // Not verified yet: verified now (through the page cache, which keeps its pages).
    if (!verify_file(key)) return nullptr;
    f = open_file(key);
    if (!f) return nullptr;
  }
  posix_fadvise(f->fd, 0, static_cast<off_t>(f->len), POSIX_FADV_WILLNEED);
  return f;
}

bool DiskCache::contains(const std::string& key) {
  const size_t di = dir_of(key);
  {
    std::lock_guard lk(mu_);
    if (dirs_[di].index.count(key) > 0) return true;
    if (scan_done_.load()) return false;
  }
  return ::access(file_path(di, key).c_str(), F_OK) == 0;
}

bool DiskCache::put(const std::string& key, std::string_view data, std::optional<uint64_t> sum) {
  const size_t di = dir_of(key);
  Dir& d = dirs_[di];
  const std::string tail = footer(key, data, sum);
  const uint64_t size = data.size() + tail.size();
  if (!make_room_for(di, key, size)) return false;

  const std::string path = file_path(di, key);
  const std::string sub = path.substr(0, path.rfind('/'));
  const std::string tmp = temp_path(sub);
  const bool direct = direct_.load(std::memory_order_relaxed);
  int err = write_file(d, sub, tmp, path, data, tail, direct);
  if (direct && err == EINVAL) {
    // The file system takes no O_DIRECT (tmpfs before 6.6, some FUSE or network file
    // systems), or not with 4 KiB alignment: buffered writes from now on.
    if (direct_.exchange(false)) {
      LOG_INFO("disk cache: {} refuses direct I/O; writing through the page cache", d.path);
    }
    err = write_file(d, sub, tmp, path, data, tail, false);
  }
  if (err != 0) {
    {
      std::lock_guard lk(mu_);
      stats_.write_errors++;
      if (err == ENOSPC) {
        d.low_space = true;
        d.last_space_check = 0;  // the next put checks the space again, evicting first
      }
    }
    log_event(kLogWrite, "writing " + path + ": " + std::strerror(err));
    return false;
  }
  std::lock_guard lk(mu_);
  insert_locked(d, key, size);
  trust_locked(d, key);
  if (direct) stats_.direct_writes++;
  stats_.written_blocks++;
  stats_.written_bytes += data.size();
  return true;
}

int DiskCache::write_file(Dir& d, const std::string& sub, const std::string& tmp,
                          const std::string& path, std::string_view data, std::string_view tail,
                          bool direct) {
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (direct ? O_DIRECT : 0);
  int fd = ::open(tmp.c_str(), flags, 0644);
  if (fd < 0 && errno == ENOENT) {
    std::error_code ec;
    if (!fs::exists(d.path, ec)) {
      {
        std::lock_guard lk(mu_);
        stats_.dir_errors++;
      }
      log_event(kLogDir, "directory " + d.path + " vanished; recreating it");
    }
    fs::create_directories(sub, ec);
    fd = ::open(tmp.c_str(), flags, 0644);
  }
  if (fd < 0) return errno;
  int err = 0;
  const bool ok = direct ? write_direct(fd, data, tail) : write_all(fd, data, tail);
  if (!ok) err = errno != 0 ? errno : EIO;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) ::unlink(tmp.c_str());
  return err;
}

void DiskCache::erase(const std::string& key) {
  const size_t di = dir_of(key);
  {
    std::lock_guard lk(mu_);
    remove_locked(dirs_[di], key);
  }
  ::unlink(file_path(di, key).c_str());
}

bool DiskCache::make_room_for(size_t di, const std::string& key, uint64_t size) {
  Dir& d = dirs_[di];
  std::vector<std::string> doomed;
  bool room;
  {
    std::lock_guard lk(mu_);
    remove_locked(d, key);  // a replaced file does not count against the room
    room = make_room_locked(d, size, &doomed);
    if (!room) stats_.skipped_full++;
  }
  for (const std::string& k : doomed) ::unlink(file_path(di, k).c_str());
  if (!room) {
    log_event(kLogFull, "directory " + d.path +
                            " is too full (capacity or --free-space-ratio); "
                            "not caching new blocks there");
  }
  return room;
}

std::string DiskCache::temp_path(const std::string& sub) {
  return sub + "/" + kTmpPrefix + std::to_string(getpid()) + "-" +
         std::to_string(tmp_seq_.fetch_add(1));
}

Result<std::string> DiskCache::raw_begin(const std::string& key, uint64_t size) {
  const size_t di = dir_of(key);
  if (!make_room_for(di, key, size)) {
    return Status(Code::kNoSpace, "directory " + dirs_[di].path + " has no room for " + key);
  }
  const std::string path = file_path(di, key);
  const std::string sub = path.substr(0, path.rfind('/'));
  std::error_code ec;
  fs::create_directories(sub, ec);
  return temp_path(sub);
}

bool DiskCache::raw_commit(const std::string& key, const std::string& tmp, uint64_t size) {
  const size_t di = dir_of(key);
  const std::string path = file_path(di, key);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    {
      std::lock_guard lk(mu_);
      stats_.write_errors++;
    }
    log_event(kLogWrite, "renaming a copy into " + path + ": " + std::strerror(err));
    return false;
  }
  std::lock_guard lk(mu_);
  insert_locked(dirs_[di], key, size);
  stats_.written_blocks++;
  stats_.written_bytes += size;
  return true;
}

int DiskCache::raw_open(const std::string& key, uint64_t size) {
  const size_t di = dir_of(key);
  Dir& d = dirs_[di];
  const std::string path = file_path(di, key);
  {
    std::lock_guard lk(mu_);
    auto it = d.index.find(key);
    if (it == d.index.end() && scan_done_.load()) return -1;
    if (it != d.index.end() && it->second.size != size) return -1;
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || uint64_t(st.st_size) != size) {
    ::close(fd);
    return -1;
  }
  std::lock_guard lk(mu_);
  auto it = d.index.find(key);
  if (it == d.index.end()) {
    insert_locked(d, key, size);  // found before the startup scan got to it
  } else {
    d.lru.splice(d.lru.begin(), d.lru, it->second.lru_pos);
  }
  return fd;
}

DiskCacheStats DiskCache::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void DiskCache::scan() {
  if (opts_.before_scan) opts_.before_scan();
  // (mtime, dir, key, size); files of a key that now maps to another dir are removed.
  std::vector<std::tuple<int64_t, size_t, std::string, uint64_t>> found;
  for (size_t di = 0; di < dirs_.size() && !stopping_; di++) {
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dirs_[di].path, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (stopping_) break;
      if (it.depth() != 1 || !it->is_regular_file(ec)) continue;
      const std::string name = it->path().filename().string();
      auto key = unescape(name);
      // Temporaries of this process are files being written now (raw copies take seconds).
      if (name.rfind(kTmpPrefix + std::to_string(getpid()) + "-", 0) == 0) continue;
      if (name.rfind(kTmpPrefix, 0) == 0 || !key || dir_of(*key) != di) {
        fs::remove(it->path(), ec);
        ec.clear();
        continue;
      }
      struct stat st {};
      if (::stat(it->path().c_str(), &st) != 0) continue;
      found.emplace_back(int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec, di,
                         std::move(*key), uint64_t(st.st_size));
    }
  }
  // Newest first, each appended at the LRU tail: files touched since the mount started
  // (already at the front) stay more recent than anything found by the scan.
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return std::get<0>(a) > std::get<0>(b);
  });
  std::vector<std::pair<size_t, std::string>> doomed;
  {
    std::lock_guard lk(mu_);
    for (auto& [mtime, di, key, size] : found) {
      Dir& d = dirs_[di];
      if (d.index.count(key) > 0) continue;
      d.lru.push_back(key);
      d.index.emplace(key, Entry{size, std::prev(d.lru.end())});
      d.bytes += size;
      stats_.bytes += size;
      stats_.blocks++;
    }
    for (size_t di = 0; di < dirs_.size(); di++) {
      std::vector<std::string> keys;
      make_room_locked(dirs_[di], 0, &keys);
      for (auto& k : keys) doomed.emplace_back(di, std::move(k));
    }
    scan_done_ = true;
  }
  for (const auto& [di, k] : doomed) ::unlink(file_path(di, k).c_str());
  LOG_INFO("disk cache: found {} cached blocks in {} directories", found.size(), dirs_.size());
}

}  // namespace sluice::cache
