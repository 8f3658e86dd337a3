// The read path counted at the store: concurrent cold reads of one block GET it once;
// a sequential stream is prefetched ahead with no block fetched twice; random reads
// fetch only the blocks they touch; a read inside a tensor of a safetensors file
// fetches the rest of that tensor and nothing past it.
#include <latch>
#include <map>
#include <set>
#include <thread>

#include "vfs/read_fixture.h"
#include "vfs/vfs_fixture.h"

namespace sluice::vfs::testing {
namespace {

class PrefetchTest : public VfsTest {
 protected:
  // Writes `data` to /name through the fixture's client and closes it.
  Ino put_file(const std::string& name, const std::string& data) {
    auto [ino, fh] = create(name);
    EXPECT_TRUE(write(*vfs_, ino, fh, 0, data));
    EXPECT_OK(vfs_->flush(ctx_, ino, fh));
    EXPECT_OK(vfs_->release(ino, fh));
    return ino;
  }
  // A second client with a cold cache, reading through a counting store.
  std::unique_ptr<Vfs> reader(VfsOptions o = test_options()) {
    counting_ = std::make_shared<CountingStore>(store_);
    return mount(o, counting_);
  }
  uint64_t open_ro(Vfs& v, Ino ino) {
    auto fh = v.open(ctx_, ino, O_RDONLY);
    EXPECT_TRUE(fh.ok()) << fh.status().ToString();
    return fh.ok() ? *fh : 0;
  }

  std::shared_ptr<CountingStore> counting_;
};

TEST_F(PrefetchTest, ConcurrentColdReadsOfOneBlockGetItOnce) {
  const std::string data = pattern(4 * kBlock, 1);
  const Ino ino = put_file("f", data);
  auto v = reader();
  counting_->delay_ms = 50;
  constexpr int kReaders = 8;
  std::vector<uint64_t> fhs;
  for (int i = 0; i < kReaders; i++) fhs.push_back(open_ro(*v, ino));
  std::latch start(kReaders);
  std::vector<std::string> got(kReaders);
  std::vector<std::thread> ts;
  for (int i = 0; i < kReaders; i++) {
    ts.emplace_back([&, i] {
      start.arrive_and_wait();
      got[i] = read(*v, ino, fhs[i], 2 * kBlock + 100 * i, 1000);
    });
  }
  for (auto& t : ts) t.join();
  for (int i = 0; i < kReaders; i++) {
    EXPECT_EQ(got[i], data.substr(2 * kBlock + 100 * i, 1000)) << i;
  }
  v->wait_prefetches();
  EXPECT_EQ(counting_->block_gets(), (std::map<uint32_t, int>{{2, 1}}));
  EXPECT_OK(v->stop());
}

TEST_F(PrefetchTest, SequentialStreamPrefetchesAheadWithoutDuplicateGets) {
  constexpr int kBlocks = 32;
  const std::string data = pattern(kBlocks * kBlock, 2);
  const Ino ino = put_file("f", data);
  VfsOptions o = test_options();
  o.readahead_blocks = 8;
  auto v = reader(o);
  const uint64_t fh = open_ro(*v, ino);
  std::string all;
  constexpr size_t kRead = 16 << 10;
  // Three reads inside block 0 grow the window to 4 blocks: blocks 1-4 are prefetched.
  for (uint64_t off = 0; off < 3 * kRead; off += kRead) all += read(*v, ino, fh, off, kRead);
  v->wait_prefetches();
  EXPECT_EQ(counting_->block_gets(),
            (std::map<uint32_t, int>{{0, 1}, {1, 1}, {2, 1}, {3, 1}, {4, 1}}));
  EXPECT_EQ(v->stats().prefetch_issued.load(), 4u);
  for (uint64_t off = 3 * kRead; off < data.size(); off += kRead) {
    all += read(*v, ino, fh, off, kRead);
  }
  EXPECT_EQ(all, data);
  v->wait_prefetches();
  const auto gets = counting_->block_gets();
  EXPECT_EQ(gets.size(), size_t{kBlocks});
  for (const auto& [index, n] : gets) EXPECT_EQ(n, 1) << "block " << index;
  EXPECT_GE(v->stats().prefetch_hits.load(), 4u);
  // Every prefetched block was read afterwards.
  EXPECT_GE(v->stats().prefetch_hits.load(), v->stats().prefetch_issued.load());
  EXPECT_EQ(v->stats().prefetch_wasted.load(), 0u);
  EXPECT_EQ(v->stats().object_gets.load(), uint64_t{kBlocks});
  EXPECT_OK(v->stop());
}

TEST_F(PrefetchTest, RandomReadsFetchOnlyWhatTheyTouch) {
  constexpr int kBlocks = 64;
  const std::string data = pattern(kBlocks * kBlock, 3);
  const Ino ino = put_file("f", data);
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  const std::vector<uint32_t> touched = {40, 3, 22, 57, 10, 33, 50, 1};
  for (uint32_t b : touched) {
    EXPECT_EQ(read(*v, ino, fh, uint64_t(b) * kBlock + 100, 4096),
              data.substr(uint64_t(b) * kBlock + 100, 4096));
  }
  v->wait_prefetches();
  std::map<uint32_t, int> want;
  for (uint32_t b : touched) want[b] = 1;
  EXPECT_EQ(counting_->block_gets(), want);
  EXPECT_EQ(v->stats().prefetch_issued.load(), 0u);
  EXPECT_OK(v->stop());
}

TEST_F(PrefetchTest, ReadInsideATensorFetchesTheRestOfThatTensor) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  const std::string data = safetensors_file(
      {5 * kBlock + 1000, 6 * kBlock + 7, 7 * kBlock + 300, 5 * kBlock}, r);
  const Ino ino = put_file("model.safetensors", data);
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  EXPECT_EQ(read(*v, ino, fh, 0, 4096), data.substr(0, 4096));  // the loader reads the header
  EXPECT_EQ(v->stats().safetensors_parsed.load(), 1u);
  // A fault in the middle of tensor 2, then one in tensor 0 (shuffled order).
  const uint64_t fault = r[2].first + 2 * kBlock + 10;
  EXPECT_EQ(read(*v, ino, fh, fault, 4096), data.substr(fault, 4096));
  v->wait_prefetches();
  // Block 0 for the header read, which prefetches nothing more: the opening read of a
  // safetensors file drops its sequential readahead.
  std::map<uint32_t, int> want = {{0, 1}};
  for (uint64_t b = fault / kBlock; b * kBlock < r[2].second; b++) want[b] = 1;
  EXPECT_EQ(counting_->block_gets(), want);

