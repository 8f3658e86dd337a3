// Ranged reads counted at the store, on 4 MiB blocks: a small random read of a cold block
// GETs its 64 KiB sub-blocks and the block's table only, later ranges of the block reuse
// the table, concurrent misses share one fetch, sequential streams and reads of more
// than half a block fetch whole blocks, a damaged sub-block is refetched then EIO, blocks
// without a table and volumes with compression or encryption read whole, sub-blocks
// never reach the disk cache, tensor prefetch fetches only a small tensor's part of its
// block and finds the faulted tensor of a read-around, a loader going into many tensors
// of a file, or of the shards its process entered, gets whole blocks (one GET each), and
// blocks and long ranges a reader waits for come in parallel parts. Every read's data is
// checked.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <mutex>
#include <thread>

#include "cache/tiered_cache.h"
#include "common/encoding.h"
#include "common/hash.h"
#include "object/block_cipher.h"
#include "object/block_codec.h"
#include "vfs/read_fixture.h"

namespace sluice::vfs::testing {
namespace {

constexpr uint32_t kBig = 4 << 20;
constexpr uint64_t kSub = object::kSubBlockSize;
const uint64_t kHead = object::block_table_end(kBig);  // header and table: 544 bytes

class RangedTest : public VfsTest {
 protected:
  void SetUp() override {
    auto eng = kv::open_engine(unique_url("meta"), /*create=*/true);
    ASSERT_OK(eng);
    engine_ = *eng;
    auto st = object::open_store(unique_url("data"));
    ASSERT_OK(st);
    store_ = *st;
    meta::Format fmt;
    fmt.name = "vol";
    fmt.uuid = "00000000-0000-0000-0000-000000000003";
    fmt.storage = "mem://";
    fmt.block_size = kBig;
    fmt.compression = compression_;
    if (encrypted_) {
      fmt.encryption = object::kEncryptionAesGcmRsa;
      fmt.encryption_key = "unused";
      fmt.encryption_key_fingerprint = "sha256:unused";
      auto c = object::BlockCipher::generate();
      ASSERT_OK(c);
      cipher_ = *c;
    }
    ASSERT_OK(meta::Meta::format(*engine_, fmt, false));
    vfs_ = mount(opts());
    ASSERT_NE(vfs_, nullptr);
  }

  // One GET per fetch unless a test says otherwise: these tests count GETs of ranges
  // (parted fetches have tests of their own, PartedTest below).
  VfsOptions opts() {
    VfsOptions o = test_options();
    o.cipher = cipher_;
    o.block_get_parts = parts_;
    return o;
  }
  Ino put_file(const std::string& name, const std::string& data) {
    auto [ino, fh] = create(name);
    EXPECT_TRUE(write(*vfs_, ino, fh, 0, data));
    EXPECT_OK(vfs_->flush(ctx_, ino, fh));
    EXPECT_OK(vfs_->release(ino, fh));
    return ino;
  }
  // A second client with a cold cache, reading through a counting store.
  std::unique_ptr<Vfs> reader(VfsOptions o) {
    counting_ = std::make_shared<CountingStore>(store_);
    return mount(o, counting_);
  }
  std::unique_ptr<Vfs> reader() { return reader(opts()); }
  uint64_t open_ro(Vfs& v, Ino ino) {
    auto fh = v.open(ctx_, ino, O_RDONLY);
    EXPECT_OK(fh);
    return fh.ok() ? *fh : 0;
  }
  // The object key of block `index` (the volume holds one file of one slice).
  std::string key_of(uint32_t index) {
    auto objs = store_->list("vol/chunks/");
    EXPECT_OK(objs);
    for (const auto& o : *objs) {
      if (CountingStore::block_index(o.key) == index) return o.key;
    }
    ADD_FAILURE() << "no block " << index;
    return "";
  }
  // A plain block as written before tables existed: flags 0, raw data after the header.
  static std::string tableless_block(const std::string& raw) {
    std::string b = "SLBK";
    put_u8(b, 1);
    put_u8(b, 0);
    put_u16(b, 0);
    put_u32(b, static_cast<uint32_t>(raw.size()));
    put_u32(b, static_cast<uint32_t>(raw.size()));
    put_u64(b, checksum64(raw));
    put_u64(b, 0);
    return b + raw;
  }
  // Options with a disk cache in a directory of its own (removed at TearDown).
  VfsOptions disk_cached() {
    VfsOptions o = opts();
    cache_dir_ = "/tmp/sluice-ranged-" + std::to_string(getpid());
    o.cache_dirs = {cache_dir_};
    o.cache_size = 1 << 30;
    o.free_space_ratio = 0;
    return o;
  }
  void TearDown() override {
    VfsTest::TearDown();
    if (!cache_dir_.empty()) std::filesystem::remove_all(cache_dir_);
  }
  // Reads the header, then a page of 20 of the 100 tensors of `r` out of order, in
  // blocks 0 and 1: a loader that is taken to load the whole file.
  void enter_twenty(Vfs& v, Ino ino, uint64_t fh, const std::string& data,
                    const std::vector<std::pair<uint64_t, uint64_t>>& r) {
    EXPECT_EQ(read(v, ino, fh, 0, 4096), data.substr(0, 4096));
    for (size_t i : {3, 25, 11, 19, 7, 23, 1, 15, 0, 2, 4, 5, 6, 8, 9, 10, 12, 13, 16, 17}) {
      const uint64_t a = r[i].first;
      ASSERT_LT(r[i].second, 2 * kBig);
      EXPECT_EQ(read(v, ino, fh, a, 4096), data.substr(a, 4096)) << "tensor " << i;
      v.wait_prefetches();
      if (i == 25) after_second_ = v.block_cache().stats().disk_hits;
    }
  }
  uint64_t after_second_ = 0;  // disk hits after the second tensor (in block 1)
  // The page-cache stores `stored` (file offset -> bytes) are the file `data` exactly:
  // no gap, no overlap, each range its bytes, up to the file's last (partial) page.
  static void expect_stored_whole(const std::map<uint64_t, std::string>& stored,
                                  const std::string& data) {
    uint64_t end = 0;
    for (const auto& [off, b] : stored) {
      EXPECT_EQ(off, end) << "a gap or an overlap before " << off;
      ASSERT_LE(off + b.size(), data.size());
      EXPECT_TRUE(b == data.substr(off, b.size())) << "bytes at " << off;
      end = off + b.size();
    }
    EXPECT_EQ(end, data.size());
  }

  // A model of 100 tensors of 300 KiB (8 blocks, about 13 tensors each) that a first
  // client read in order, so that every block is in the disk cache (disk_cached()).
  std::string disk_cached_model(std::vector<std::pair<uint64_t, uint64_t>>& r, Ino& ino) {
    std::string data = safetensors_file(std::vector<uint64_t>(100, 300 << 10), r);
    ino = put_file("model.safetensors", data);
    auto v = reader(disk_cached());
    EXPECT_EQ(read(*v, ino, open_ro(*v, ino), 0, data.size()), data);
    v->wait_prefetches();
    dynamic_cast<cache::TieredCache&>(v->block_cache()).drain();
    EXPECT_EQ(v->block_cache().stats().disk_written_blocks, 8u);
    EXPECT_OK(v->stop());
    return data;
  }
  // A file of `data` (whole blocks) that a first client read, so that every block is in
  // the disk cache (disk_cached()).
  Ino disk_cached_file(const std::string& data) {
    const Ino ino = put_file("f", data);
    auto v = reader(disk_cached());
    EXPECT_EQ(read(*v, ino, open_ro(*v, ino), 0, data.size()), data);
    v->wait_prefetches();
    dynamic_cast<cache::TieredCache&>(v->block_cache()).drain();
    EXPECT_EQ(v->block_cache().stats().disk_written_blocks, data.size() / kBig);
    EXPECT_OK(v->stop());
    return ino;
  }
  std::string cache_dir_;

