// MemoryCache, single-threaded behaviour: LRU order, the byte bound, oversized blocks,
// put/peek/erase, error handling and exact stats.
#include <gtest/gtest.h>

#include <stdexcept>

#include "cache/block_cache.h"

namespace sluice::cache {
namespace {

// A loader that returns data and counts its calls.
struct CountingLoader {
  std::string data;
  int calls = 0;
  Loader fn() {
    return [this]() -> Result<std::string> {
      calls++;
      return data;
    };
  }
};

Loader failing(Code code) {
  return [code]() -> Result<std::string> { return Status(code, "backend said no"); };
}

std::string bytes(size_t n, char c) { return std::string(n, c); }

TEST(MemoryCache, LoadsOnceThenHits) {
  MemoryCache cache(1000);
  CountingLoader l{"block data"};
  auto a = cache.get_or_load("k", l.fn());
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(**a, "block data");
  auto b = cache.get_or_load("k", l.fn());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->get(), b->get()) << "a hit returns the cached block itself";
  EXPECT_EQ(l.calls, 1);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.shared, 0u);
  EXPECT_EQ(s.evictions, 0u);
  EXPECT_EQ(s.bytes, 10u);
  EXPECT_EQ(s.blocks, 1u);
}

TEST(MemoryCache, EvictsLeastRecentlyUsedFirst) {
  MemoryCache cache(300);
  cache.put("a", bytes(100, 'a'));
  cache.put("b", bytes(100, 'b'));
  cache.put("c", bytes(100, 'c'));
  CountingLoader unused{"x"};
  ASSERT_TRUE(cache.get_or_load("a", unused.fn()).ok());  // a becomes most recent
  cache.put("d", bytes(100, 'd'));                        // evicts b
  EXPECT_EQ(cache.peek("b"), nullptr);
  EXPECT_FALSE(cache.contains("b"));
  EXPECT_NE(cache.peek("a"), nullptr);
  EXPECT_TRUE(cache.contains("a"));
  EXPECT_NE(cache.peek("c"), nullptr);
  EXPECT_NE(cache.peek("d"), nullptr);
  cache.put("e", bytes(100, 'e'));  // evicts c, the oldest left
  EXPECT_EQ(cache.peek("c"), nullptr);
  EXPECT_NE(cache.peek("a"), nullptr);
  EXPECT_EQ(unused.calls, 0);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.evictions, 2u);
  EXPECT_EQ(s.bytes, 300u);
  EXPECT_EQ(s.blocks, 3u);
}

TEST(MemoryCache, StaysWithinTheByteBound) {
  MemoryCache cache(1000);
  uint64_t sizes[] = {400, 300, 200, 600, 50, 999, 1, 1000, 250, 250, 250, 250, 251};
  int i = 0;
  for (uint64_t n : sizes) {
    std::string key = "k" + std::to_string(i++);
    cache.put(key, bytes(n, 'x'));
    CacheStats s = cache.stats();
    EXPECT_LE(s.bytes, 1000u) << "after " << key;
    EXPECT_NE(cache.peek(key), nullptr) << key << " fits, so it is kept";
    uint64_t present = 0, count = 0;
    for (int j = 0; j < i; j++) {
      if (Block b = cache.peek("k" + std::to_string(j))) {
        present += b->size();
        count++;
      }
    }
    EXPECT_EQ(s.bytes, present) << "after " << key;
    EXPECT_EQ(s.blocks, count) << "after " << key;
  }
}

TEST(MemoryCache, OneLargeBlockEvictsSeveralSmallOnes) {
  MemoryCache cache(300);
  cache.put("a", bytes(100, 'a'));
  cache.put("b", bytes(100, 'b'));
  cache.put("c", bytes(100, 'c'));
  cache.put("big", bytes(250, 'z'));
  EXPECT_EQ(cache.stats().evictions, 3u);
  EXPECT_EQ(cache.stats().bytes, 250u);
  EXPECT_EQ(cache.stats().blocks, 1u);
}

