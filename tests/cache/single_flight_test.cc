// MemoryCache under concurrency: concurrent misses on one key share one load (its data
// or its error), loads of different keys run in parallel, and a random mixed workload
// keeps the stats and the byte bound exact.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <latch>
#include <random>
#include <thread>
#include <vector>

#include "cache/block_cache.h"

namespace sluice::cache {
namespace {

using namespace std::chrono_literals;

constexpr int kThreads = 16;

// Runs fn(i) on kThreads threads released together, and joins them.
template <typename Fn>
void run_together(Fn fn) {
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; i++) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      fn(i);
    });
  }
  for (auto& t : threads) t.join();
}

TEST(SingleFlight, ConcurrentMissesRunTheLoaderOnce) {
  MemoryCache cache(1 << 20);
  std::atomic<int> calls{0};
  Loader slow = [&]() -> Result<std::string> {
    calls++;
    std::this_thread::sleep_for(50ms);
    return std::string(4096, 'q');
  };
  std::vector<Block> got(kThreads);
  run_together([&](int i) {
    auto r = cache.get_or_load("hot", slow);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    got[i] = *r;
  });
  EXPECT_EQ(calls.load(), 1);
  for (const Block& b : got) {
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b.get(), got[0].get()) << "every caller shares the one loaded block";
  }
  EXPECT_EQ(*got[0], std::string(4096, 'q'));
  CacheStats s = cache.stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.shared + s.hits, uint64_t(kThreads - 1));
  EXPECT_GT(s.shared, 0u) << "nobody waited: the loader did not overlap any caller";
  EXPECT_EQ(s.blocks, 1u);
}

TEST(SingleFlight, ConcurrentMissesShareAnErrorAndALaterCallRetries) {
  MemoryCache cache(1 << 20);
  std::atomic<int> calls{0};
  Loader broken = [&]() -> Result<std::string> {
    calls++;
    std::this_thread::sleep_for(50ms);
    return Status(Code::kCorruption, "checksum mismatch in block hot");
  };
  std::atomic<int> errors{0};
  run_together([&](int) {
    auto r = cache.get_or_load("hot", broken);
    if (!r.ok() && r.status().code() == Code::kCorruption &&
        r.status().message() == "checksum mismatch in block hot") {
      errors++;
    }
  });
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(errors.load(), kThreads);
  EXPECT_EQ(cache.peek("hot"), nullptr);

  Loader fixed = [&]() -> Result<std::string> {
    calls++;
    return std::string("good");
  };
  auto r = cache.get_or_load("hot", fixed);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(**r, "good");
  EXPECT_EQ(calls.load(), 2);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.shared, uint64_t(kThreads - 1)) << "an error is never a hit";
}

TEST(SingleFlight, DifferentKeysLoadInParallel) {
  constexpr int kKeys = 4;
  MemoryCache cache(1 << 20);
  std::mutex mu;
  std::condition_variable cv;
  int inside = 0;
  // Each loader waits until all kKeys loaders are running at once; serialized loads would
  // time out instead.
  Loader meet = [&]() -> Result<std::string> {
    std::unique_lock lk(mu);
    inside++;
    cv.notify_all();
    if (!cv.wait_for(lk, 5s, [&] { return inside == kKeys; })) {
      return Status(Code::kTimeout, "loads of different keys were serialized");
    }
    return std::string("v");
  };
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kKeys; i++) {
    threads.emplace_back([&, i] {
      if (cache.get_or_load("k" + std::to_string(i), meet).ok()) ok++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kKeys);
  EXPECT_EQ(cache.stats().misses, uint64_t(kKeys));
}

TEST(SingleFlight, MixedWorkloadKeepsDataAndStatsExact) {
  constexpr int kOps = 3000;
  constexpr int kKeySpace = 64;
  constexpr uint64_t kCapacity = 20 * 1024;
  MemoryCache cache(kCapacity);
  auto content = [](int k) { return std::string(256 + 17 * k, static_cast<char>('a' + k % 26)); };
  std::atomic<uint64_t> gets{0}, loads{0}, bad{0}, failures{0};
  run_together([&](int t) {
    std::mt19937 rng(t);
    for (int i = 0; i < kOps; i++) {
      int k = static_cast<int>(rng() % kKeySpace);
      std::string key = "k" + std::to_string(k);
      switch (rng() % 10) {
        case 0:
          cache.erase(key);
          break;
        case 1:
          cache.put(key, content(k));
          break;
        default: {
          gets++;
          auto r = cache.get_or_load(key, [&]() -> Result<std::string> {
            loads++;
            if (rng() % 20 == 0) return Status(Code::kIO, "flaky");
            return content(k);
          });
          if (!r.ok()) {
            failures++;
          } else if (**r != content(k)) {
            bad++;
          }
        }
      }
    }
  });
  EXPECT_EQ(bad.load(), 0u);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.misses, loads.load());
  EXPECT_EQ(s.hits + s.misses + s.shared, gets.load());
  EXPECT_GT(failures.load(), 0u);
  EXPECT_LE(s.bytes, kCapacity);
  uint64_t present = 0, count = 0;
  for (int k = 0; k < kKeySpace; k++) {
    if (Block b = cache.peek("k" + std::to_string(k))) {
      EXPECT_EQ(*b, content(k));
      present += b->size();
      count++;
    }
  }
  EXPECT_EQ(s.bytes, present);
  EXPECT_EQ(s.blocks, count);
}

}  // namespace
}  // namespace sluice::cache
