// cache: block cache tiers. A cached block is keyed by its object key; since blocks are
// immutable, a cached copy is valid forever and needs no invalidation.
//
// MemoryCache is the first tier: an LRU bounded in bytes, with single-flight loading
// (concurrent misses on one key run the loader once and share its result). Later tiers
// (local disk, peer group) implement the same BlockCache interface and compose.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/status.h"

namespace sluice::cache {

using Block = std::shared_ptr<const std::string>;

// A block's bytes at offset 0 of a local file (a disk-cache file), open for a reader to
// splice from instead of copying them (BlockCache::open_file). The fd is closed when the
// last holder lets go; the file may be unlinked (evicted) meanwhile.
struct CacheFile {
  CacheFile(int fd, uint64_t len) : fd(fd), len(len) {}
  ~CacheFile();
  CacheFile(const CacheFile&) = delete;
  CacheFile& operator=(const CacheFile&) = delete;
  const int fd;
  const uint64_t len;  // the block's length
};
using FileBlock = std::shared_ptr<const CacheFile>;

// When a read from the disk tier checks the block's checksum (--verify-cache-checksum):
// kFull on every read (the bytes are read into memory to do so); kOnce the first time this
// process reads a file (or when it wrote it), after which reads use the file as it is
// (BlockCache::open_file: spliced, not copied); kNone never (only the file's framing: its
// size and trailer).
enum class CacheVerify { kFull, kOnce, kNone };
// Loads a block (already verified) from the next tier; called without cache locks held.
using Loader = std::function<Result<std::string>()>;
// Where a loader may leave the checksum64 of the block it loaded when it knows it already
// (the block codec checked the object against it): a disk tier then writes the block
// under it instead of hashing the bytes again. Left empty, the tier hashes them.
using LoadSum = std::optional<uint64_t>;

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;      // loader calls
  uint64_t shared = 0;      // misses that waited for another caller's load
  uint64_t evictions = 0;
  uint64_t bytes = 0;       // currently cached
  uint64_t blocks = 0;

  // The disk tier (TieredCache); zero without one. disk_* fields as in DiskCacheStats.
  uint64_t disk_hits = 0;
  uint64_t disk_misses = 0;
  uint64_t disk_hit_bytes = 0;
  uint64_t disk_written_blocks = 0;
  uint64_t disk_written_bytes = 0;
  uint64_t disk_evictions = 0;
  uint64_t disk_bytes = 0;
  uint64_t disk_blocks = 0;
  uint64_t disk_write_errors = 0;
  uint64_t disk_corrupt = 0;
  uint64_t disk_dir_errors = 0;
  uint64_t disk_skipped_full = 0;
  uint64_t disk_dropped = 0;  // writes dropped because the write queue was full
  uint64_t disk_requeued = 0;       // dropped blocks queued again when memory evicted them
  uint64_t disk_pending_bytes = 0;  // queued for writing
  uint64_t disk_file_opens = 0;     // files handed out as they are (open_file): for reads,
                                    // and to read their pages ahead
  uint64_t disk_remembered = 0;     // files trusted unhashed: verified before a clean restart
};

class BlockCache {
 public:
  virtual ~BlockCache() = default;
  // Thread-safe. Returns the cached block or loads it. A failed load is not cached and
  // its error goes to every caller that shared it. sum: where loader leaves the block's
  // checksum when it knows it (LoadSum), read once loader has run; nullptr when it never does.
  virtual Result<Block> get_or_load(const std::string& key, const Loader& loader,
                                    const LoadSum* sum = nullptr) = 0;
  // nullptr when absent. Does not load, count in stats or refresh recency.
  virtual Block peek(const std::string& key) = 0;
  // Whether key is cached in any tier, without loading, counting or refreshing recency
  // (warmup --check).
  virtual bool contains(const std::string& key) = 0;
  // Caches data under key, replacing any cached copy. sum: data's checksum64 when the
  // caller knows it (LoadSum), for a disk tier.
  virtual void put(const std::string& key, std::string data, LoadSum sum = {}) = 0;
  // get_or_load and put for the memory tier only: the block is never written to (or looked
  // up in) a disk tier. For partial blocks (the sub-blocks of a ranged read, under keys of
  // their own) that a disk tier must not hold as if they were whole blocks.
  virtual Result<Block> get_or_load_memory(const std::string& key, const Loader& loader) {
    return get_or_load(key, loader);
  }
  virtual void put_memory(const std::string& key, std::string data) { put(key, std::move(data)); }
  // get_or_load for warmup, whose point is the lower tiers: a block found only in memory
  // is written to a disk tier too, and a full disk write queue is waited for instead of
  // dropping the write.
  virtual Result<Block> fill(const std::string& key, const Loader& loader,
                             const LoadSum* sum = nullptr) {
    return get_or_load(key, loader, sum);
  }
  // The block as an open file to read (splice) from, when the memory tier does not hold
  // it and a disk tier may serve it without verifying it again (CacheVerify); nullptr
  // otherwise, and then get_or_load reads it. Counts in disk_file_opens.
  virtual FileBlock open_file(const std::string& key) { return nullptr; }
  // open_file for a block on the disk tier that memory does not hold, readied first
  // where open_file would refuse it for want of a check, without lifting it into memory
  // (DiskCache::ready_file: verified where it lies if it must be, its pages read ahead).
  // For a reader about to read it, or ahead of one. nullptr where get_or_load must read it.
  virtual FileBlock ready_file(const std::string& key) { return nullptr; }
  virtual void erase(const std::string& key) = 0;
  virtual CacheStats stats() const = 0;
};

// A block larger than the capacity is returned to the caller but not kept.
class MemoryCache : public BlockCache {
 public:
  explicit MemoryCache(uint64_t capacity_bytes);
  ~MemoryCache() override;

  Result<Block> get_or_load(const std::string& key, const Loader& loader,
                            const LoadSum* sum = nullptr) override;  // no disk: sum unused
  Block peek(const std::string& key) override;
  bool contains(const std::string& key) override;
  void put(const std::string& key, std::string data, LoadSum sum = {}) override;
  // put() of a block the caller shares (a tier above also keeps it).
  void put_block(const std::string& key, Block block);
  // Called with each block evicted to make room (not for erase() or a replaced copy), with
  // this cache's lock held: it must be quick and must not call back into this cache. Set
  // before the cache is shared.
  using EvictHook = std::function<void(const std::string& key, const Block& block)>;
  void set_evict_hook(EvictHook hook) { evict_hook_ = std::move(hook); }
  void erase(const std::string& key) override;
  CacheStats stats() const override;

 private:
  struct Item {
    Block block;
    std::list<std::string>::iterator lru_pos;
  };
  // One load in progress; waiters sleep on cv until result is set.
  struct Flight {
    std::condition_variable cv;
    std::optional<Result<Block>> result;
  };
  // Replaces any cached copy of key, then evicts down to capacity.
  void insert_locked(const std::string& key, Block b);
  void remove_locked(std::unordered_map<std::string, Item>::iterator it);
  Result<Block> load(const std::string& key, const Loader& loader);

  const uint64_t capacity_;
  EvictHook evict_hook_;
  mutable std::mutex mu_;       // guards everything below, and every Flight's fields
  std::list<std::string> lru_;  // front = most recently used
  std::unordered_map<std::string, Item> items_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
  CacheStats stats_;
};

}  // namespace sluice::cache