TEST(MemoryCache, OversizedBlockIsReturnedButNotKept) {
  MemoryCache cache(100);
  cache.put("small", bytes(60, 's'));
  CountingLoader big{bytes(150, 'B')};
  auto r = cache.get_or_load("big", big.fn());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(**r, bytes(150, 'B'));
  EXPECT_EQ(cache.peek("big"), nullptr);
  EXPECT_NE(cache.peek("small"), nullptr) << "an oversized block evicts nothing";
  ASSERT_TRUE(cache.get_or_load("big", big.fn()).ok());
  EXPECT_EQ(big.calls, 2);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.evictions, 0u);
  EXPECT_EQ(s.bytes, 60u);
  EXPECT_EQ(s.blocks, 1u);
}

TEST(MemoryCache, ZeroCapacityCachesNothing) {
  MemoryCache cache(0);
  CountingLoader l{"data"};
  ASSERT_TRUE(cache.get_or_load("k", l.fn()).ok());
  ASSERT_TRUE(cache.get_or_load("k", l.fn()).ok());
  EXPECT_EQ(l.calls, 2);
  EXPECT_EQ(cache.stats().blocks, 0u);
}

TEST(MemoryCache, PutReplacesAndPeekSeesIt) {
  MemoryCache cache(1000);
  cache.put("k", bytes(10, 'x'));
  cache.put("k", bytes(20, 'y'));
  Block b = cache.peek("k");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(*b, bytes(20, 'y'));
  CacheStats s = cache.stats();
  EXPECT_EQ(s.bytes, 20u);
  EXPECT_EQ(s.blocks, 1u);
  CountingLoader l{"loaded"};
  EXPECT_EQ(**cache.get_or_load("k", l.fn()), bytes(20, 'y'));
  EXPECT_EQ(l.calls, 0);
}

TEST(MemoryCache, PeekNeitherCountsNorRefreshes) {
  MemoryCache cache(200);
  cache.put("a", bytes(100, 'a'));
  cache.put("b", bytes(100, 'b'));
  EXPECT_NE(cache.peek("a"), nullptr);
  EXPECT_EQ(cache.peek("missing"), nullptr);
  cache.put("c", bytes(100, 'c'));
  EXPECT_EQ(cache.peek("a"), nullptr) << "peek must not have made a recent";
  CacheStats s = cache.stats();
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.misses, 0u);
}

TEST(MemoryCache, EraseDropsTheBlock) {
  MemoryCache cache(1000);
  cache.put("a", bytes(100, 'a'));
  cache.put("b", bytes(50, 'b'));
  cache.erase("a");
  cache.erase("never-cached");
  EXPECT_EQ(cache.peek("a"), nullptr);
  EXPECT_NE(cache.peek("b"), nullptr);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.bytes, 50u);
  EXPECT_EQ(s.blocks, 1u);
  EXPECT_EQ(s.evictions, 0u) << "erase is not an eviction";
  CountingLoader l{"again"};
  EXPECT_EQ(**cache.get_or_load("a", l.fn()), "again");
  EXPECT_EQ(l.calls, 1);
}

TEST(MemoryCache, ErrorsAreReturnedButNotCached) {
  MemoryCache cache(1000);
  auto r = cache.get_or_load("k", failing(Code::kUnavailable));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().message(), "backend said no");
  EXPECT_EQ(cache.peek("k"), nullptr);
  CountingLoader l{"recovered"};
  auto again = cache.get_or_load("k", l.fn());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(**again, "recovered");
  CacheStats s = cache.stats();
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.blocks, 1u);
}

TEST(MemoryCache, ThrowingLoaderBecomesAnInternalError) {
  MemoryCache cache(1000);
  auto r = cache.get_or_load(
      "k", []() -> Result<std::string> { throw std::runtime_error("loader bug"); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
  EXPECT_NE(r.status().message().find("loader bug"), std::string::npos);
  CountingLoader l{"fine"};
  EXPECT_EQ(**cache.get_or_load("k", l.fn()), "fine") << "the key is not stuck in flight";
}

}  // namespace
}  // namespace sluice::cache
