// TieredCache: single flight across memory, disk and loader (N threads, one load), blocks
// loaded from the store reach the disk tier asynchronously, a restart serves them from
// disk without the loader, contains/erase cover both tiers, a full write queue drops
// writes without failing reads, and a full file system never fails a read.
#include "cache/tiered_cache.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <latch>
#include <thread>
#include <vector>

#include "common/hash.h"

namespace sluice::cache {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kThreads = 16;

class TieredCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-tiered-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::unique_ptr<TieredCache> make(TieredCacheOptions o = {}, std::string dir = "") {
    DiskCacheOptions d;
    d.dirs = {dir.empty() ? root_ + "/c" : dir};
    d.capacity = 1 << 30;
    d.free_ratio = 0;
    auto disk = DiskCache::open(d);
    EXPECT_TRUE(disk.ok()) << disk.status().ToString();
    (*disk)->wait_scan();
    return std::make_unique<TieredCache>(o, std::move(disk).value());
  }
  // A loader of 1000 bytes of ch that counts its runs in *loads.
  static auto counting_loader(std::atomic<int>& loads, char ch) {
    return [&loads, ch] {
      loads++;
      return Result<std::string>(std::string(1000, ch));
    };
  }
  // get_or_load of "r0".."r<kThreads-1>" (counting_loader 'r'), one key per thread, the
  // threads released together; then drains the disk writer.
  static void load_r_keys_together(TieredCache& c, std::atomic<int>& loads) {
    std::latch start(kThreads);
    std::vector<std::thread> ts;
    for (int i = 0; i < kThreads; i++) {
      ts.emplace_back([&, i] {
        start.arrive_and_wait();
        ASSERT_TRUE(c.get_or_load("r" + std::to_string(i), counting_loader(loads, 'r')).ok());
      });
    }
    for (auto& t : ts) t.join();
    c.drain();
  }
  // Runs get_or_load(key) on kThreads threads released together; returns the results.
  std::vector<std::string> load_together(TieredCache& c, const std::string& key,
                                         const Loader& loader) {
    std::latch start(kThreads);
    std::vector<std::string> got(kThreads);
    std::vector<std::thread> ts;
    for (int i = 0; i < kThreads; i++) {
      ts.emplace_back([&, i] {
        start.arrive_and_wait();
        auto r = c.get_or_load(key, loader);
        got[i] = r.ok() ? **r : "error: " + r.status().ToString();
      });
    }
    for (auto& t : ts) t.join();
    return got;
  }
  std::string root_;
};