  uint64_t stored_size(const std::string& key) {
    auto h = store_->head(key);
    EXPECT_OK(h);
    return h.ok() ? h->size : 0;
  }
  // Blocks 0 to n-1 were each fetched by one GET of the whole object.
  void expect_each_block_got_whole_once(uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
      const std::string key = key_of(i);
      EXPECT_EQ(counting_->gets()[key], 1) << i;
      EXPECT_EQ(counting_->bytes(key), stored_size(key)) << i;
    }
  }

  // A random small read on a volume whose blocks are compressed (or would be, if it
  // paid: these incompressible ones carry a table, but the volume never ranges) or
  // encrypted fetches the whole block.
  void expect_whole_block_reads(uint64_t seed) {
    const std::string data = pattern(2 * kBig, seed);
    const Ino ino = put_file("f", data);
    auto v = reader();
    const uint64_t fh = open_ro(*v, ino);
    const std::string key = key_of(1);
    const uint64_t a = kBig + 77777;
    EXPECT_EQ(read(*v, ino, fh, a, 4096), data.substr(a, 4096));
    EXPECT_EQ(v->stats().ranged_gets.load(), 0u);
    EXPECT_EQ(counting_->gets()[key], 1);
    EXPECT_EQ(counting_->bytes(key), stored_size(key));
    EXPECT_OK(v->stop());
  }

  // A model of four shards (m0-m3) of 60 tensors of 300 KiB (5 blocks each), opened for
  // reading by the threads `tids` (one per shard), whose headers were read and into each
  // of which `entries` tensors (in blocks 0 and 1) were read at random, shard after
  // shard, round by round. Then a read into a tensor in block 4 of the last shard, which
  // has nothing cached: returns what that read fetched.
  struct Fetched {
    uint64_t gets = 0, ranged = 0, parts = 0;
  };
  Fetched enter_shards(Vfs& v, const std::vector<uint32_t>& tids, size_t entries,
                       std::vector<uint64_t>* fhs = nullptr) {
    std::vector<std::pair<uint64_t, uint64_t>> r;
    const std::string data = safetensors_file(std::vector<uint64_t>(60, 300 << 10), r);
    EXPECT_EQ((data.size() - 1) / kBig, 4u);
    std::vector<Ino> inos;
    std::vector<uint64_t> open;
    for (size_t s = 0; s < tids.size(); s++) {
      inos.push_back(put_file("m" + std::to_string(s), data));
      meta::Context c = ctx_;
      c.pid = tids[s];
      auto fh = v.open(c, inos.back(), O_RDONLY);
      EXPECT_OK(fh);
      open.push_back(fh.ok() ? *fh : 0);
      EXPECT_EQ(read(v, inos.back(), open.back(), 0, 4096), data.substr(0, 4096));
      v.wait_prefetches();
    }
    const std::vector<size_t> order = {3, 25, 11, 19, 7, 23, 1, 15, 9, 21};
    EXPECT_LE(entries, order.size());
    for (size_t k = 0; k < entries; k++) {
      for (size_t s = 0; s < tids.size(); s++) {
        const uint64_t a = r[order[k]].first;
        EXPECT_LT(r[order[k]].second, 2 * kBig);
        EXPECT_EQ(read(v, inos[s], open[s], a, 4096), data.substr(a, 4096));
        v.wait_prefetches();
      }
    }
    size_t last = 0;  // the first tensor wholly in block 4
    while (last < r.size() && r[last].first < 4 * kBig) last++;
    EXPECT_LT(last, r.size());
    const auto [a, b] = r[last];
    const Fetched before{v.stats().object_gets.load(), v.stats().ranged_gets.load(),
                         v.stats().part_gets.load()};
    EXPECT_EQ(read(v, inos.back(), open.back(), a, 4096), data.substr(a, 4096));
    v.wait_prefetches();
    if (fhs != nullptr) *fhs = open;
    return {v.stats().object_gets.load() - before.gets,
            v.stats().ranged_gets.load() - before.ranged,
            v.stats().part_gets.load() - before.parts};
  }

