// RetryStore: retries failed requests of the store below it.
//
// A request is retried when its status is retryable (kUnavailable, kTimeout, kConflict)
// or, for get, kCorruption (a truncated or damaged body may be a transfer fault; blocks
// whose checksum fails after decoding are fetched again by the vfs, see vfs/reader.cc).
// Other errors (kNotFound, kAccess, kInvalid, ...) return at once. Attempts are spaced by
// exponential backoff with jitter: the k-th wait is uniform in [d/2, d) with
// d = min(max_backoff, initial_backoff * 2^k). The budget ends at `retries` retries or
// when the next wait would pass `budget_ns` since the first attempt; then the last error
// reaches the caller (its message saying how many attempts were made) and is logged as a
// warning with the key.
//
// Thread safety: all methods may be called concurrently; each request retries on the
// calling thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "object/store.h"

namespace sluice::object {

struct RetryOptions {
  int retries = 10;                        // retries after the first attempt; 0 = none
  int64_t budget_ns = 60'000'000'000;      // no retry starts this long after the first attempt
  int64_t initial_backoff_ns = 20'000'000;
  int64_t max_backoff_ns = 2'000'000'000;
};

struct RetryStats {
  std::atomic<uint64_t> retries{0};    // retried attempts
  std::atomic<uint64_t> recovered{0};  // requests that succeeded after a retry
  std::atomic<uint64_t> exhausted{0};  // requests that failed after using their budget
};

class RetryStore : public StoreWrapper {
 public:
  RetryStore(std::shared_ptr<Store> inner, RetryOptions opts);

  Status put(const std::string& key, std::string_view data) override;
  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override;
  Result<SplitObject> get_split(const std::string& key, size_t head_len) override;
  Result<ObjectInfo> head(const std::string& key) override;
  Status del(const std::string& key) override;
  Result<std::vector<ObjectInfo>> list(const std::string& prefix, const std::string& start_after,
                                       size_t limit) override;

  const RetryStats& stats() const { return stats_; }

 private:
  // Runs attempt() until it succeeds, fails for good or the budget is spent. `op` and
  // `key` serve the log; corruption_retryable adds kCorruption to the retried codes.
  Status run(const char* op, const std::string& key, bool corruption_retryable,
             const std::function<Status()>& attempt);
  int64_t backoff_ns(int retry) const;

  const RetryOptions opts_;
  RetryStats stats_;
};

}  // namespace sluice::object
