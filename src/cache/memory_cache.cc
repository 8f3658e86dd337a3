// MemoryCache: the in-memory LRU tier of the block cache, with single-flight loading.
//
// One mutex guards the LRU list, the item map, the in-progress loads (flights) and the
// stats. A miss registers a Flight and runs the loader with the mutex released; callers
// that miss on the same key meanwhile wait on the flight's condition variable and take
// its result. A successful load is inserted before the flight is retired, so a caller
// arriving after that finds the block cached; a failed load is retired without caching,
// so the next caller loads again.
#include <exception>

#include "cache/block_cache.h"

namespace sluice::cache {

MemoryCache::MemoryCache(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}

MemoryCache::~MemoryCache() = default;

Result<Block> MemoryCache::get_or_load(const std::string& key, const Loader& loader,
                                       const LoadSum* /*sum*/) {
  std::unique_lock lk(mu_);
  if (auto it = items_.find(key); it != items_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
    stats_.hits++;
    return it->second.block;
  }
  if (auto it = flights_.find(key); it != flights_.end()) {
    std::shared_ptr<Flight> flight = it->second;
    stats_.shared++;
    flight->cv.wait(lk, [&] { return flight->result.has_value(); });
    return *flight->result;
  }
  auto flight = std::make_shared<Flight>();
  flights_.emplace(key, flight);
  stats_.misses++;
  lk.unlock();

  Result<Block> result = load(key, loader);

  lk.lock();
  if (result.ok()) insert_locked(key, *result);
  flights_.erase(key);
  flight->result = result;
  flight->cv.notify_all();
  return result;
}

// Runs the loader; an exception escaping it (a bug) becomes kInternal so that the callers
// waiting on the flight are still woken.
Result<Block> MemoryCache::load(const std::string& key, const Loader& loader) {
  try {
    Result<std::string> data = loader();
    if (!data.ok()) return data.status();
    return Block(std::make_shared<const std::string>(std::move(data).value()));
  } catch (const std::exception& e) {
    return Status(Code::kInternal, "loading block '" + key + "' threw: " + e.what());
  }
}

Block MemoryCache::peek(const std::string& key) {
  std::lock_guard lk(mu_);
  auto it = items_.find(key);
  return it == items_.end() ? nullptr : it->second.block;
}

bool MemoryCache::contains(const std::string& key) {
  std::lock_guard lk(mu_);
  return items_.count(key) > 0;
}

void MemoryCache::put(const std::string& key, std::string data, LoadSum /*sum*/) {
  auto block = std::make_shared<const std::string>(std::move(data));
  std::lock_guard lk(mu_);
  insert_locked(key, std::move(block));
}

void MemoryCache::put_block(const std::string& key, Block block) {
  std::lock_guard lk(mu_);
  insert_locked(key, std::move(block));
}

void MemoryCache::erase(const std::string& key) {
  std::lock_guard lk(mu_);
  if (auto it = items_.find(key); it != items_.end()) remove_locked(it);
}

CacheStats MemoryCache::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void MemoryCache::insert_locked(const std::string& key, Block b) {
  if (auto it = items_.find(key); it != items_.end()) remove_locked(it);
  if (b->size() > capacity_) return;
  lru_.push_front(key);
  stats_.bytes += b->size();
  stats_.blocks++;
  items_.emplace(key, Item{std::move(b), lru_.begin()});
  while (stats_.bytes > capacity_) {
    auto victim = items_.find(lru_.back());
    if (evict_hook_) evict_hook_(victim->first, victim->second.block);
    remove_locked(victim);
    stats_.evictions++;
  }
}

void MemoryCache::remove_locked(std::unordered_map<std::string, Item>::iterator it) {
  stats_.bytes -= it->second.block->size();
  stats_.blocks--;
  lru_.erase(it->second.lru_pos);
  items_.erase(it);
}

}  // namespace sluice::cache