  std::string compression_ = "none";
  bool encrypted_ = false;
  int parts_ = 1;
  std::shared_ptr<const object::BlockCipher> cipher_;
  std::shared_ptr<CountingStore> counting_;
};

TEST_F(RangedTest, SmallRandomReadsGetOnlyTheirSubBlocksAndTheTableOnce) {
  const std::string data = pattern(4 * kBig, 1);
  const Ino ino = put_file("f", data);
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  const std::string key = key_of(2);

  const uint64_t a = 2 * kBig + (1 << 20) + 100;
  EXPECT_EQ(read(*v, ino, fh, a, 4096), data.substr(a, 4096));
  EXPECT_EQ(counting_->gets(), (std::map<std::string, int>{{key, 2}}));
  EXPECT_EQ(counting_->bytes(key), kHead + kSub);
  EXPECT_EQ(v->stats().ranged_gets.load(), 2u);
  EXPECT_EQ(v->stats().ranged_get_bytes.load(), kHead + kSub);
  EXPECT_EQ(v->stats().object_gets.load(), 2u);

  // Another part of the block, straddling two sub-blocks: one GET, the table is kept.
  const uint64_t b = 2 * kBig + (3 << 20) + 5 * kSub - 100;
  EXPECT_EQ(read(*v, ino, fh, b, 200), data.substr(b, 200));
  EXPECT_EQ(counting_->gets(), (std::map<std::string, int>{{key, 3}}));
  EXPECT_EQ(counting_->bytes(key), kHead + 3 * kSub);

  // Both ranges again: from the cache.
  EXPECT_EQ(read(*v, ino, fh, a, 4096), data.substr(a, 4096));
  EXPECT_EQ(read(*v, ino, fh, b, 200), data.substr(b, 200));
  // The last, short sub-block of the file's last block.
  const uint64_t c = 4 * kBig - 300;
  EXPECT_EQ(read(*v, ino, fh, c, 1000), data.substr(c));
  v->wait_prefetches();
  EXPECT_EQ(counting_->gets()[key], 3);
  EXPECT_EQ(counting_->bytes(key_of(3)), kHead + kSub);
  EXPECT_EQ(counting_->total_bytes(), 2 * kHead + 4 * kSub);
  EXPECT_EQ(v->stats().prefetch_issued.load(), 0u);
  EXPECT_OK(v->stop());
}

TEST_F(RangedTest, ConcurrentMissesOnOneRangeShareOneFetch) {
  const std::string data = pattern(2 * kBig, 2);
  const Ino ino = put_file("f", data);
  auto v = reader();
  counting_->delay_ms = 50;
  constexpr int kReaders = 8;
  std::vector<uint64_t> fhs;
  for (int i = 0; i < kReaders; i++) fhs.push_back(open_ro(*v, ino));
  std::latch start(kReaders);
  std::vector<std::string> got(kReaders);
  std::vector<std::thread> ts;
  const uint64_t at = kBig + 7 * kSub;
  for (int i = 0; i < kReaders; i++) {
    ts.emplace_back([&, i] {
      start.arrive_and_wait();
      got[i] = read(*v, ino, fhs[i], at + 100 * i, 1000);
    });
  }
  for (auto& t : ts) t.join();
  for (int i = 0; i < kReaders; i++) EXPECT_EQ(got[i], data.substr(at + 100 * i, 1000)) << i;
  EXPECT_EQ(counting_->gets(), (std::map<std::string, int>{{key_of(1), 2}}));
  EXPECT_EQ(counting_->total_bytes(), kHead + kSub);
  EXPECT_OK(v->stop());
}

TEST_F(RangedTest, SequentialStreamFetchesWholeBlocks) {
  const std::string data = pattern(4 * kBig, 3);
  const Ino ino = put_file("f", data);
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  std::string all;
  for (uint64_t off = 0; off < data.size(); off += 256 << 10) {
    all += read(*v, ino, fh, off, 256 << 10);
  }
  EXPECT_EQ(all, data);
  v->wait_prefetches();
  EXPECT_EQ(v->stats().ranged_gets.load(), 0u);
  expect_each_block_got_whole_once(4);
  EXPECT_OK(v->stop());
}

// The kernel's readahead of a sequential reader, as a mount logged it: requests that
// grow to 1 MiB, then the file's short tail. Two are in flight at once, and the tail
// may be handled before the 1 MiB request ahead of it: the stream is still sequential
// (whole blocks, no ranges), though the tail lands a whole request past its end.
TEST_F(RangedTest, AStreamsShortTailOvertakingTheRequestBeforeItStaysSequential) {
  const std::string data = pattern(2 * kBig + (1 << 20), 4);
  const Ino ino = put_file("f", data);
  VfsOptions o = opts();
  o.readahead_blocks = 0;  // as `--prefetch 0`: nothing fetched ahead of the reads
  auto v = reader(o);
  const uint64_t fh = open_ro(*v, ino);
  std::vector<std::pair<uint64_t, uint64_t>> reqs = {{0, 32 << 10}};
  for (uint64_t len : {128 << 10, 256 << 10, 512 << 10}) {
    reqs.emplace_back(reqs.back().first + reqs.back().second, len);
  }
  while (reqs.back().first + reqs.back().second + (1 << 20) < data.size()) {
    reqs.emplace_back(reqs.back().first + reqs.back().second, 1 << 20);
  }
  const uint64_t tail = reqs.back().first + reqs.back().second;
  // The tail (96 KiB) is too short for its own slack (4 times its length) to reach back
  // over the 1 MiB request it overtakes.
  ASSERT_LT(4 * (data.size() - tail), 1u << 20);
  ASSERT_GT(data.size(), tail);
  reqs.emplace_back(tail, data.size() - tail);
  std::swap(reqs[reqs.size() - 2], reqs.back());
  std::string all(data.size(), '\0');
  for (const auto& [off, len] : reqs) {
    const std::string got = read(*v, ino, fh, off, len);
    ASSERT_EQ(got.size(), len) << off;
    all.replace(off, len, got);
  }
  EXPECT_EQ(all, data);
  v->wait_prefetches();
  EXPECT_EQ(v->stats().ranged_gets.load(), 0u);
  expect_each_block_got_whole_once(3);
  EXPECT_OK(v->stop());
}

TEST_F(RangedTest, AReadContinuingAnotherHandlesStreamFromTheStartGetsWholeBlocks) {
  // Processes reading one file at once share the kernel's page cache: each one's reads
  // skip what the others read, so they jump. Readahead off, so only the read fetches.
  const std::string data = pattern(4 * kBig, 12);
  const Ino ino = put_file("f", data);
  VfsOptions o = opts();
  o.readahead_blocks = 0;
  auto v = reader(o);
  const uint64_t fa = open_ro(*v, ino), fb = open_ro(*v, ino);
  for (uint64_t off = 0; off < 2 * kBig; off += 256 << 10) {
    EXPECT_EQ(read(*v, ino, fa, off, 256 << 10), data.substr(off, 256 << 10));
  }
  EXPECT_EQ(read(*v, ino, fb, 0, 4096), data.substr(0, 4096));
  // b's next read starts where a's stream ended, far from b's own last read: whole.
  const uint64_t at = 2 * kBig + 100;
  EXPECT_EQ(read(*v, ino, fb, at, 4096), data.substr(at, 4096));
  EXPECT_EQ(v->stats().ranged_gets.load(), 0u);
  EXPECT_EQ(counting_->bytes(key_of(2)), stored_size(key_of(2)));
  // A handle that jumps near a stream that did not begin at the file's start stays
  // random: a ranged read.
  const uint64_t fc = open_ro(*v, ino), fd = open_ro(*v, ino);
  const uint64_t c = 3 * kBig + kSub;
  EXPECT_EQ(read(*v, ino, fc, c, 4096), data.substr(c, 4096));
  EXPECT_EQ(read(*v, ino, fd, 0, 4096), data.substr(0, 4096));
  EXPECT_EQ(read(*v, ino, fd, c + 4096, 4096), data.substr(c + 4096, 4096));
  EXPECT_EQ(v->stats().ranged_gets.load(), 2u);  // table + c's sub-block; fd's was cached
  EXPECT_EQ(counting_->bytes(key_of(3)), kHead + kSub);
  EXPECT_OK(v->stop());
}

TEST_F(RangedTest, ReadOfMoreThanHalfABlockFetchesItWhole) {
  const std::string data = pattern(4 * kBig, 4);
  const Ino ino = put_file("f", data);
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  // 2.5 MiB of block 1: whole.
  const uint64_t a = kBig + 100000, an = 5 << 19;
  EXPECT_EQ(read(*v, ino, fh, a, an), data.substr(a, an));
  EXPECT_EQ(v->stats().ranged_gets.load(), 0u);
  EXPECT_EQ(counting_->bytes(key_of(1)), stored_size(key_of(1)));
  // 1.5 MiB of block 3 (24 sub-blocks), on a new handle (the old one would see a
  // stream): ranged.
  const uint64_t b = 3 * kBig + 2 * kSub, bn = 3 << 19;
  EXPECT_EQ(read(*v, ino, open_ro(*v, ino), b, bn), data.substr(b, bn));
  EXPECT_EQ(v->stats().ranged_gets.load(), 2u);
  EXPECT_EQ(counting_->bytes(key_of(3)), kHead + bn);
  EXPECT_OK(v->stop());
}

TEST_F(RangedTest, DamagedSubBlockIsRefetchedThenEioAndOthersStillRead) {
  const std::string data = pattern(2 * kBig, 5);
  const Ino ino = put_file("f", data);
  const std::string key = key_of(1);
  auto stored = store_->get(key);
  ASSERT_OK(stored);
  (*stored)[kHead + 10 * kSub + 5] ^= 0x20;  // sub-block 10 of block 1
  ASSERT_OK(store_->put(key, *stored));
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  std::string buf(1000, '\0');
  auto r = v->read(ctx_, ino, fh, kBig + 10 * kSub + 100, buf.data(), buf.size());
  ASSERT_FALSE(r.ok()) << "damaged data returned";
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_EQ(to_errno(r.status().code()), EIO);
  EXPECT_EQ(counting_->gets()[key], 4);  // the table, then the range three times
  // The other sub-blocks of the block are fine.
  const uint64_t ok_at = kBig + 11 * kSub + 100;
  EXPECT_EQ(read(*v, ino, fh, ok_at, 1000), data.substr(ok_at, 1000));
  EXPECT_EQ(counting_->gets()[key], 5);
  EXPECT_OK(v->stop());
}

TEST_F(RangedTest, BlockWithoutATableIsReadWhole) {
  const std::string data = pattern(2 * kBig, 6);
  const Ino ino = put_file("f", data);
  const std::string key = key_of(1);
  // Block 1 as written before tables existed.
  const std::string old = tableless_block(data.substr(kBig, kBig));
  ASSERT_OK(store_->put(key, old));
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  const uint64_t a = kBig + 12345;
  EXPECT_EQ(read(*v, ino, fh, a, 3000), data.substr(a, 3000));
  // The header (and the range, in parallel), then the whole block.
  EXPECT_EQ(counting_->gets()[key], 3);
  EXPECT_EQ(counting_->bytes(key), kHead + kSub + old.size());
  const uint64_t b = kBig + (3 << 20);
  EXPECT_EQ(read(*v, ino, fh, b, 3000), data.substr(b, 3000));
  EXPECT_EQ(counting_->gets()[key], 3);  // cached whole
  EXPECT_OK(v->stop());
}

// A block the disk cache holds (this process wrote it there) and memory does not is read
// from its cache file: the read's pieces name the file instead of bytes in memory, and
// nothing is fetched again. With --verify-cache-checksum full every read verifies the
// block in memory instead.
// Blocks this client writes go to its disk cache under the checksum their encoding
// computed: after a restart they pass the disk tier's check, and are read with no GET.
TEST_F(RangedTest, WrittenBlocksReachTheDiskCacheUnderTheirChecksum) {
  const std::string data = pattern(2 * kBig + 5000, 21);
  Ino ino = 0;
  {
    auto w = mount(disk_cached());
    auto [i, fh] = create(*w, "written");
    ino = i;
    ASSERT_TRUE(write(*w, ino, fh, 0, data));
    ASSERT_OK(w->flush(ctx_, ino, fh));
    ASSERT_OK(w->release(ino, fh));
    dynamic_cast<cache::TieredCache&>(w->block_cache()).drain();
    EXPECT_EQ(w->block_cache().stats().disk_written_blocks, 3u);
    ASSERT_OK(w->stop());
  }
  auto v = reader(disk_cached());  // the same cache directory
  EXPECT_TRUE(read(*v, ino, open_ro(*v, ino), 0, data.size()) == data);
  v->wait_prefetches();
  EXPECT_EQ(v->block_cache().stats().disk_corrupt, 0u);
  EXPECT_TRUE(counting_->gets().empty());
}

TEST_F(RangedTest, BlocksOnlyOnDiskAreReadFromTheirCacheFiles) {
  const std::string data = pattern(4 * kBig, 9);
  const Ino ino = put_file("f", data);
  VfsOptions o = disk_cached();
  o.memory_cache_size = kBig + (1 << 20);  // one block
  auto v = reader(o);
  EXPECT_EQ(read(*v, ino, open_ro(*v, ino), 0, data.size()), data);
  v->wait_prefetches();
  dynamic_cast<cache::TieredCache&>(v->block_cache()).drain();
  const size_t gets = counting_->gets().size();
  ASSERT_EQ(gets, 4u);
  EXPECT_EQ(v->stats().read_file_bytes.load(), 0u);  // all four came from the store

  const uint64_t fh = open_ro(*v, ino);
  size_t file_pieces = 0;
  for (uint64_t off : {uint64_t{0}, uint64_t{kBig - 5000}, uint64_t{2 * kBig + 12345}}) {
    ReadData d;
    ASSERT_OK(v->read_pieces(ctx_, ino, fh, off, 1 << 20, d));
    ASSERT_EQ(d.size, 1u << 20);
    for (const ReadPiece& p : d.pieces) {
      if (p.data == nullptr) {
        file_pieces++;
        EXPECT_GE(p.fd, 0);
      }
    }
    std::string got(d.size, '\0');
    ASSERT_EQ(d.copy_to(got.data(), 0, got.size()), got.size());
    EXPECT_EQ(got, data.substr(off, 1 << 20)) << off;
  }
  EXPECT_GE(file_pieces, 2u);
  EXPECT_GE(v->stats().read_file_bytes.load(), 1u << 20);
  EXPECT_GE(v->block_cache().stats().disk_file_opens, 2u);
  EXPECT_EQ(read(*v, ino, fh, 0, data.size()), data);
  EXPECT_EQ(counting_->gets().size(), gets);

  // Without splice the FUSE layer reads the file pieces itself (read_files). A cache file
  // that fails to read then (here: cut short after it was opened) is read again without
  // files: verified, found bad, removed and fetched from the store.
  auto& tiered = dynamic_cast<cache::TieredCache&>(v->block_cache());
  uint32_t index = 0;  // a block read from its file (memory may hold one of them)
  ReadData d;
  for (; index < 4; index++) {
    ASSERT_OK(v->read_pieces(ctx_, ino, fh, index * uint64_t{kBig} + 4096, 1 << 20, d));
    if (!d.files.empty()) break;
  }
  ASSERT_LT(index, 4u);
  const uint64_t at = index * uint64_t{kBig} + 4096;
  std::string buf;
  ASSERT_TRUE(d.read_files(buf));
  EXPECT_TRUE(d.files.empty());
  std::string got(d.size, '\0');
  ASSERT_EQ(d.copy_to(got.data(), 0, got.size()), got.size());
  EXPECT_EQ(got, data.substr(at, 1 << 20));
  ASSERT_OK(v->read_pieces(ctx_, ino, fh, at, 1 << 20, d));
  ASSERT_FALSE(d.files.empty());
  std::filesystem::resize_file(tiered.disk().path_of(key_of(index)), 100);
  EXPECT_FALSE(d.read_files(buf));
  ASSERT_OK(v->read_pieces(ctx_, ino, fh, at, 1 << 20, d, /*files=*/false));
  EXPECT_TRUE(d.files.empty());
  ASSERT_EQ(d.copy_to(got.data(), 0, got.size()), got.size());
  EXPECT_EQ(got, data.substr(at, 1 << 20));
  EXPECT_EQ(v->block_cache().stats().disk_corrupt, 1u);
  EXPECT_EQ(counting_->gets()[key_of(index)], 2);  // fetched again
  EXPECT_OK(v->stop());
  v.reset();

  o.cache_verify = cache::CacheVerify::kFull;
  v = reader(o);
  const uint64_t fh2 = open_ro(*v, ino);
  for (uint64_t off : {uint64_t{0}, uint64_t{2 * kBig + 12345}}) {
    ReadData d;
    ASSERT_OK(v->read_pieces(ctx_, ino, fh2, off, 1 << 20, d));
    for (const ReadPiece& p : d.pieces) EXPECT_NE(p.data, nullptr) << off;
  }
  EXPECT_EQ(read(*v, ino, fh2, 0, data.size()), data);
  EXPECT_EQ(v->stats().read_file_bytes.load(), 0u);
  EXPECT_EQ(v->block_cache().stats().disk_file_opens, 0u);
  EXPECT_GE(v->block_cache().stats().disk_hits, 4u);
  EXPECT_TRUE(counting_->gets().empty());
  EXPECT_OK(v->stop());
}

// After a restart (--verify-cache-checksum once: no file checked yet), a read of a block
// on the disk checks its file where it lies and reads from it, once checked: the block is
// not lifted into memory and nothing is fetched. A file found bad is removed and its
// block fetched from the store.
TEST_F(RangedTest, AReadOfADiskBlockNotCheckedSinceARestartChecksItWhereItLies) {
  const std::string data = pattern(4 * kBig, 11);
  const Ino ino = disk_cached_file(data);
  VfsOptions o = disk_cached();
  o.readahead_blocks = 0;  // only the blocks read
  auto v = reader(o);      // a restart, with its own count of GETs
  auto& tiered = dynamic_cast<cache::TieredCache&>(v->block_cache());
  {
    // Block 3's file goes bad: one byte of its data changed.
    std::fstream f(tiered.disk().path_of(key_of(3)), std::ios::in | std::ios::out);
    f.seekp(1000);
    f.put('\x5a' ^ data[3 * kBig + 1000]);
  }
  const uint64_t fh = open_ro(*v, ino);
  auto read_at = [&](uint64_t off, bool want_files) {
    ReadData d;
    ASSERT_OK(v->read_pieces(ctx_, ino, fh, off, 8192, d));
    EXPECT_EQ(d.files.empty(), !want_files) << off;
    std::string got(d.size, '\0');
    ASSERT_EQ(d.copy_to(got.data(), 0, got.size()), got.size());
    EXPECT_EQ(got, data.substr(off, 8192)) << off;
  };
  read_at(2 * kBig + 5000, true);
  read_at(kBig + 100, true);
  EXPECT_EQ(v->block_cache().stats().disk_hits, 2u);  // each file checked once
  read_at(2 * kBig + 20000, true);                    // checked already: no second check
  EXPECT_EQ(v->block_cache().stats().disk_hits, 2u);
  EXPECT_EQ(v->block_cache().stats().blocks, 0u);  // memory holds none of them
  EXPECT_EQ(v->stats().read_file_bytes.load(), 3u * 8192);
  EXPECT_TRUE(counting_->gets().empty());
  // The bad file: removed, counted, and its block fetched instead.
  read_at(3 * kBig + 100, false);
  EXPECT_EQ(v->block_cache().stats().disk_corrupt, 1u);
  EXPECT_FALSE(std::filesystem::exists(tiered.disk().path_of(key_of(3))));
  EXPECT_EQ(counting_->gets()[key_of(3)], 1);
  EXPECT_EQ(counting_->gets().size(), 1u);
  EXPECT_OK(v->stop());
}

// A stream's readahead of blocks on the disk readies them there (checked once, pages read
// ahead) instead of lifting them into memory: after a restart, a file read from its start
// comes wholly from its cache files, each checked once, nothing fetched.
TEST_F(RangedTest, ReadaheadOfDiskBlocksReadiesThemWhereTheyLie) {
  const std::string data = pattern(6 * kBig, 13);
  const Ino ino = disk_cached_file(data);
  auto v = reader(disk_cached());  // a restart, with its own count of GETs
  const uint64_t fh = open_ro(*v, ino);
  std::string got;
  for (uint64_t off = 0; off < data.size(); off += 16384) {
    got += read(*v, ino, fh, off, 16384);
    if (off == 2 * kBig) v->wait_prefetches();  // the readahead ahead of the reader
  }
  EXPECT_EQ(got, data);
  v->wait_prefetches();
  const cache::CacheStats st = v->block_cache().stats();
  EXPECT_EQ(st.disk_hits, 6u);  // each file checked once
  EXPECT_EQ(st.blocks, 0u);     // none lifted into memory
  EXPECT_EQ(v->stats().read_file_bytes.load(), data.size());
  EXPECT_TRUE(counting_->gets().empty());
  EXPECT_OK(v->stop());
}

TEST_F(RangedTest, SubBlocksNeverReachTheDiskCache) {
  const std::string data = pattern(2 * kBig, 7);
  const Ino ino = put_file("f", data);
  const std::string dir = "/tmp/sluice-ranged-" + std::to_string(getpid());
  VfsOptions o = opts();
  o.cache_dirs = {dir};
  o.cache_size = 1 << 30;
  o.free_space_ratio = 0;
  o.disk_write_queue = 64 << 20;
  auto v = reader(o);
  auto* tiered = dynamic_cast<cache::TieredCache*>(&v->block_cache());
  ASSERT_NE(tiered, nullptr);
  const uint64_t fh = open_ro(*v, ino);
  const uint64_t a = kBig + 40000;
  EXPECT_EQ(read(*v, ino, fh, a, 4096), data.substr(a, 4096));
  EXPECT_EQ(v->stats().ranged_gets.load(), 2u);
  tiered->drain();
  EXPECT_EQ(v->block_cache().stats().disk_written_blocks, 0u);
  EXPECT_FALSE(v->block_cache().contains(key_of(1)));
  // A whole block read (a new handle reading from 0: a stream) does go to disk.
  EXPECT_EQ(read(*v, ino, open_ro(*v, ino), 0, 4096), data.substr(0, 4096));
  v->wait_prefetches();
  tiered->drain();
  EXPECT_GE(v->block_cache().stats().disk_written_blocks, 1u);
  EXPECT_TRUE(tiered->disk().contains(key_of(0)));
  EXPECT_OK(v->stop());
  v.reset();
  std::filesystem::remove_all(dir);
}

TEST_F(RangedTest, TensorPrefetchOfASmallTensorFetchesOnlyItsSubBlocks) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  const std::string data = safetensors_file({9 << 20, 300 << 10, 6 << 20}, r);
  const Ino ino = put_file("model.safetensors", data);
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  EXPECT_EQ(read(*v, ino, fh, 0, 4096), data.substr(0, 4096));  // the header: whole block 0
  v->wait_prefetches();  // and block 1, the sequential window of that read
  const auto [t0, t1] = r[1];
  ASSERT_EQ(t0 / kBig, 2u);
  ASSERT_EQ(t1 / kBig, 2u);
  EXPECT_EQ(read(*v, ino, fh, t0, 4096), data.substr(t0, 4096));
  v->wait_prefetches();
  const std::string key = key_of(2);
  // The table, and one GET of the sub-blocks from the read's through the tensor's end
  // (the read takes the rest of its tensor in its own block): nothing else of block 2.
  const uint64_t first = (t0 - 2 * kBig) / kSub, end = (t1 - 2 * kBig + kSub - 1) / kSub;
  EXPECT_EQ(counting_->bytes(key), kHead + (end - first) * kSub);
  EXPECT_EQ(counting_->gets()[key], 2);
  EXPECT_EQ(counting_->gets().count(key_of(3)), 0u);
  // Reading the whole tensor (now a sequential stream) uses the cached sub-blocks.
  EXPECT_EQ(read(*v, ino, fh, t0, t1 - t0), data.substr(t0, t1 - t0));
  v->wait_prefetches();
  EXPECT_EQ(counting_->gets()[key], 2);
  EXPECT_OK(v->stop());
}

