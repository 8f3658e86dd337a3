// DiskCache: the local-disk tier of the block cache.
//
// A block is one file, dir/<2 hex digits of the key's hash>/<escaped key>, holding the raw
// (decoded) block bytes at offset 0 followed by a trailer: the key, then a fixed footer
// (key length, data length, XXH3 checksum of the data, magic). Data at offset 0 lets a
// reader splice straight from the file; the trailer lets a read verify the bytes. A
// file is written to a temporary name and renamed into place, without fsync: a torn or
// damaged file fails verification, is removed and counts as a miss (never as data).
//
// How often a file is verified is DiskCacheOptions::verify: get() always verifies, and
// open_file() hands out the open file for a reader to splice from, unverified, only when
// the option allows (kOnce: after this process verified or wrote the file).
//
// Several directories share the capacity equally; a key's directory is chosen by
// rendezvous hashing over the directories, so adding one moves only the keys it wins.
// Each directory keeps an in-memory LRU index (key -> size). A put evicts least recently
// used files while the directory holds more than its share of the capacity, or while its
// file system has less than free_ratio of its space free (checked with statvfs at most
// every space_check_interval_ns; the function is injectable for tests).
//
// After a restart the index is rebuilt by a background scan of the directories (oldest
// files first in the LRU); until it finishes, a lookup of a key missing from the index
// checks the file directly. What a mount trusted (verified or wrote) is remembered across
// a clean restart: closing, the cache syncs each directory's file system, then records
// its trusted files' stamps (inode, size, mtime, ctime) in DIR/.trusted; opening takes the
// record (reads and removes it), and a remembered file whose stamp is unchanged is trusted
// on its first check without being hashed again. A changed or replaced file has another
// stamp and is verified; after a crash there is no record, and every file is verified. Failures
// never fail a caller: an unwritable or vanished directory, a full disk or a corrupt file makes the
// cache miss or skip the write; the event is counted in the stats and logged at most once per 10 s
// per kind.
//
// Thread safety: every method may be called concurrently. Files are read and written
// without the lock held.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cache/block_cache.h"
#include "common/status.h"

namespace sluice::cache {

struct FsSpace {
  uint64_t total = 0;  // bytes
  uint64_t avail = 0;  // bytes free for unprivileged users
};
using StatFsFn = std::function<Result<FsSpace>(const std::string& dir)>;

struct DiskCacheOptions {
  std::vector<std::string> dirs;  // created if missing
  uint64_t capacity = 100ull << 30;  // bytes over all dirs (split equally)
  double free_ratio = 0.1;           // keep at least this fraction of each file system free
  int64_t space_check_interval_ns = 1'000'000'000;
  StatFsFn statfs;  // empty: statvfs(2)
  // Write files with O_DIRECT (through an aligned buffer, then truncated to size): the
  // kernel does not copy the block into the page cache, which cost a cold read more CPU
  // than anything else, and the block is not cached twice in memory (the FUSE file's pages
  // already hold it). A file system that refuses O_DIRECT (EINVAL) gets buffered writes.
  bool direct_io = true;
  // When open_file() may hand out a file without verifying its checksum (CacheVerify).
  CacheVerify verify = CacheVerify::kOnce;
  // Tests: runs on the scanner thread before it scans (to hold the scan back).
  std::function<void()> before_scan;
};

struct DiskCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t hit_bytes = 0;      // bytes served from disk
  uint64_t written_blocks = 0;
  uint64_t written_bytes = 0;
  uint64_t evictions = 0;      // files removed for capacity or free space
  uint64_t bytes = 0;          // currently cached (file sizes, as indexed)
  uint64_t blocks = 0;
  uint64_t write_errors = 0;   // failed writes (ENOSPC, EIO, a directory gone)
  uint64_t corrupt = 0;        // files that failed verification and were removed
  uint64_t dir_errors = 0;     // a directory missing or unusable (then recreated if possible)
  uint64_t skipped_full = 0;   // writes skipped because the disk stayed too full
  uint64_t direct_writes = 0;  // files written with O_DIRECT
  uint64_t file_opens = 0;     // open_file() calls that returned the file
  uint64_t remembered = 0;     // files trusted unhashed, remembered from a clean restart
};

// What identifies a cache file's contents between a clean close and the next open: a file
// rewritten in place or replaced (a new inode) changes at least one of these.
struct FileStamp {
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

class DiskCache {
 public:
  // Starts the background scan of the existing files. Fails if no directory is usable.
  static Result<std::unique_ptr<DiskCache>> open(DiskCacheOptions opts);
  ~DiskCache();  // stops the scan, then records the trusted files (see above)

  // The verified data of key, or nullopt (a miss: absent, unreadable or corrupt).
  std::optional<std::string> get(const std::string& key);
  // key's file, open for a reader to splice from, unverified: with verify kOnce when this
  // process verified (get) or wrote (put) it, with kNone when its size and trailer are
  // right. nullptr otherwise (then get() reads and verifies it): kFull, not indexed, not
  // verified yet, or its size is not the one indexed. Counts file_opens, refreshes recency.
  FileBlock open_file(const std::string& key);
  // open_file, readying the file first where open_file would refuse it for want of a
  // check (kOnce, not verified yet): it is verified where it lies (verify_file), not
  // copied into a block-sized buffer. Also asks the kernel to read its pages ahead
  // (POSIX_FADV_WILLNEED). For a reader about to take it from the file, or a whole file
  // loaded out of order, ahead of its reader. nullptr with kFull, or for a bad or absent
  // file.
  FileBlock ready_file(const std::string& key);
  // Whether key has a file (not verified, no stats, no recency change).
  bool contains(const std::string& key);
  // Stores data under key, replacing any copy; errors are counted and logged, not
  // returned (a cache write never fails the caller). Returns whether it was stored.
  // sum: data's checksum64 when the caller knows it (LoadSum), else it is computed. A wrong
  // one is caught as corruption when the file is next verified, never read as data.
  bool put(const std::string& key, std::string_view data, std::optional<uint64_t> sum = {});
  void erase(const std::string& key);