TEST_F(TieredCacheTest, ConcurrentMissesMakeOneStoreLoadThenOneDiskRead) {
  const std::string data(100'000, 'd');
  std::atomic<int> calls{0};
  Loader slow = [&]() -> Result<std::string> {
    calls++;
    std::this_thread::sleep_for(50ms);
    return data;
  };
  {
    auto c = make();
    for (const std::string& g : load_together(*c, "vol/k", slow)) EXPECT_EQ(g, data);
    EXPECT_EQ(calls.load(), 1);
    c->drain();
    EXPECT_TRUE(c->disk().contains("vol/k"));
    EXPECT_EQ(c->stats().disk_written_blocks, 1u);
  }
  // A new mount over the same directory: the block comes from disk, read once.
  auto c = make();
  for (const std::string& g : load_together(*c, "vol/k", slow)) EXPECT_EQ(g, data);
  EXPECT_EQ(calls.load(), 1);
  CacheStats s = c->stats();
  EXPECT_EQ(s.disk_hits, 1u);
  EXPECT_EQ(s.misses, 1u);  // memory misses: one flight
  EXPECT_EQ(s.shared + s.hits, uint64_t(kThreads - 1));
  EXPECT_EQ(s.disk_written_blocks, 0u);  // a disk hit is not written back
}

TEST_F(TieredCacheTest, FailedLoadIsSharedAndNotCached) {
  auto c = make();
  std::atomic<int> calls{0};
  Loader failing = [&]() -> Result<std::string> {
    calls++;
    std::this_thread::sleep_for(20ms);
    return Status(Code::kIO, "store down");
  };
  for (const std::string& g : load_together(*c, "k", failing)) {
    EXPECT_NE(g.find("store down"), std::string::npos) << g;
  }
  EXPECT_EQ(calls.load(), 1);
  c->drain();
  EXPECT_FALSE(c->contains("k"));
}

TEST_F(TieredCacheTest, ContainsAndEraseCoverBothTiers) {
  TieredCacheOptions o;
  o.memory_capacity = 1000;  // holds no 4000-byte block: only the disk keeps them
  auto c = make(o);
  auto r = c->get_or_load("a", [] { return Result<std::string>(std::string(4000, 'a')); });
  ASSERT_TRUE(r.ok());
  c->drain();
  EXPECT_EQ(c->peek("a"), nullptr);
  EXPECT_TRUE(c->contains("a"));
  const std::string path = c->disk().path_of("a");
  EXPECT_TRUE(fs::exists(path));
  c->erase("a");
  EXPECT_FALSE(c->contains("a"));
  EXPECT_FALSE(fs::exists(path));

  // Written blocks (put) are cached on disk too.
  c->put("w", std::string(4000, 'w'));
  c->drain();
  EXPECT_TRUE(c->disk().contains("w"));
  int calls = 0;
  auto w = c->get_or_load("w", [&] {
    calls++;
    return Result<std::string>(std::string());
  });
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(**w, std::string(4000, 'w'));
  EXPECT_EQ(calls, 0);
}

TEST_F(TieredCacheTest, NoCacheWritesKeepsWrittenBlocksInMemoryOnly) {
  TieredCacheOptions o;
  o.cache_writes = false;
  auto c = make(o);
  c->put("w", "data");
  c->drain();
  EXPECT_NE(c->peek("w"), nullptr);
  EXPECT_FALSE(c->disk().contains("w"));
}

TEST_F(TieredCacheTest, OpenFileOnlyForBlocksOnDiskAndNotInMemory) {
  TieredCacheOptions o;
  o.memory_capacity = 2500;  // two 1000-byte blocks
  auto c = make(o);
  int loads = 0;
  auto loader = [&](char ch) {
    return [&loads, ch]() -> Result<std::string> {
      loads++;
      return std::string(1000, ch);
    };
  };
  ASSERT_TRUE(c->get_or_load("a", loader('a')).ok());
  c->drain();
  EXPECT_EQ(c->open_file("a"), nullptr);  // memory holds it: nearer than the disk
  ASSERT_TRUE(c->get_or_load("b", loader('b')).ok());
  ASSERT_TRUE(c->get_or_load("c", loader('c')).ok());
  c->drain();
  ASSERT_EQ(c->peek("a"), nullptr);  // evicted from memory, still on disk
  FileBlock f = c->open_file("a");
  ASSERT_NE(f, nullptr);
  std::string got(f->len, '\0');
  ASSERT_EQ(pread(f->fd, got.data(), got.size(), 0), 1000);
  EXPECT_EQ(got, std::string(1000, 'a'));
  EXPECT_EQ(c->peek("a"), nullptr);  // not lifted into memory
  EXPECT_EQ(loads, 3);
  EXPECT_EQ(c->stats().disk_file_opens, 1u);
  EXPECT_EQ(c->open_file("never"), nullptr);
  // ready_file readies it without lifting it either; memory's blocks and blocks on no
  // tier are not its.
  EXPECT_TRUE(c->ready_file("a"));
  EXPECT_EQ(c->peek("a"), nullptr);
  EXPECT_FALSE(c->ready_file("c"));  // in memory
  EXPECT_FALSE(c->ready_file("never"));
  EXPECT_EQ(loads, 3);
}

TEST_F(TieredCacheTest, MemoryOnlyLoadsAndPutsNeverReachTheDisk) {
  auto c = make();
  // A disk copy under the key is not consulted by a memory-only load.
  c->disk().put("sub#1", "on disk");
  int loads = 0;
  auto r = c->get_or_load_memory("sub#1", [&]() -> Result<std::string> {
    loads++;
    return std::string("loaded");
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(**r, "loaded");
  EXPECT_EQ(loads, 1);
  auto again = c->get_or_load_memory("sub#1", [&]() -> Result<std::string> {
    loads++;
    return std::string("again");
  });
  EXPECT_EQ(**again, "loaded");
  EXPECT_EQ(loads, 1);
  EXPECT_TRUE(
      c->get_or_load_memory("sub#2", [] { return Result<std::string>(std::string("two")); }).ok());
  c->put_memory("sub#3", "three");
  c->drain();
  EXPECT_EQ(**c->get_or_load_memory("sub#3", [] { return Result<std::string>(std::string("x")); }),
            "three");
  EXPECT_FALSE(c->disk().contains("sub#2"));
  EXPECT_FALSE(c->disk().contains("sub#3"));
  EXPECT_EQ(*c->disk().get("sub#1"), "on disk");
  EXPECT_EQ(c->stats().disk_written_blocks, 1u);  // the test's own disk put only
}

TEST_F(TieredCacheTest, FullQueueDropsDiskWritesNotReads) {
  TieredCacheOptions o;
  o.max_pending_bytes = 100;  // no 1000-byte block fits the queue
  auto c = make(o);
  auto r = c->get_or_load("k", [] { return Result<std::string>(std::string(1000, 'k')); });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(**r, std::string(1000, 'k'));
  c->drain();
  EXPECT_FALSE(c->disk().contains("k"));
  EXPECT_EQ(c->stats().disk_dropped, 1u);
}

// A block dropped from a full queue gets a second chance when memory evicts it: it is
// queued then, if there is room, and reaches the disk without being loaded again (a reader
// further behind, another loader of the same model, then finds it there).
TEST_F(TieredCacheTest, ADroppedBlockIsQueuedAgainWhenMemoryEvictsIt) {
  TieredCacheOptions o;
  o.max_pending_bytes = 1500;           // one 1000-byte block at a time
  o.memory_capacity = kThreads * 1000;  // the first batch, exactly
  std::atomic<int> loads{0};
  // Loads from kThreads threads at once until the queue was full for some of them (almost
  // always the first try); each try on a fresh cache.
  std::unique_ptr<TieredCache> c;
  uint64_t dropped = 0;
  for (int attempt = 0; attempt < 20 && dropped == 0; attempt++) {
    c.reset();
    c = make(o, root_ + "/c" + std::to_string(attempt));
    loads = 0;
    load_r_keys_together(*c, loads);
    dropped = c->stats().disk_dropped;
  }
  ASSERT_GT(dropped, 0u) << "the queue never filled";
  int off_disk = 0;
  for (int i = 0; i < kThreads; i++)
    off_disk += c->disk().contains("r" + std::to_string(i)) ? 0 : 1;
  EXPECT_EQ(off_disk, static_cast<int>(dropped));
  // New blocks, one at a time with the queue drained in between: each evicts one of the
  // first batch, which finds the queue empty.
  for (int i = 0; i < kThreads; i++) {
    ASSERT_TRUE(c->get_or_load("n" + std::to_string(i), counting_loader(loads, 'n')).ok());
    c->drain();
  }
  for (int i = 0; i < kThreads; i++) {
    EXPECT_EQ(c->disk().get("r" + std::to_string(i)), std::string(1000, 'r')) << i;
  }
  EXPECT_EQ(c->stats().disk_requeued, dropped);
  EXPECT_EQ(loads.load(), 2 * kThreads);  // none of the first batch loaded again
}

// A block evicted from memory while it waits for the disk writer is served from the queue,
// not loaded again.
TEST_F(TieredCacheTest, ABlockEvictedWhileQueuedIsNotLoadedAgain) {
  TieredCacheOptions o;
  o.memory_capacity = 1000;  // one block: each put evicts the one before
  auto c = make(o);
  int loads = 0;
  auto loader = [&] {
    loads++;
    return Result<std::string>(std::string("loaded"));
  };
  for (int i = 0; i < 200; i++) {
    const std::string key = "w" + std::to_string(i);
    c->put(key, std::string(1000, static_cast<char>('a' + i % 26)));
    if (i == 0) continue;
    const std::string prev = "w" + std::to_string(i - 1);
    auto r = c->get_or_load(prev, loader);  // evicted by the put: queued, or on disk
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(**r == std::string(1000, static_cast<char>('a' + (i - 1) % 26))) << prev;
  }
  EXPECT_EQ(loads, 0);
}

TEST_F(TieredCacheTest, FillWaitsForTheQueueAndWritesBlocksHeldOnlyInMemory) {
  TieredCacheOptions o;
  o.max_pending_bytes = 1500;  // one 1000-byte block at a time
  auto c = make(o);
  // A reader's load whose disk write is dropped: the block is in memory only.
  std::atomic<int> loads{0};
  auto loader = [&](char ch) { return counting_loader(loads, ch); };
  load_r_keys_together(*c, loads);
  const uint64_t dropped = c->stats().disk_dropped;
  // Warmup's fills of the same keys and of new ones, from as many threads: nothing is
  // dropped, the blocks held in memory are not loaded again, and all end up on disk.
  std::latch start2(kThreads);
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; i++) {
    ts.emplace_back([&, i] {
      start2.arrive_and_wait();
      ASSERT_TRUE(c->fill("r" + std::to_string(i), loader('r')).ok());
      ASSERT_TRUE(c->fill("f" + std::to_string(i), loader('f')).ok());
    });
  }
  for (auto& t : ts) t.join();
  c->drain();
  EXPECT_EQ(c->stats().disk_dropped, dropped);
  EXPECT_EQ(loads.load(), 2 * kThreads);
  for (int i = 0; i < kThreads; i++) {
    EXPECT_EQ(c->disk().get("r" + std::to_string(i)), std::string(1000, 'r')) << i;
    EXPECT_EQ(c->disk().get("f" + std::to_string(i)), std::string(1000, 'f')) << i;
  }
  // A block larger than the whole queue waits until it is empty, then goes.
  TieredCacheOptions tiny;
  tiny.max_pending_bytes = 100;
  auto t = make(tiny, root_ + "/t");
  ASSERT_TRUE(t->fill("big", loader('b')).ok());
  t->drain();
  EXPECT_TRUE(t->disk().contains("big"));
  EXPECT_EQ(t->stats().disk_dropped, 0u);
}

TEST_F(TieredCacheTest, CorruptDiskCopyIsReloadedFromTheStore) {
  {
    auto c = make();
    ASSERT_TRUE(c->get_or_load("k", [] { return Result<std::string>("good data"); }).ok());
  }
  auto c = make();
  {
    std::FILE* f = std::fopen(c->disk().path_of("k").c_str(), "r+");
    ASSERT_NE(f, nullptr);
    std::fputc('X', f);  // "good data" -> "Xood data"
    std::fclose(f);
  }
  int calls = 0;
  auto r = c->get_or_load("k", [&] {
    calls++;
    return Result<std::string>("good data");
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(**r, "good data");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(c->stats().disk_corrupt, 1u);
  c->drain();  // repaired: the reloaded block is written again
  EXPECT_EQ(c->disk().get("k").value_or(""), "good data");
}

// The checksum a loader leaves (LoadSum) is the one the disk tier writes, from
// get_or_load and from fill: a deliberately wrong one makes the disk copy fail its check.
TEST_F(TieredCacheTest, TheLoadersChecksumGoesToTheDiskTier) {
  auto c = make();
  const std::string data = "block data";
  auto load_with = [&](uint64_t s, LoadSum& sum) {
    return [&sum, &data, s] {
      sum = s;
      return Result<std::string>(data);
    };
  };
  LoadSum right, wrong, filled;
  ASSERT_TRUE(c->get_or_load("right", load_with(checksum64(data), right), &right).ok());
  ASSERT_TRUE(c->get_or_load("wrong", load_with(checksum64(data) ^ 1, wrong), &wrong).ok());
  ASSERT_TRUE(c->fill("filled", load_with(checksum64(data) ^ 2, filled), &filled).ok());
  c->drain();
  EXPECT_EQ(c->disk().get("right").value_or(""), data);
  EXPECT_FALSE(c->disk().get("wrong").has_value());
  EXPECT_FALSE(c->disk().get("filled").has_value());
  EXPECT_EQ(c->stats().disk_corrupt, 2u);
  // Memory still serves the loaded blocks, whatever the disk copy's fate.
  EXPECT_EQ(**c->get_or_load("wrong", [] { return Result<std::string>("reloaded"); }), data);
}

TEST_F(TieredCacheTest, FullFileSystemNeverFailsReads) {
  const std::string mnt = root_ + "/tmpfs";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  {
    TieredCacheOptions o;
    o.memory_capacity = 0;  // every read goes through the disk tier
    auto c = make(o, mnt + "/c");
    for (int round = 0; round < 2; round++) {
      for (int i = 0; i < 10; i++) {
        const std::string want(400'000, char('a' + i));
        auto r = c->get_or_load("k" + std::to_string(i), [&] { return Result<std::string>(want); });
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        EXPECT_EQ(**r, want);
      }
      c->drain();
    }
    CacheStats s = c->stats();
    EXPECT_GE(s.disk_write_errors, 1u);
    EXPECT_GE(s.disk_written_blocks, 1u);
  }
  ASSERT_EQ(::umount(mnt.c_str()), 0);
}

}  // namespace
}  // namespace sluice::cache