// A loader that has gone into a fifth of a file's tensors out of order (at least 8) is
// loading all of it (shuffled): from then on its misses fetch whole blocks, so each block
// is fetched once instead of once per tensor in it.
TEST_F(RangedTest, ALoaderGoingIntoManyTensorsOutOfOrderGetsWholeBlocks) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  // 40 tensors of 300 KiB: about 13 per 4 MiB block.
  const std::string data = safetensors_file(std::vector<uint64_t>(40, 300 << 10), r);
  const Ino ino = put_file("model.safetensors", data);
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  EXPECT_EQ(read(*v, ino, fh, 0, 4096), data.substr(0, 4096));  // the header
  // Tensors out of order in blocks 0 and 1 (tensors 0-26): each a ranged miss.
  const std::vector<size_t> order = {3, 25, 11, 19, 7, 23, 1, 15};
  for (size_t i : order) {
    const auto [a, b] = r[i];
    EXPECT_EQ(read(*v, ino, fh, a, 4096), data.substr(a, 4096)) << "tensor " << i;
    v->wait_prefetches();
  }
  const uint64_t ranged = v->stats().ranged_gets.load();
  EXPECT_GT(ranged, 0u);  // tables and data ranges
  EXPECT_EQ(counting_->gets().count(key_of(2)), 0u);
  // The ninth, in block 2, which has nothing cached: 9 of 40 tensors is past a fifth, so
  // the miss fetches the block whole.
  const auto [a, b] = r[33];
  ASSERT_EQ(a / kBig, 2u);
  const std::string key = key_of(a / kBig);
  const auto before = counting_->gets()[key];
  EXPECT_EQ(read(*v, ino, fh, a, 4096), data.substr(a, 4096));
  v->wait_prefetches();
  EXPECT_EQ(v->stats().ranged_gets.load(), ranged);
  EXPECT_EQ(counting_->gets()[key], before + 1);
  // Every tensor reads back exactly.
  for (size_t i = 0; i < r.size(); i++) {
    const auto [x, y] = r[i];
    EXPECT_EQ(read(*v, ino, fh, x, y - x), data.substr(x, y - x)) << "tensor " << i;
  }
  EXPECT_OK(v->stop());
}