  // ---- raw files: whole local copies of FUSE files (vfs/copies.cc) ----
  // A raw file holds a caller's bytes as they are, without a trailer: a whole copy of a
  // file that the kernel reads through FUSE passthrough. It shares the LRU, the capacity and
  // the free-space rule with blocks, is found again by the startup scan, and is never
  // handed out by get, open_file or ready_file (it has no checksum to verify).
  // Makes room for `size` bytes in key's directory and returns a temporary path there for
  // the caller to write (then raw_commit, or unlink it). An error when there is no room.
  Result<std::string> raw_begin(const std::string& key, uint64_t size);
  // Renames the written temporary file into place as key's file, `size` bytes long, and
  // indexes it; false (and tmp removed) when that fails.
  bool raw_commit(const std::string& key, const std::string& tmp, uint64_t size);
  // key's raw file opened read-only, when it exists and is `size` bytes long; -1 otherwise.
  // Refreshes its recency.
  int raw_open(const std::string& key, uint64_t size);

  DiskCacheStats stats() const;
  bool scan_done() const { return scan_done_.load(); }
  void wait_scan();  // tests: blocks until the startup scan is over

  // The path of key's file (tests corrupt and remove files through it).
  std::string path_of(const std::string& key) const;

 private:
  struct Entry {
    uint64_t size;
    std::list<std::string>::iterator lru_pos;
    bool trusted = false;  // verified or written by this process (open_file may skip the check)
  };
  struct Dir {
    std::string path;
    uint64_t capacity = 0;
    uint64_t bytes = 0;
    std::list<std::string> lru;  // front = most recent
    std::unordered_map<std::string, Entry> index;
    int64_t last_space_check = 0;
    bool low_space = false;  // the last check found less than free_ratio free
    // Stamps of the files the last clean close trusted; a key leaves at its first check.
    std::unordered_map<std::string, FileStamp> remembered;
  };
  enum LogKind { kLogWrite, kLogCorrupt, kLogDir, kLogFull, kLogKinds };

  explicit DiskCache(DiskCacheOptions opts);
  size_t dir_of(const std::string& key) const;
  std::string file_path(size_t d, const std::string& key) const;
  void scan();
  // Takes d's record of trusted files into d.remembered (open), and writes it (close).
  void recall_trusted(Dir& d);
  void record_trusted(Dir& d);
  // Index updates; mu_ held.
  void insert_locked(Dir& d, const std::string& key, uint64_t size);
  // Whether the last clean close recorded key with the stamp `st` shows now; key leaves
  // d.remembered either way (one such check per file).
  bool take_remembered_locked(Dir& d, const std::string& key, const struct stat& st);
  void remove_locked(Dir& d, const std::string& key);  // also forgets it was remembered
  void unindex_locked(Dir& d, const std::string& key);
  void trust_locked(Dir& d, const std::string& key);
  // Verifies an indexed key's file as get() does, but read through a small buffer
  // instead of into a block-sized one (measured: a 4 MiB get() spent 1-3 ms zero-filling
  // its buffer alone, on the path of a loader's random entry). A good file is trusted and
  // counted as a hit; a bad one is removed and counted as corrupt. One check at a time
  // per key: a concurrent caller takes the running check's verdict. False for keys not
  // indexed.
  bool verify_file(const std::string& key);
  // Removes key from directory di's index (a replaced file does not count against the
  // room) and evicts until `size` bytes fit; false when they cannot (counted in
  // skipped_full, logged). Unlinks the evicted files.
  bool make_room_for(size_t di, const std::string& key, uint64_t size);
  // A new temporary file name in sub (the startup scan removes other processes' ones).
  std::string temp_path(const std::string& sub);
  // Evicts d's LRU files until `incoming` more bytes fit its capacity and free space.
  // Returns false when they cannot (the disk stays too full).
  bool make_room_locked(Dir& d, uint64_t incoming, std::vector<std::string>* doomed);
  Result<FsSpace> space(const std::string& dir) const;
  // Writes data + tail to a new file at tmp (in sub, made if missing) and renames it to
  // path; 0 or errno.
  int write_file(Dir& d, const std::string& sub, const std::string& tmp, const std::string& path,
                 std::string_view data, std::string_view tail, bool direct);
  // Logs at most once per 10 s per kind; counts the suppressed messages.
  void log_event(LogKind kind, const std::string& msg);

  DiskCacheOptions opts_;
  mutable std::mutex mu_;  // guards dirs_' indexes, stats_ and verifying_
  // Keys verify_file is checking now: a second caller waits for the first's verdict
  // (signalled on verified_cv_) instead of reading the file again.
  std::unordered_set<std::string> verifying_;
  std::condition_variable verified_cv_;
  std::vector<Dir> dirs_;
  DiskCacheStats stats_;
  std::atomic<uint64_t> tmp_seq_{0};
  std::atomic<bool> direct_{false};  // O_DIRECT writes (off once the file system refuses them)
  std::atomic<bool> scan_done_{false};
  std::atomic<bool> stopping_{false};
  std::thread scanner_;
  std::mutex log_mu_;
  int64_t last_log_[kLogKinds] = {};
  uint64_t suppressed_[kLogKinds] = {};
};

}  // namespace sluice::cache
