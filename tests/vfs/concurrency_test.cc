// Concurrency and resource bounds: writers on many threads, parallel readers of one
// handle, the write-buffer bound, readahead on sequential scans only, and a read stream
// that stays within the cache bound.
#include <chrono>
#include <random>
#include <thread>

#include "vfs_fixture.h"

namespace sluice::vfs::testing {
namespace {

// Counts the gets that reach the store (outliving the clients that use it), and makes
// each take `delay`, as a remote store would.
class CountingStore : public object::StoreWrapper {
 public:
  CountingStore(std::shared_ptr<Store> inner, std::chrono::microseconds delay = {})
      : StoreWrapper(std::move(inner)), delay_(delay) {}
  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override {
    gets++;
    std::this_thread::sleep_for(delay_);
    return StoreWrapper::get(key, off, len);
  }
  std::atomic<uint64_t> gets{0};

 private:
  std::chrono::microseconds delay_;
};

// Makes each put take `delay`, so uploads stay in flight.
class SlowPutStore : public object::StoreWrapper {
 public:
  SlowPutStore(std::shared_ptr<Store> inner, std::chrono::microseconds delay)
      : StoreWrapper(std::move(inner)), delay_(delay) {}
  Status put(const std::string& key, std::string_view data) override {
    std::this_thread::sleep_for(delay_);
    return StoreWrapper::put(key, data);
  }

 private:
  std::chrono::microseconds delay_;
};

class ConcurrencyTest : public VfsTest {
 protected:
  // A committed file of `size` pattern bytes (seed 99), written by the fixture's client.
  Ino committed_file(const std::string& name, size_t size) {
    auto [ino, fh] = create(name);
    EXPECT_TRUE(write(*vfs_, ino, fh, 0, pattern(size, 99)));
    EXPECT_OK(vfs_->release(ino, fh));
    return ino;
  }
  // Reads [0, size) of ino in pieces of `step` through a fresh client whose store
  // answers in 2 ms; returns its stats.
  struct ScanResult {
    cache::CacheStats cache;
    uint64_t object_gets;
  };
  ScanResult scan(Ino ino, size_t size, size_t step, VfsOptions o) {
    auto client = mount(o, std::make_shared<CountingStore>(store_, std::chrono::milliseconds(2)));
    auto h = client->open(ctx_, ino, O_RDONLY);
    EXPECT_TRUE(h.ok());
    const std::string want = pattern(size, 99);
    for (size_t off = 0; off < size; off += step) {
      EXPECT_EQ(read(*client, ino, *h, off, step), want.substr(off, step)) << "at " << off;
    }
    EXPECT_OK(client->release(ino, *h));
    ScanResult r{client->block_cache().stats(), client->stats().object_gets.load()};
    EXPECT_OK(client->stop());
    client.reset();  // drains prefetches before the stats are compared
    return r;
  }
};

TEST_F(ConcurrencyTest, WritersOnManyThreads) {
  constexpr int kThreads = 4;
  constexpr size_t kSize = 1 << 20;
  std::vector<std::thread> threads;
  std::vector<Ino> inos(kThreads);
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      auto [ino, fh] = create("f" + std::to_string(t));
      inos[t] = ino;
      const std::string data = pattern(kSize, t);
      std::mt19937 rng(t);
      for (size_t off = 0; off < kSize;) {
        size_t n = std::min<size_t>(kSize - off, 1 + rng() % (48 << 10));
        EXPECT_TRUE(write(*vfs_, ino, fh, off, data.substr(off, n)));
        off += n;
      }
      EXPECT_OK(vfs_->release(ino, fh));
    });
  }
  for (auto& t : threads) t.join();
  auto other = mount();
  for (int t = 0; t < kThreads; t++) {
    auto h = other->open(ctx_, inos[t], O_RDONLY);
    ASSERT_OK(h);
    EXPECT_EQ(read(*other, inos[t], *h, 0, kSize + 1), pattern(kSize, t)) << "file " << t;
    EXPECT_OK(other->release(inos[t], *h));
  }
  EXPECT_OK(other->stop());
}

TEST_F(ConcurrencyTest, ParallelReadersOfOneHandleWhileAnotherFileIsWritten) {
  constexpr size_t kSize = 40 * kBlock;
  Ino ino = committed_file("r", kSize);
  auto [wino, wfh] = create("w");
  auto h = vfs_->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(h);
  const std::string want = pattern(kSize, 99);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 100; i++) {
        uint64_t off = rng() % kSize;
        size_t len = 1 + rng() % (3 * kBlock);
        EXPECT_EQ(read(*vfs_, ino, *h, off, len), want.substr(off, len));
      }
    });
  }
  threads.emplace_back([&, wino = wino, wfh = wfh] {
    for (int i = 0; i < 50; i++) EXPECT_TRUE(write(*vfs_, wino, wfh, i * 1000, pattern(1000, i)));
  });
  for (auto& t : threads) t.join();
  EXPECT_OK(vfs_->release(ino, *h));
  EXPECT_OK(vfs_->release(wino, wfh));
}