  const uint64_t fault0 = r[0].first + 3 * kBlock;
  EXPECT_EQ(read(*v, ino, fh, fault0, 4096), data.substr(fault0, 4096));
  v->wait_prefetches();
  for (uint64_t b = fault0 / kBlock; b * kBlock < r[0].second; b++) want[b] = 1;
  EXPECT_EQ(counting_->block_gets(), want);
  EXPECT_EQ(v->stats().tensor_prefetches.load(), 2u);

  // The rest of tensor 2 comes from the cache: no block is fetched twice.
  const uint64_t rest = fault + 4096;
  EXPECT_EQ(read(*v, ino, fh, rest, r[2].second - rest), data.substr(rest, r[2].second - rest));
  v->wait_prefetches();
  for (const auto& [index, n] : counting_->block_gets()) EXPECT_EQ(n, 1) << "block " << index;
  EXPECT_GT(v->stats().prefetch_hits.load(), 0u);
  EXPECT_OK(v->stop());
}

TEST_F(PrefetchTest, TensorPrefetchStaysWithinItsBudget) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  const std::string data = safetensors_file({20 * kBlock}, r);
  const Ino ino = put_file("model.safetensors", data);
  VfsOptions o = test_options();
  o.prefetch_budget_bytes = 3 * kBlock;
  auto v = reader(o);
  const uint64_t fh = open_ro(*v, ino);
  EXPECT_EQ(read(*v, ino, fh, 0, 4096), data.substr(0, 4096));
  v->wait_prefetches();  // block 0 only: a safetensors file's header read prefetches nothing
  // A fault in block 5 queues no more than the budget: blocks 6-8.
  EXPECT_EQ(read(*v, ino, fh, 5 * kBlock, 4096), data.substr(5 * kBlock, 4096));
  v->wait_prefetches();
  std::map<uint32_t, int> want = {{0, 1}, {5, 1}, {6, 1}, {7, 1}, {8, 1}};
  EXPECT_EQ(counting_->block_gets(), want);
  // The next fault in the tensor goes on from there, again within the budget.
  EXPECT_EQ(read(*v, ino, fh, 6 * kBlock, 4096), data.substr(6 * kBlock, 4096));
  v->wait_prefetches();
  want.insert({{9, 1}, {10, 1}, {11, 1}});
  EXPECT_EQ(counting_->block_gets(), want);
  EXPECT_OK(v->stop());
}

