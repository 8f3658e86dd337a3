// TieredCache: memory over disk over the loader, with an asynchronous disk writer. See
// tiered_cache.h.
#include "cache/tiered_cache.h"

#include <algorithm>

namespace sluice::cache {

TieredCache::TieredCache(TieredCacheOptions opts, std::unique_ptr<DiskCache> disk)
    : opts_(opts), mem_(opts.memory_capacity), disk_(std::move(disk)) {
  mem_.set_evict_hook([this](const std::string& key, const Block& block) { on_evict(key, block); });
  writer_ = std::thread([this] { writer_loop(); });
}

TieredCache::~TieredCache() {
  {
    std::lock_guard lk(qmu_);
    stop_ = true;
  }
  qcv_.notify_all();
  idle_cv_.notify_all();
  writer_.join();
}

Result<Block> TieredCache::load(const std::string& key, const Loader& loader, bool* from_store) {
  return mem_.get_or_load(key, [&]() -> Result<std::string> {
    // Evicted from memory but not yet on disk: a copy of the queued block, not a GET.
    if (Block q = queued(key)) return std::string(*q);
    if (auto data = disk_->get(key)) return std::move(*data);
    Result<std::string> data = loader();
    *from_store = data.ok();
    return data;
  });
}

Result<Block> TieredCache::get_or_load(const std::string& key, const Loader& loader,
                                       const LoadSum* sum) {
  bool from_store = false;
  Result<Block> r = load(key, loader, &from_store);
  // Only the caller whose loader ran sees from_store: the block is queued once, with the
  // checksum that caller's loader left.
  if (r.ok() && from_store) enqueue(key, *r, /*wait=*/false, sum != nullptr ? *sum : LoadSum());
  return r;
}

Result<Block> TieredCache::fill(const std::string& key, const Loader& loader, const LoadSum* sum) {
  bool from_store = false;
  Result<Block> r = load(key, loader, &from_store);
  if (!r.ok()) return r;
  // Loaded here, or found in memory only (a reader's load whose disk write was dropped,
  // or is still queued: then it is not queued twice, and its checksum is not known here).
  if (from_store || !on_disk_or_queued(key)) {
    enqueue(key, *r, /*wait=*/true, from_store && sum != nullptr ? *sum : LoadSum());
  }
  return r;
}

Block TieredCache::peek(const std::string& key) { return mem_.peek(key); }

bool TieredCache::contains(const std::string& key) {
  return mem_.contains(key) || on_disk_or_queued(key);
}

Block TieredCache::queued(const std::string& key) {
  std::lock_guard lk(qmu_);
  if (writing_.key == key) return writing_.block;
  for (const Pending& p : queue_) {
    if (p.key == key) return p.block;
  }
  return nullptr;
}

bool TieredCache::on_disk_or_queued(const std::string& key) {
  return queued(key) != nullptr || disk_->contains(key);
}

void TieredCache::put(const std::string& key, std::string data, LoadSum sum) {
  auto block = std::make_shared<const std::string>(std::move(data));
  mem_.put_block(key, block);
  if (opts_.cache_writes) enqueue(key, std::move(block), /*wait=*/false, sum);
}

Result<Block> TieredCache::get_or_load_memory(const std::string& key, const Loader& loader) {
  return mem_.get_or_load(key, loader);
}

void TieredCache::put_memory(const std::string& key, std::string data) {
  mem_.put(key, std::move(data));
}

void TieredCache::erase(const std::string& key) {
  mem_.erase(key);
  {
    std::unique_lock lk(qmu_);
    dropped_keys_.erase(key);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->key == key) {
        pending_bytes_ -= it->block->size();
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    // A write of this key in progress would recreate the file after the erase.
    idle_cv_.wait(lk, [&] { return writing_.key != key; });
  }
  disk_->erase(key);
}

FileBlock TieredCache::open_file(const std::string& key) {
  if (mem_.peek(key)) return nullptr;  // memory is nearer
  return disk_->open_file(key);
}

FileBlock TieredCache::ready_file(const std::string& key) {
  if (mem_.peek(key)) return nullptr;  // memory is nearer
  return disk_->ready_file(key);
}

CacheStats TieredCache::stats() const {
  CacheStats s = mem_.stats();
  DiskCacheStats d = disk_->stats();
  s.disk_hits = d.hits;
  s.disk_misses = d.misses;
  s.disk_hit_bytes = d.hit_bytes;
  s.disk_written_blocks = d.written_blocks;
  s.disk_written_bytes = d.written_bytes;
  s.disk_evictions = d.evictions;
  s.disk_bytes = d.bytes;
  s.disk_blocks = d.blocks;
  s.disk_write_errors = d.write_errors;
  s.disk_corrupt = d.corrupt;
  s.disk_dir_errors = d.dir_errors;
  s.disk_skipped_full = d.skipped_full;
  s.disk_file_opens = d.file_opens;
  s.disk_remembered = d.remembered;
  std::lock_guard lk(qmu_);
  s.disk_dropped = dropped_;
  s.disk_requeued = requeued_;
  s.disk_pending_bytes = pending_bytes_;
  return s;
}

void TieredCache::drain() {
  std::unique_lock lk(qmu_);
  idle_cv_.wait(lk, [&] { return queue_.empty() && !busy_; });
}

void TieredCache::enqueue(const std::string& key, Block block, bool wait, LoadSum sum) {
  {
    std::unique_lock lk(qmu_);
    auto room = [&] { return pending_bytes_ + block->size() <= opts_.max_pending_bytes; };
    if (wait) idle_cv_.wait(lk, [&] { return stop_ || room() || (queue_.empty() && !busy_); });
    if (stop_ || (!wait && !room())) {
      dropped_++;
      // Remembered only if memory can hold it: else no eviction would ever come for it.
      if (!stop_ && block->size() <= opts_.memory_capacity && dropped_keys_.size() < kMaxDropped) {
        dropped_keys_[key] = sum;
      }
      return;
    }
    dropped_keys_.erase(key);
    pending_bytes_ += block->size();
    queue_.push_back(Pending{key, std::move(block), sum});
  }
  qcv_.notify_one();
}

void TieredCache::on_evict(const std::string& key, const Block& block) {
  {
    std::lock_guard lk(qmu_);
    auto it = dropped_keys_.find(key);
    if (it == dropped_keys_.end()) return;
    const LoadSum sum = it->second;
    dropped_keys_.erase(it);
    if (stop_ || pending_bytes_ + block->size() > opts_.max_pending_bytes) return;
    pending_bytes_ += block->size();
    queue_.push_back(Pending{key, block, sum});
    requeued_++;
  }
  qcv_.notify_one();
}

void TieredCache::writer_loop() {
  std::unique_lock lk(qmu_);
  for (;;) {
    qcv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything is written
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    writing_ = p;
    busy_ = true;
    lk.unlock();
    disk_->put(p.key, *p.block, p.sum);  // failures are counted and logged by the disk tier
    lk.lock();
    pending_bytes_ -= p.block->size();
    writing_ = {};
    busy_ = false;
    idle_cv_.notify_all();
  }
}

}  // namespace sluice::cache
