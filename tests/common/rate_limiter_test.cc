// RateLimiter: token-bucket arithmetic on a test clock (reserve), then real sleeping
// (acquire) from one and from several threads.
#include "common/rate_limiter.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "common/clock.h"

namespace sluice {
namespace {

constexpr int64_t kSec = 1'000'000'000;

TEST(RateLimiter, UnlimitedNeverWaits) {
  RateLimiter r(0);
  EXPECT_EQ(r.reserve(1ull << 40, 0), 0);
  EXPECT_EQ(r.reserve(1ull << 40, 0), 0);
}

TEST(RateLimiter, DefaultBurstIsATenthOfASecond) {
  EXPECT_EQ(RateLimiter(10 << 20).burst(), 1u << 20);
  EXPECT_EQ(RateLimiter(1000).burst(), 64u << 10) << "at least 64 KiB";
  EXPECT_EQ(RateLimiter(1000, 10).burst(), 10u);
}

TEST(RateLimiter, BurstIsFreeThenTheRateIsPaid) {
  RateLimiter r(1000, 100);
  EXPECT_EQ(r.reserve(100, 0), 0);
  EXPECT_EQ(r.reserve(100, 0), kSec / 10);
  // Callers at the same moment queue behind each other's debt.
  EXPECT_EQ(r.reserve(100, 0), 2 * kSec / 10);
}

TEST(RateLimiter, RequestsLargerThanTheBurstPass) {
  RateLimiter r(1000, 100);
  EXPECT_EQ(r.reserve(10'100, 0), 10 * kSec);
}

TEST(RateLimiter, TokensAccrueUpToTheBurst) {
  RateLimiter r(1000, 100);
  EXPECT_EQ(r.reserve(100, 0), 0);
  EXPECT_EQ(r.reserve(50, kSec / 20), 0) << "50 tokens earned in 50 ms";
  EXPECT_EQ(r.reserve(10, kSec / 20), kSec / 100);
  // A long idle time refills only up to the burst.
  EXPECT_EQ(r.reserve(200, 100 * kSec), kSec / 10);
}

TEST(RateLimiter, DebtIsPaidOffOverTime) {
  RateLimiter r(1000, 100);
  EXPECT_EQ(r.reserve(600, 0), kSec / 2);
  EXPECT_EQ(r.reserve(0, kSec / 4), kSec / 4);
  EXPECT_EQ(r.reserve(0, kSec / 2), 0);
}

TEST(RateLimiter, AcquireSleeps) {
  RateLimiter r(1 << 20, 64 << 10);
  const int64_t t0 = mono_ns();
  r.acquire(64 << 10);  // the burst
  r.acquire(256 << 10);
  EXPECT_GE(mono_ns() - t0, kSec / 4 * 8 / 10);
}

TEST(RateLimiter, ThreadsShareOneRate) {
  const uint64_t rate = 2 << 20, burst = 64 << 10;
  RateLimiter r(rate, burst);
  std::vector<std::thread> threads;
  const int64_t t0 = mono_ns();
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&] {
      for (int i = 0; i < 16; i++) r.acquire(16 << 10);
    });
  }
  for (auto& t : threads) t.join();
  const double want = static_cast<double>(4 * 16 * (16 << 10) - burst) / rate;
  EXPECT_GE(static_cast<double>(mono_ns() - t0) / kSec, 0.8 * want);
}

}  // namespace
}  // namespace sluice