TEST_F(PrefetchTest, LayoutIsSharedByHandlesAndDroppedWhenTheFileChanges) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  const std::string data = safetensors_file({8 * kBlock, 8 * kBlock}, r);
  const Ino ino = put_file("model.safetensors", data);
  auto v = reader();
  const uint64_t a = open_ro(*v, ino), b = open_ro(*v, ino);
  EXPECT_EQ(read(*v, ino, a, 0, 4096), data.substr(0, 4096));
  // Handle b never read the header, yet its fault prefetches the rest of tensor 1.
  const uint64_t fault = r[1].first + kBlock;
  EXPECT_EQ(read(*v, ino, b, fault, 4096), data.substr(fault, 4096));
  v->wait_prefetches();
  EXPECT_EQ(v->stats().tensor_prefetches.load(), 1u);
  EXPECT_EQ(v->stats().safetensors_parsed.load(), 1u);

  // The file is rewritten (another client): its new contents are not safetensors.
  EXPECT_OK(v->release(ino, a));
  EXPECT_OK(v->release(ino, b));
  auto w = vfs_->open(ctx_, ino, O_RDWR | O_TRUNC);
  ASSERT_OK(w);
  const std::string plain = pattern(16 * kBlock, 5);
  EXPECT_TRUE(write(*vfs_, ino, *w, 0, plain));
  EXPECT_OK(vfs_->flush(ctx_, ino, *w));
  EXPECT_OK(vfs_->release(ino, *w));
  const uint64_t c = open_ro(*v, ino);
  EXPECT_EQ(read(*v, ino, c, 0, 4096), plain.substr(0, 4096));
  EXPECT_EQ(read(*v, ino, c, fault, 4096), plain.substr(fault, 4096));
  v->wait_prefetches();
  EXPECT_EQ(v->stats().tensor_prefetches.load(), 1u);
  EXPECT_OK(v->stop());
}

TEST_F(PrefetchTest, MalformedHeaderGivesNoTensorPrefetchAndReadsStillWork) {
  // Plausible length and '{', but offsets past the end of the file.
  std::string h = R"({"t":{"dtype":"U8","shape":[999999999],"data_offsets":[0,999999999]}})";
  std::string file(8, '\0');
  for (int i = 0; i < 8; i++) file[i] = static_cast<char>(uint64_t(h.size()) >> (8 * i));
  const std::string data = file + h + pattern(10 * kBlock, 6);
  const Ino ino = put_file("bad.safetensors", data);
  auto v = reader();
  const uint64_t fh = open_ro(*v, ino);
  EXPECT_EQ(read(*v, ino, fh, 0, 4096), data.substr(0, 4096));
  EXPECT_EQ(read(*v, ino, fh, 6 * kBlock, 4096), data.substr(6 * kBlock, 4096));
  v->wait_prefetches();
  EXPECT_EQ(v->stats().safetensors_parsed.load(), 0u);
  EXPECT_EQ(counting_->block_gets(), (std::map<uint32_t, int>{{0, 1}, {1, 1}, {6, 1}}));
  EXPECT_OK(v->stop());
}

}  // namespace
}  // namespace sluice::vfs::testing
