// Token bucket with debt; see rate_limiter.h.
#include "common/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "common/clock.h"

namespace sluice {

namespace {

constexpr uint64_t kMinBurst = 64 << 10;

}  // namespace

RateLimiter::RateLimiter(uint64_t rate, uint64_t burst)
    : rate_(rate),
      burst_(burst != 0 ? burst : std::max<uint64_t>(rate / 10, kMinBurst)),
      tokens_(static_cast<double>(burst_)) {}

int64_t RateLimiter::reserve(uint64_t n, int64_t now_ns) {
  if (rate_ == 0) return 0;
  std::lock_guard lk(mu_);
  if (last_ns_ >= 0 && now_ns > last_ns_) {
    const double earned = static_cast<double>(now_ns - last_ns_) * static_cast<double>(rate_) / 1e9;
    tokens_ = std::min(tokens_ + earned, static_cast<double>(burst_));
  }
  last_ns_ = std::max(last_ns_, now_ns);
  tokens_ -= static_cast<double>(n);
  if (tokens_ >= 0) return 0;
  return static_cast<int64_t>(std::ceil(-tokens_ * 1e9 / static_cast<double>(rate_)));
}

void RateLimiter::acquire(uint64_t n) {
  const int64_t wait = reserve(n, mono_ns());
  if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
}

}  // namespace sluice
