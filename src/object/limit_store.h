// LimitStore: bandwidth limits and concurrency caps for the store below it.
//
// Uploads (put) and downloads (get) each have a token bucket in bytes per second
// (common/rate_limiter.h; 0 = unlimited), shared by all threads, and a cap on requests
// in flight (0 = no cap). A put waits for a slot, then for its bytes' tokens, then runs;
// a get waits for a slot, runs, then pays for the bytes it received before returning
// (the size of a get is not known in advance), holding its slot until then. head, del
// and list are not limited.
//
// Thread safety: all methods may be called concurrently; a caller over the cap blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <semaphore>

#include "common/rate_limiter.h"
#include "object/store.h"

namespace sluice::object {

struct LimitOptions {
  uint64_t upload_rate = 0;    // bytes/s; 0 = unlimited
  uint64_t download_rate = 0;  // bytes/s; 0 = unlimited
  int max_uploads = 0;         // puts in flight; 0 = no cap
  int max_downloads = 0;       // gets in flight; 0 = no cap
};

class LimitStore : public StoreWrapper {
 public:
  LimitStore(std::shared_ptr<Store> inner, const LimitOptions& opts);

  Status put(const std::string& key, std::string_view data) override;
  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override;
  Result<SplitObject> get_split(const std::string& key, size_t head_len) override;

 private:
  using Semaphore = std::counting_semaphore<>;
  RateLimiter upload_rate_;
  RateLimiter download_rate_;
  std::unique_ptr<Semaphore> upload_slots_;    // null: no cap
  std::unique_ptr<Semaphore> download_slots_;  // null: no cap
};

}  // namespace sluice::object