// A loader that touches every tensor of a model in its own order spreads its entries over
// the shards: one process's entries are pooled, and at an eighth of the tensors of the
// shards it has entered (here 33 of 240, 8 or 9 a shard, under a fifth of any one) all
// its handles are taken to load their files whole, so a miss into a cold block of a shard
// fetches the block whole. The process is found from the thread that opened each file.
TEST_F(RangedTest, EntriesPooledOverAProcesssShardsGetItWholeBlocks) {
  auto v = reader();
  const uint32_t me = static_cast<uint32_t>(getpid());
  std::latch done(1);
  std::atomic<uint32_t> other{0};
  std::thread t([&] {
    other = static_cast<uint32_t>(gettid());
    done.wait();
  });
  while (other.load() == 0) std::this_thread::yield();
  const Fetched f = enter_shards(*v, {me, me, other.load(), other.load()}, 8);
  done.count_down();
  t.join();
  EXPECT_EQ(v->pooled_entries(me), std::make_pair(size_t{33}, size_t{240}));
  EXPECT_EQ(f.ranged, 0u);
  EXPECT_EQ(f.gets, 1u);
  EXPECT_OK(v->stop());
}

// A lazy loader that touches a tenth of a model's tensors stays under the pooled rule:
// its misses stay ranged.
TEST_F(RangedTest, ATenthOfAModelsTensorsPooledStaysRanged) {
  auto v = reader();
  const uint32_t me = static_cast<uint32_t>(getpid());
  const Fetched f = enter_shards(*v, {me, me, me, me}, 6);
  EXPECT_EQ(v->pooled_entries(me), std::make_pair(size_t{25}, size_t{240}));
  EXPECT_GT(f.ranged, 0u);
  EXPECT_OK(v->stop());
}