TEST_F(ConcurrencyTest, BufferedBytesStayWithinTheBound) {
  VfsOptions o = test_options();
  o.buffer_size = 512 << 10;
  // Slow puts: blocks in flight still count as buffered.
  auto client = mount(o, std::make_shared<SlowPutStore>(store_, std::chrono::milliseconds(20)));
  std::vector<std::pair<Ino, uint64_t>> files;
  for (int i = 0; i < 4; i++) files.push_back(create(*client, "f" + std::to_string(i)));
  uint64_t peak = 0;
  for (int round = 0; round < 32; round++) {
    for (auto [ino, fh] : files) {
      ASSERT_TRUE(write(*client, ino, fh, round * kBlock, pattern(kBlock, round)));
      peak = std::max(peak, client->buffered_bytes());
      ASSERT_LE(client->buffered_bytes(), o.buffer_size + kBlock);
    }
  }
  EXPECT_GE(peak, o.buffer_size - kBlock) << "the buffer is used up to its bound";
  for (auto [ino, fh] : files) {
    EXPECT_OK(client->release(ino, fh));
    auto h = client->open(ctx_, ino, O_RDONLY);
    ASSERT_OK(h);
    EXPECT_EQ(read(*client, ino, *h, 31 * kBlock, kBlock), pattern(kBlock, 31));
    EXPECT_OK(client->release(ino, *h));
  }
  EXPECT_EQ(client->buffered_bytes(), 0u);
  EXPECT_OK(client->stop());
}

TEST_F(ConcurrencyTest, ReadaheadTurnsSequentialMissesIntoHits) {
  constexpr size_t kSize = 32 * kBlock;
  Ino ino = committed_file("f", kSize);
  VfsOptions without = test_options();
  without.readahead_blocks = 0;
  ScanResult cold = scan(ino, kSize, 16 << 10, without);
  ScanResult warm = scan(ino, kSize, 16 << 10, test_options());
  // Each block is fetched exactly once either way (single flight, no over-fetch).
  EXPECT_EQ(cold.object_gets, 32u);
  EXPECT_EQ(warm.object_gets, 32u);
  EXPECT_EQ(cold.cache.misses, 32u);
  EXPECT_EQ(warm.cache.misses, 32u);
  // 4 reads per block: without readahead the first read of each block misses; with it,
  // most blocks are loaded (or in flight) before the reader gets there. (Timing only
  // decides how many; half of them leaves a wide margin.)
  EXPECT_EQ(cold.cache.hits + cold.cache.shared, 3u * 32);
  EXPECT_GE(warm.cache.hits + warm.cache.shared, 3u * 32 + 16);
}

TEST_F(ConcurrencyTest, RandomReadsPrefetchNothing) {
  constexpr size_t kSize = 64 * kBlock;
  Ino ino = committed_file("f", kSize);
  auto counting = std::make_shared<CountingStore>(store_);
  auto client = mount(test_options(), counting);
  auto h = client->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(h);
  const std::string want = pattern(kSize, 99);
  // Every read lands in another block, never where the previous read ended.
  for (uint64_t b : {40, 3, 17, 60, 8, 33}) {
    EXPECT_EQ(read(*client, ino, *h, b * kBlock + 100, 1000), want.substr(b * kBlock + 100, 1000));
  }
  EXPECT_OK(client->release(ino, *h));
  EXPECT_OK(client->stop());
  client.reset();  // drains any background fetch
  EXPECT_EQ(counting->gets.load(), 6u);
}

TEST_F(ConcurrencyTest, LongScanStaysWithinTheCacheBound) {
  constexpr size_t kSize = 128 * kBlock;  // 8 MiB through a 1 MiB cache
  Ino ino = committed_file("f", kSize);
  VfsOptions o = test_options();
  o.memory_cache_size = 1 << 20;
  ScanResult r = scan(ino, kSize, 256 << 10, o);
  EXPECT_LE(r.cache.bytes, o.memory_cache_size);
  EXPECT_GT(r.cache.evictions, 0u);
  EXPECT_GE(r.object_gets, 128u);
}

}  // namespace
}  // namespace sluice::vfs::testing
