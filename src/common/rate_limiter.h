// RateLimiter: a token bucket in bytes per second, shared by threads.
//
// Tokens accrue at `rate` per second up to `burst`. A request for n tokens always takes
// them at once, letting the balance go negative (debt), and then waits until the balance
// would be back at zero. So a request larger than the burst still passes, requests are
// served in arrival order, and the long-run throughput never exceeds the rate. A rate of
// 0 means unlimited: acquire() returns at once.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <mutex>

namespace sluice {

class RateLimiter {
 public:
  // burst 0 picks a tenth of a second's worth of tokens (at least 64 KiB). The bucket
  // starts full.
  explicit RateLimiter(uint64_t rate, uint64_t burst = 0);

  uint64_t rate() const { return rate_; }
  uint64_t burst() const { return burst_; }

  // Takes n tokens and sleeps until they are paid for.
  void acquire(uint64_t n);

  // Takes n tokens at monotonic time now_ns and returns how many nanoseconds the caller
  // must wait before using them (0 if covered). acquire() is reserve() plus the sleep;
  // tests call it with a clock of their own. now_ns must not go backwards.
  int64_t reserve(uint64_t n, int64_t now_ns);

 private:
  const uint64_t rate_;
  const uint64_t burst_;
  std::mutex mu_;         // guards tokens_, last_ns_
  double tokens_;         // negative while in debt
  int64_t last_ns_ = -1;  // time of the last refill; -1 before the first request
};

}  // namespace sluice