// Entries are pooled per process only: four processes with as many entries, one shard
// each, are judged by the per-file rule (9 of 60 is under a fifth), and stay ranged.
TEST_F(RangedTest, EntriesOfDifferentProcessesAreNotPooled) {
  auto v = reader();
  // Thread ids no process has (pid_max is at most 2^22): each is a process of its own.
  const uint32_t p = 1u << 30;
  const Fetched f = enter_shards(*v, {p, p + 1, p + 2, p + 3}, 8);
  EXPECT_EQ(v->pooled_entries(p + 3), std::make_pair(size_t{9}, size_t{60}));
  EXPECT_EQ(v->pooled_entries(p), std::make_pair(size_t{8}, size_t{60}));
  EXPECT_GT(f.ranged, 0u);
  EXPECT_OK(v->stop());
}

// Readers the mount cannot see (thread id 0: another PID namespace) are not pooled: one
// pool would mix readers of every model. Their shards are judged one by one.
TEST_F(RangedTest, ReadersWithoutAThreadIdAreNotPooled) {
  auto v = reader();
  const Fetched f = enter_shards(*v, {0, 0, 0, 0}, 8);
  EXPECT_EQ(v->pooled_entries(0), std::make_pair(size_t{0}, size_t{0}));
  EXPECT_GT(f.ranged, 0u);
  EXPECT_OK(v->stop());
}

// Closing a handle takes its share out of its process's pool.
TEST_F(RangedTest, ReleaseTakesAHandlesEntriesOutOfThePool) {
  auto v = reader();
  const uint32_t me = static_cast<uint32_t>(getpid());
  std::vector<uint64_t> fhs;
  enter_shards(*v, {me, me, me, me}, 6, &fhs);
  ASSERT_EQ(fhs.size(), 4u);
  EXPECT_EQ(v->pooled_entries(me), std::make_pair(size_t{25}, size_t{240}));
  const Ino m0 = lookup(*v, "m0"), m3 = lookup(*v, "m3");
  EXPECT_OK(v->release(m0, fhs[0]));
  EXPECT_EQ(v->pooled_entries(me), std::make_pair(size_t{19}, size_t{180}));
  EXPECT_OK(v->release(m3, fhs[3]));
  EXPECT_EQ(v->pooled_entries(me), std::make_pair(size_t{12}, size_t{120}));
  EXPECT_OK(v->release(lookup(*v, "m1"), fhs[1]));
  EXPECT_OK(v->release(lookup(*v, "m2"), fhs[2]));
  EXPECT_EQ(v->pooled_entries(me), std::make_pair(size_t{0}, size_t{0}));
  EXPECT_OK(v->stop());
}

// Fetching a whole file ahead for a shuffled loader leaves blocks already in the disk
// cache there: lifting them into memory in file order would evict what the loader reads.
// It readies them instead (verified once, as the default --verify-cache-checksum once
// needs after a restart), so that the loader's reads take them from their files. And it
// ends: wait_prefetches() returns (the file does not end on a block boundary; its last
// block was once queued again and again).
TEST_F(RangedTest, WholeFileReadaheadReadiesDiskCachedBlocksWithoutLiftingThem) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  Ino ino = 0;
  const std::string data = disk_cached_model(r, ino);
  // A restart: memory empty, the disk cache kept, nothing trusted.
  auto v = reader(disk_cached());
  const uint64_t fh = open_ro(*v, ino);
  enter_twenty(*v, ino, fh, data, r);
  v->wait_prefetches();
  // The reads and the tensors' prefetches checked the blocks they needed where they lie;
  // the whole-file readahead verified the rest on the disk and left them there. Each
  // block was read off the disk once, none was lifted into memory, and nothing came from
  // the store.
  EXPECT_GE(after_second_, 2u);
  const cache::CacheStats st = v->block_cache().stats();
  EXPECT_EQ(st.disk_hits, 8u);
  EXPECT_EQ(st.blocks, 0u);
  EXPECT_EQ(st.disk_corrupt, 0u);
  EXPECT_EQ(counting_->total_bytes(), 0u);
  // Their reads take them from their files, as they are.
  EXPECT_EQ(read(*v, ino, fh, 0, data.size()), data);
  EXPECT_GE(v->stats().read_file_bytes.load(), data.size() - 3 * kBig);
  EXPECT_EQ(v->block_cache().stats().disk_hits, 8u);
  EXPECT_EQ(counting_->total_bytes(), 0u);
  EXPECT_OK(v->stop());
}

// With the page store on too, the whole-file readahead readies the disk-cached blocks
// and pushes their bytes into the kernel's page cache of the file, read from their
// files: nothing is lifted into memory or fetched, and the stores are exactly the file's
// bytes, each once, at their offsets.
TEST_F(RangedTest, WholeFileReadaheadStoresDiskCachedBlocksFromTheirFiles) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  Ino ino = 0;
  const std::string data = disk_cached_model(r, ino);
  auto v = reader(disk_cached());  // a restart, with its own count of GET bytes
  std::mutex mu;
  std::map<uint64_t, std::string> stored;  // file offset -> bytes
  uint64_t stores = 0;
  v->set_page_store([&](Ino i, uint64_t off, std::string_view bytes) {
    EXPECT_EQ(i, ino);
    std::lock_guard lk(mu);
    stored[off] = std::string(bytes);
    stores++;
    return true;
  });
  const uint64_t fh = open_ro(*v, ino);
  enter_twenty(*v, ino, fh, data, r);
  v->wait_prefetches();
  v->wait_page_stores();
  EXPECT_EQ(counting_->total_bytes(), 0u);  // all from the disk cache
  EXPECT_EQ(v->block_cache().stats().disk_hits, 8u);
  EXPECT_EQ(v->block_cache().stats().blocks, 0u);  // not lifted into memory
  {
    std::lock_guard lk(mu);
    EXPECT_EQ(stores, stored.size());  // no range stored twice
    expect_stored_whole(stored, data);
    EXPECT_EQ(v->stats().page_store_bytes.load(), data.size());
  }
  EXPECT_EQ(read(*v, ino, fh, 0, data.size()), data);
  EXPECT_OK(v->stop());
}

