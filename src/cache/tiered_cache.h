// TieredCache: the memory tier over the disk tier over the loader (the object store).
//
// A lookup tries memory, then the disk writer's queue, then disk, then the loader, under
// the memory tier's single flight: concurrent misses on one key run one disk read or one
// store GET, whichever tier answers. A block loaded from the store goes to memory at once and to
// disk asynchronously: a single writer thread drains a queue bounded in bytes (a put that would
// overflow it is dropped and counted), so a reader never waits for a cache write. put() (blocks
// written by this client) does the same when cache_writes is set. get_or_load_memory() and
// put_memory() use the memory tier alone (partial blocks). fill() (warmup) waits for room in the
// queue instead of dropping, and also queues a block it finds only in memory. A block dropped from
// a full queue is remembered (its key and checksum, up to kMaxDropped of them) and offered to the
// queue once more when the memory tier evicts it: a slow moment of the disk then costs no second
// fetch of that block by a reader further behind (another loader of the same model). Queued if
// there is room then, counted as disk_requeued; forgotten either way.
//
// open_file() hands out the disk tier's file of a block memory does not hold (for a reader
// to splice from; DiskCache::open_file says when). peek() looks at memory only (prefetch
// uses it to skip blocks already in memory). ready_file() is open_file for a disk block
// not checked yet, checked first (a prefetch or a read of a block on disk uses it instead
// of lifting the block into memory; only a disk tier that checks every read, kFull,
// leaves them to get_or_load). contains() and erase() cover both tiers and the write
// queue. stats(): the memory tier's fields plus disk_* fields.
//
// Thread safety: every method may be called concurrently. The destructor writes out what
// is still queued (at most max_pending_bytes), then stops the writer.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "cache/block_cache.h"
#include "cache/disk_cache.h"

namespace sluice::cache {

// The most dropped blocks remembered for a second chance (keys of about 50 bytes: a few MiB).
inline constexpr size_t kMaxDropped = 65536;

struct TieredCacheOptions {
  uint64_t memory_capacity = 128ull << 20;
  uint64_t max_pending_bytes = 64ull << 20;  // blocks queued for the disk writer
  bool cache_writes = true;                  // put() also writes the block to disk
};

class TieredCache : public BlockCache {
 public:
  TieredCache(TieredCacheOptions opts, std::unique_ptr<DiskCache> disk);
  ~TieredCache() override;

  Result<Block> get_or_load(const std::string& key, const Loader& loader,
                            const LoadSum* sum = nullptr) override;
  Block peek(const std::string& key) override;
  bool contains(const std::string& key) override;
  void put(const std::string& key, std::string data, LoadSum sum = {}) override;
  Result<Block> get_or_load_memory(const std::string& key, const Loader& loader) override;
  void put_memory(const std::string& key, std::string data) override;
  Result<Block> fill(const std::string& key, const Loader& loader,
                     const LoadSum* sum = nullptr) override;
  FileBlock open_file(const std::string& key) override;
  FileBlock ready_file(const std::string& key) override;
  void erase(const std::string& key) override;
  CacheStats stats() const override;

  DiskCache& disk() { return *disk_; }
  // Blocks until every queued disk write is done (tests, warmup).
  void drain();

 private:
  // A block waiting for the disk writer, with its checksum when the loader knew it.
  struct Pending {
    std::string key;
    Block block;
    LoadSum sum;
  };
  // Queues block for the disk writer; dropped (and counted) when the queue is full, or
  // with wait, once there is room (a block larger than the queue waits until it is empty).
  void enqueue(const std::string& key, Block block, bool wait = false, LoadSum sum = {});
  // The memory tier's evict hook (under its lock): a dropped block's second chance.
  void on_evict(const std::string& key, const Block& block);
  void writer_loop();
  bool on_disk_or_queued(const std::string& key);
  // The block queued (or being written) under key; nullptr when none.
  Block queued(const std::string& key);
  // The memory tier's get_or_load, filled from disk, else from loader (then *from_store).
  Result<Block> load(const std::string& key, const Loader& loader, bool* from_store);

  const TieredCacheOptions opts_;
  MemoryCache mem_;
  std::unique_ptr<DiskCache> disk_;

  mutable std::mutex qmu_;  // guards the queue state below
  std::condition_variable qcv_;     // the writer waits for work or stop
  std::condition_variable idle_cv_; // drain/erase wait for the writer
  std::deque<Pending> queue_;
  uint64_t pending_bytes_ = 0;
  Pending writing_;  // the block being written now (key "" when none)
  bool busy_ = false;
  bool stop_ = false;
  uint64_t dropped_ = 0;
  uint64_t requeued_ = 0;
  // Blocks dropped from a full queue, still in memory: key → the loader's checksum.
  std::unordered_map<std::string, LoadSum> dropped_keys_;
  std::thread writer_;
};

}  // namespace sluice::cache