// With a store from files set too (the FUSE layer's, which splices), the readied blocks'
// bytes go to it as ranges of their open cache files, not through a buffer: the ranges
// hold exactly the file's bytes, each once, at their offsets.
TEST_F(RangedTest, WholeFileReadaheadHandsDiskCachedBlocksToTheStoreFromFiles) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  Ino ino = 0;
  const std::string data = disk_cached_model(r, ino);
  auto v = reader(disk_cached());
  std::mutex mu;
  std::map<uint64_t, std::string> stored;  // file offset -> bytes
  uint64_t from_memory = 0;
  v->set_page_store(
      [&](Ino, uint64_t, std::string_view) {
        std::lock_guard lk(mu);
        from_memory++;
        return true;
      },
      [&](Ino i, uint64_t off, int fd, uint64_t fd_off, uint64_t len) {
        EXPECT_EQ(i, ino);
        std::string b(len, '\0');
        EXPECT_EQ(pread(fd, b.data(), len, static_cast<off_t>(fd_off)), static_cast<ssize_t>(len));
        std::lock_guard lk(mu);
        EXPECT_TRUE(stored.emplace(off, std::move(b)).second) << "stored twice: " << off;
        return true;
      });
  enter_twenty(*v, ino, open_ro(*v, ino), data, r);
  v->wait_prefetches();
  v->wait_page_stores();
  EXPECT_EQ(counting_->total_bytes(), 0u);  // all from the disk cache
  std::lock_guard lk(mu);
  EXPECT_EQ(from_memory, 0u);
  expect_stored_whole(stored, data);
  EXPECT_EQ(v->stats().page_store_bytes.load(), data.size());
  EXPECT_OK(v->stop());
}

// Blocks the whole-file readahead fetches go to the kernel's page cache of the file
// (the page store the FUSE layer sets): whole pages, at their file offsets, exactly the
// file's bytes, ending with the file's last partial page; none once the file changed.
TEST_F(RangedTest, WholeFileReadaheadStoresItsBlocksInThePageCache) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  // 100 tensors of 300 KiB plus 1000 bytes: 8 blocks, the file ends off a page boundary.
  std::vector<uint64_t> sizes(100, 300 << 10);
  sizes.back() += 1000;
  const std::string data = safetensors_file(sizes, r);
  ASSERT_NE(data.size() % 4096, 0u);
  const Ino ino = put_file("model.safetensors", data);
  auto v = reader(disk_cached());
  std::mutex mu;
  std::map<uint64_t, std::string> stored;  // file offset -> bytes
  v->set_page_store([&](Ino i, uint64_t off, std::string_view bytes) {
    EXPECT_EQ(i, ino);
    std::lock_guard lk(mu);
    stored[off] = std::string(bytes);
    return true;
  });
  enter_twenty(*v, ino, open_ro(*v, ino), data, r);
  v->wait_page_stores();
  std::lock_guard lk(mu);
  ASSERT_FALSE(stored.empty());
  uint64_t bytes = 0, end = 0;
  for (const auto& [off, b] : stored) {
    EXPECT_EQ(off % 4096, 0u) << off;
    EXPECT_TRUE(b.size() % 4096 == 0 || off + b.size() == data.size()) << off;
    ASSERT_LE(off + b.size(), data.size());
    EXPECT_TRUE(b == data.substr(off, b.size())) << "bytes at " << off;
    bytes += b.size();
    end = std::max<uint64_t>(end, off + b.size());
  }
  EXPECT_EQ(end, data.size());  // up to the file's last byte
  EXPECT_EQ(v->stats().page_store_bytes.load(), bytes);
  // The blocks after those the reads went to (2 to 7) all went, whole.
  for (uint64_t b = 2 * kBig; b < data.size(); b += kBig) {
    EXPECT_EQ(stored.count(b), 1u) << "block at " << b;
  }
  EXPECT_OK(v->stop());
}

// Stopping the page store drops what is queued; a store under way (blocked in the
// kernel, here in the callback) is waited for only when asked, and none runs after.
TEST_F(RangedTest, StoppingThePageStoreWaitsForAStoreUnderWayOnlyWhenAsked) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  const std::string data = safetensors_file(std::vector<uint64_t>(100, 300 << 10), r);
  const Ino ino = put_file("model.safetensors", data);
  auto v = reader(disk_cached());
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  int calls = 0;
  v->set_page_store([&](Ino, uint64_t, std::string_view) {
    std::unique_lock lk(mu);
    calls++;
    entered = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
    return true;
  });
  enter_twenty(*v, ino, open_ro(*v, ino), data, r);
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return entered; }));
  }
  EXPECT_FALSE(v->stop_page_store(/*wait=*/false));  // one is under way
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(v->stop_page_store(/*wait=*/true));
  EXPECT_EQ(calls, 1);  // the rest were dropped
  EXPECT_GT(v->stats().page_store_dropped.load(), 0u);
  EXPECT_OK(v->stop());
}

// A page fault's read-around starts half its length before the faulting page, in the
// tensor before; the faulted tensor is the one holding the middle page's last byte. Its
// rest, through the end of the kernel's read window holding its end, is fetched with the
// read, here into the next block.
TEST_F(RangedTest, AFaultsReadAroundPrefetchesTheFaultedTensorThroughItsLastWindow) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  // Tensor 1 begins just past 9 MiB (after the header), off a page boundary, and ends
  // near the end of block 2.
  const std::string data = safetensors_file({9 << 20, (26 << 20) / 10, 6 << 20}, r);
  const Ino ino = put_file("model.safetensors", data);
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  EXPECT_EQ(read(*v, ino, fh, 0, 4096), data.substr(0, 4096));  // the header
  v->wait_prefetches();
  const auto [t0, t1] = r[1];
  ASSERT_NE(t0 % 4096, 0u);
  ASSERT_EQ(t0 / kBig, 2u);
  ASSERT_EQ(t1 / kBig, 2u);
  // The read-around of a fault on t0: 1 MiB centred on its page, from inside tensor 0.
  const uint64_t len = 1 << 20, off = t0 / 4096 * 4096 - len / 2;
  // The kernel's windows go on from there; the one holding t1 reaches into block 3.
  const uint64_t window_end = off + (t1 - off + len - 1) / len * len;
  ASSERT_GT(window_end, 3 * kBig);
  const auto before = counting_->gets()[key_of(2)];
  EXPECT_EQ(read(*v, ino, open_ro(*v, ino), off, len), data.substr(off, len));
  v->wait_prefetches();
  // Block 2 from `off` on is most of it: one GET of it whole. Block 3 up to the window's
  // end: its table and one range. Guessing tensor 0 (the middle page's first byte) would
  // fetch the read's 1 MiB ranged and nothing of tensor 1 ahead; stopping at t1 would
  // leave block 3 to the kernel's last window read.
  EXPECT_EQ(counting_->gets()[key_of(2)], before + 1);
  EXPECT_EQ(counting_->gets()[key_of(3)], 2);
  EXPECT_EQ(counting_->bytes(key_of(3)), kHead + (window_end - 3 * kBig + kSub - 1) / kSub * kSub);
  // The loader moving through tensor 1 and the kernel reading its windows: no GET.
  const auto gets = counting_->gets();
  EXPECT_EQ(read(*v, ino, fh, off + len, window_end - off - len),
            data.substr(off + len, window_end - off - len));
  EXPECT_EQ(counting_->gets(), gets);
  EXPECT_OK(v->stop());
}

// A loader reading tensors in file order whose stream one stray read broke picks up
// again in the middle of the data, which looks like a random entry into a tensor. Once
// its stream goes on 4 blocks past that tensor's end it is a stream in order again: whole
// blocks, readahead not stopped at tensor ends. (It once stayed a random entry for the
// rest of the file: a ranged read and a round trip per tensor, 3 x slower; here 17 GETs
// per block.)
TEST_F(RangedTest, AStreamInOrderThatAStrayReadBrokeGetsWholeBlocksAgain) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  // 150 tensors of 300 KiB: about 11 blocks.
  const std::string data = safetensors_file(std::vector<uint64_t>(150, 300 << 10), r);
  const Ino ino = put_file("model.safetensors", data);
  VfsOptions o = opts();
  o.readahead_blocks = 1;  // the stream's readahead is one block ahead of it
  auto v = reader(o);
  const uint64_t fh = open_ro(*v, ino);
  const uint64_t step = 256 << 10;
  uint64_t off = 0;
  for (; off < kBig; off += step) {
    EXPECT_EQ(read(*v, ino, fh, off, step), data.substr(off, step));
  }
  // The stray read, in the last block; then the stream goes on where it was.
  const uint64_t stray = data.size() - 4096;
  EXPECT_EQ(read(*v, ino, fh, stray, 4096), data.substr(stray, 4096));
  for (; off < 10 * kBig; off += step) {
    EXPECT_EQ(read(*v, ino, fh, off, step), data.substr(off, step));
    v->wait_prefetches();
  }
  // More than 4 blocks past the tensor it re-entered (in block 1): whole blocks again.
  for (uint32_t i : {7u, 8u, 9u}) {
    const std::string key = key_of(i);
    EXPECT_EQ(counting_->gets()[key], 1) << "block " << i;
    EXPECT_EQ(counting_->bytes(key), stored_size(key)) << "block " << i;
  }
  EXPECT_OK(v->stop());
}

// Parted fetches: a block a reader waits for, and a long range of one, come as parallel
// ranged GETs; readahead of a stream keeps one GET per block.
class PartedTest : public RangedTest {
 public:
  PartedTest() { parts_ = 4; }
};

TEST_F(PartedTest, ADemandReadOfAColdBlockIsFetchedInFourParts) {
  const std::string data = pattern(3 * kBig, 21);
  const Ino ino = put_file("f", data);
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  // From the file's start: block 0 is read now (parts), block 1 is the stream's readahead.
  EXPECT_EQ(read(*v, ino, fh, 0, 1 << 20), data.substr(0, 1 << 20));
  v->wait_prefetches();
  EXPECT_EQ(counting_->gets()[key_of(0)], 4);
  EXPECT_EQ(counting_->bytes(key_of(0)), stored_size(key_of(0)));
  EXPECT_EQ(counting_->gets()[key_of(1)], 1);
  EXPECT_EQ(counting_->bytes(key_of(1)), stored_size(key_of(1)));
  EXPECT_EQ(v->stats().parted_fetches.load(), 1u);
  EXPECT_EQ(v->stats().part_gets.load(), 4u);
  EXPECT_EQ(v->stats().ranged_gets.load(), 0u);
  // A random read of most of block 2: whole, in parts.
  const uint64_t a = 2 * kBig + 1000, an = 3 << 20;
  EXPECT_EQ(read(*v, ino, open_ro(*v, ino), a, an), data.substr(a, an));
  EXPECT_EQ(counting_->gets()[key_of(2)], 4);
  EXPECT_EQ(counting_->bytes(key_of(2)), stored_size(key_of(2)));
  // Every byte, from all three.
  EXPECT_EQ(read(*v, ino, fh, 0, 3 * kBig), data);
  EXPECT_EQ(v->stats().object_gets.load(), 9u);
  EXPECT_OK(v->stop());
}

// A handle loading its file whole keeps the store busy with its readahead: its misses
// fetch a block as one GET, not in parts.
TEST_F(PartedTest, AMissOfAHandleLoadingItsFileWholeIsOneGet) {
  auto v = reader();
  const uint32_t me = static_cast<uint32_t>(getpid());
  const Fetched f = enter_shards(*v, {me, me, me, me}, 8);
  EXPECT_EQ(f.ranged, 0u);
  EXPECT_EQ(f.parts, 0u);
  EXPECT_EQ(f.gets, 1u);
  EXPECT_OK(v->stop());
}

TEST_F(PartedTest, ALongRangeIsFetchedInPartsOfWholeSubBlocks) {
  const std::string data = pattern(4 * kBig, 22);
  const Ino ino = put_file("f", data);
  auto v = reader();
  // 1.5 MiB (24 sub-blocks) of block 3 on a fresh handle (far enough from the start not
  // to look like a stream): ranged, three 512 KiB parts, and the table.
  const uint64_t b = 3 * kBig + 2 * kSub, bn = 3 << 19;
  EXPECT_EQ(read(*v, ino, open_ro(*v, ino), b, bn), data.substr(b, bn));
  EXPECT_EQ(counting_->gets()[key_of(3)], 4);
  EXPECT_EQ(counting_->bytes(key_of(3)), kHead + bn);
  EXPECT_EQ(v->stats().ranged_gets.load(), 4u);
  EXPECT_EQ(v->stats().part_gets.load(), 3u);
  // A small range is one GET.
  const uint64_t c = 3 * kBig + (3 << 20) + 100;
  EXPECT_EQ(read(*v, ino, open_ro(*v, ino), c, 5000), data.substr(c, 5000));
  EXPECT_EQ(counting_->gets()[key_of(3)], 5);
  EXPECT_EQ(v->stats().part_gets.load(), 3u);
  EXPECT_OK(v->stop());
}

TEST_F(PartedTest, ABlockWithoutATableStillReadsInParts) {
  const std::string data = pattern(2 * kBig, 23);
  const Ino ino = put_file("f", data);
  const std::string key = key_of(1);
  // Block 1 as written before tables existed: 512 bytes shorter than the parts assume.
  const std::string old = tableless_block(data.substr(kBig, kBig));
  ASSERT_OK(store_->put(key, old));
  auto v = reader();
  const uint64_t a = kBig + 1000, an = 3 << 20;
  EXPECT_EQ(read(*v, ino, open_ro(*v, ino), a, an), data.substr(a, an));
  EXPECT_EQ(counting_->gets()[key], 4);
  EXPECT_EQ(counting_->bytes(key), old.size());
  EXPECT_OK(v->stop());
}

TEST_F(PartedTest, ADamagedPartedBlockIsFetchedAgainWholeThenEio) {
  const std::string data = pattern(2 * kBig, 24);
  const Ino ino = put_file("f", data);
  const std::string key = key_of(1);
  auto stored = store_->get(key);
  ASSERT_OK(stored);
  (*stored)[kHead + (3 << 20) + 7] ^= 0x01;  // in the last part
  ASSERT_OK(store_->put(key, *stored));
  auto v = reader();
  std::string buf(3 << 20, '\0');
  auto got = v->read(ctx_, ino, open_ro(*v, ino), kBig + 1000, buf.data(), buf.size());
  ASSERT_FALSE(got.ok()) << "damaged data returned";
  EXPECT_EQ(got.status().code(), Code::kCorruption) << got.status().ToString();
  // Four parts, then the whole block twice more.
  EXPECT_EQ(counting_->gets()[key], 6);
  EXPECT_OK(v->stop());
}

class RangedCompressedTest : public RangedTest {
 public:
  RangedCompressedTest() { compression_ = "zstd"; }
};

class RangedEncryptedTest : public RangedTest {
 public:
  RangedEncryptedTest() { encrypted_ = true; }
};

TEST_F(RangedCompressedTest, ReadsWholeBlocks) { expect_whole_block_reads(8); }

TEST_F(RangedEncryptedTest, ReadsWholeBlocks) { expect_whole_block_reads(9); }

}  // namespace
}  // namespace sluice::vfs::testing
