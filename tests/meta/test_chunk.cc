// chunk.cc: slice records, size growth and the capacity limit, shrinking truncates
// (dropped chunks, hole slices, delayed slices) and deferred deletion of removed files.
#include <map>

#include "meta/internal.h"
#include "meta/keys.h"
#include "meta/slices.h"
#include "meta_fixture.h"

namespace sluice::meta {
namespace {

using testing::code;

class ChunkTest : public testing::MetaTest {
 protected:
  Slice slice(uint32_t pos, uint64_t id, uint32_t len) { return Slice{pos, id, len, 0, len}; }
  Attr write(Ino ino, uint32_t index, const Slice& s, int64_t mtime = 1000) {
    return must(m().write_slice(ino, index, s, mtime));
  }
  Attr truncate(Ino ino, uint64_t size) {
    SetAttr s;
    s.mask = kSetSize;
    s.size = size;
    return must(m().setattr(root(), ino, s));
  }
  int64_t counter(const char* name) {
    int64_t v = 0;
    must(engine().read([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(v, internal::get_counter(txn, name));
      return Status::OK();
    }));
    return v;
  }
  std::vector<std::string> keys_under(const std::string& prefix) {
    std::vector<std::string> out;
    must(engine().read([&](kv::Txn& txn) -> Status {
      out.clear();
      ASSIGN_OR_RETURN(auto kvs, txn.scan(prefix, keys::prefix_end(prefix)));
      for (auto& kv : kvs) out.push_back(kv.key);
      return Status::OK();
    }));
    return out;
  }
  // Runs cleanup_deleted, recording each deleter call.
  size_t cleanup(std::multimap<uint64_t, uint32_t>& calls) {
    return must(m().cleanup_deleted([&](uint64_t id, uint32_t size) {
      calls.emplace(id, size);
      return Status::OK();
    }));
  }
};
SLUICE_META_ENGINES(ChunkTest);

TEST_P(ChunkTest, WriteSliceAppendsRecordsAndGrowsSize) {
  Entry f = mkfile(kRootIno, "f");
  Attr a = write(f.ino, 0, slice(0, 11, 100), 5000);
  EXPECT_EQ(a.size, 100u);
  EXPECT_EQ(a.mtime_ns, 5000);
  EXPECT_EQ(a.ctime_ns, 5000);
  a = write(f.ino, 0, Slice{50, 12, 300, 20, 100}, 6000);
  EXPECT_EQ(a.size, 150u);
  a = write(f.ino, 0, slice(10, 13, 5), 7000);
  EXPECT_EQ(a.size, 150u) << "a write inside the file does not change its size";
  EXPECT_EQ(attr(f.ino).mtime_ns, 7000);
  EXPECT_EQ(must(m().read_chunk(f.ino, 0)),
            (std::vector<Slice>{slice(0, 11, 100), Slice{50, 12, 300, 20, 100}, slice(10, 13, 5)}));
  EXPECT_TRUE(must(m().read_chunk(f.ino, 1)).empty());
}

TEST_P(ChunkTest, WriteInALaterChunkCoversTheGap) {
  Entry f = mkfile(kRootIno, "f");
  Attr a = write(f.ino, 2, slice(10, 5, 5));
  EXPECT_EQ(a.size, 2 * kChunkSize + 15);
  EXPECT_EQ(counter(keys::kUsedSpace), static_cast<int64_t>(internal::space_of(a.size)));
}

TEST_P(ChunkTest, WriteSliceErrors) {
  Entry f = mkfile(kRootIno, "f");
  Entry d = mkdir(kRootIno, "d");
  EXPECT_EQ(code(m().write_slice(999999, 0, slice(0, 1, 1), 1)), Code::kNotFound);
  EXPECT_EQ(code(m().write_slice(d.ino, 0, slice(0, 1, 1), 1)), Code::kInvalid);
  EXPECT_EQ(code(m().write_slice(f.ino, 0, slice(kChunkSize - 1, 1, 2), 1)), Code::kInvalid);
  EXPECT_EQ(code(m().write_slice(f.ino, 0, Slice{0, 1, 10, 5, 6}, 1)), Code::kInvalid);
  EXPECT_EQ(code(m().read_chunk(999999, 0)), Code::kNotFound);
  EXPECT_EQ(code(m().read_chunk(d.ino, 0)), Code::kInvalid);
  EXPECT_EQ(attr(f.ino).size, 0u);
}

TEST_P(ChunkTest, UsedSpaceFollowsGrowth) {
  Entry f = mkfile(kRootIno, "f");
  write(f.ino, 0, slice(0, 1, 1));
  EXPECT_EQ(counter(keys::kUsedSpace), 4096);
  write(f.ino, 0, slice(4000, 2, 100));
  EXPECT_EQ(counter(keys::kUsedSpace), 8192);
  write(f.ino, 0, slice(0, 3, 10));
  EXPECT_EQ(counter(keys::kUsedSpace), 8192);
}

TEST_P(ChunkTest, CapacityRefusesGrowth) {
  ASSERT_NO_FATAL_FAILURE(reformat([](Format& f) { f.capacity = 8192; }));
  Entry f = mkfile(kRootIno, "f");
  write(f.ino, 0, slice(0, 1, 8192));
  EXPECT_EQ(code(m().write_slice(f.ino, 0, slice(8192, 2, 1), 1)), Code::kNoSpace);
  EXPECT_EQ(attr(f.ino).size, 8192u);
  EXPECT_EQ(must(m().read_chunk(f.ino, 0)).size(), 1u) << "a refused write leaves no record";
  write(f.ino, 0, slice(100, 3, 100));  // overwriting inside the file needs no space
}

TEST_P(ChunkTest, ShrinkingTruncateDropsChunksAndMasksTheTail) {
  Entry f = mkfile(kRootIno, "f");
  write(f.ino, 0, slice(0, 1, 1000));
  write(f.ino, 1, slice(0, 2, 500));
  write(f.ino, 2, slice(0, 3, 100));
  write(f.ino, 2, Slice{200, 3, 100, 0, 50});  // the same slice twice in one chunk
  write(f.ino, 3, slice(0, 0, 10));            // a hole: nothing to delete
  const uint64_t old_size = attr(f.ino).size;

  truncate(f.ino, kChunkSize + 100);
  EXPECT_EQ(must(m().read_chunk(f.ino, 0)), (std::vector<Slice>{slice(0, 1, 1000)}));
  EXPECT_EQ(must(m().read_chunk(f.ino, 1)),
            (std::vector<Slice>{slice(0, 2, 500), Slice{100, 0, 0, 0, kChunkSize - 100}}));
  EXPECT_TRUE(must(m().read_chunk(f.ino, 2)).empty());
  EXPECT_TRUE(must(m().read_chunk(f.ino, 3)).empty());
  EXPECT_EQ(keys_under(keys::delayed_slice_prefix()).size(), 1u) << "slice 3 queued once";
  EXPECT_LT(kChunkSize + 100, old_size);

  std::multimap<uint64_t, uint32_t> calls;
  EXPECT_EQ(cleanup(calls), 1u);
  EXPECT_EQ(calls, (std::multimap<uint64_t, uint32_t>{{3, 100}}));
  EXPECT_TRUE(keys_under(keys::delayed_slice_prefix()).empty());
  calls.clear();
  EXPECT_EQ(cleanup(calls), 0u);
  EXPECT_TRUE(calls.empty());
}

TEST_P(ChunkTest, TruncatedBytesReadAsZerosAfterGrowing) {
  Entry f = mkfile(kRootIno, "f");
  write(f.ino, 0, slice(0, 7, 100));
  truncate(f.ino, 30);
  truncate(f.ino, 100);
  auto segs = resolve_slices(must(m().read_chunk(f.ino, 0)), 100);
  EXPECT_EQ(segs, (std::vector<Segment>{{0, 30, 7, 100, 0}, {30, 70, 0, 0, 0}}));
  EXPECT_TRUE(keys_under(keys::delayed_slice_prefix()).empty())
      << "slice 7 is still partly visible";
}

TEST_P(ChunkTest, TruncateOfAnUnwrittenChunkAddsNoRecord) {
  Entry f = mkfile(kRootIno, "f");
  write(f.ino, 0, slice(0, 1, 10));
  truncate(f.ino, 3 * kChunkSize);
  truncate(f.ino, 2 * kChunkSize + 5);
  EXPECT_TRUE(must(m().read_chunk(f.ino, 2)).empty());
  EXPECT_EQ(must(m().read_chunk(f.ino, 0)).size(), 1u);
}

TEST_P(ChunkTest, DroppedSlicesWaitForTheDelay) {
  Entry f = mkfile(kRootIno, "f");
  write(f.ino, 1, slice(0, 9, 10));
  m().set_delete_delay(3600LL * 1'000'000'000);
  truncate(f.ino, 0);
  std::multimap<uint64_t, uint32_t> calls;
  EXPECT_EQ(cleanup(calls), 0u);
  EXPECT_EQ(keys_under(keys::delayed_slice_prefix()).size(), 1u);
  m().set_delete_delay(0);
  EXPECT_EQ(cleanup(calls), 1u);
  EXPECT_EQ(calls, (std::multimap<uint64_t, uint32_t>{{9, 10}}));
}

TEST_P(ChunkTest, UnlinkQueuesTheDataOfTheFile) {
  Entry f = mkfile(kRootIno, "f");
  write(f.ino, 0, slice(0, 21, 100));
  write(f.ino, 0, slice(50, 22, 100));
  write(f.ino, 4, slice(0, 23, 100));
  const int64_t inodes = counter(keys::kUsedInodes);
  must(m().unlink(root(), kRootIno, "f"));
  EXPECT_EQ(code(m().getattr(f.ino)), Code::kNotFound);
  EXPECT_EQ(keys_under(keys::deleted_file(f.ino)).size(), 1u);
  EXPECT_EQ(counter(keys::kUsedInodes), inodes - 1);
  EXPECT_EQ(counter(keys::kUsedSpace), 0);

  std::multimap<uint64_t, uint32_t> calls;
  EXPECT_EQ(cleanup(calls), 3u);
  EXPECT_EQ(calls, (std::multimap<uint64_t, uint32_t>{{21, 100}, {22, 100}, {23, 100}}));
  EXPECT_TRUE(keys_under(keys::inode_prefix(f.ino)).empty());
  EXPECT_TRUE(keys_under(keys::deleted_file_prefix()).empty());
}

TEST_P(ChunkTest, UnlinkOfAnEmptyFileQueuesNothing) {
  Entry f = mkfile(kRootIno, "f");
  Entry sparse = mkfile(kRootIno, "sparse");
  truncate(sparse.ino, 1 << 20);
  must(m().unlink(root(), kRootIno, "f"));
  must(m().unlink(root(), kRootIno, "sparse"));
  EXPECT_TRUE(keys_under(keys::inode_prefix(f.ino)).empty());
  EXPECT_EQ(keys_under(keys::deleted_file_prefix()).size(), 1u) << "only the sized one";
  std::multimap<uint64_t, uint32_t> calls;
  EXPECT_EQ(cleanup(calls), 0u);
  EXPECT_TRUE(keys_under(keys::deleted_file_prefix()).empty());
}

TEST_P(ChunkTest, DeleterErrorLeavesWorkForALaterPass) {
  Entry f = mkfile(kRootIno, "f");
  write(f.ino, 0, slice(0, 31, 10));
  Entry g = mkfile(kRootIno, "g");
  write(g.ino, 1, slice(0, 32, 10));
  truncate(g.ino, 0);
  must(m().unlink(root(), kRootIno, "f"));
  auto failing = [](uint64_t, uint32_t) { return Status(Code::kUnavailable, "store down"); };
  EXPECT_EQ(must(m().cleanup_deleted(failing)), 0u);
  EXPECT_EQ(keys_under(keys::deleted_file_prefix()).size(), 1u);
  EXPECT_EQ(keys_under(keys::chunk_prefix(f.ino)).size(), 1u);
  EXPECT_EQ(keys_under(keys::delayed_slice_prefix()).size(), 1u);
  std::multimap<uint64_t, uint32_t> calls;
  EXPECT_EQ(cleanup(calls), 2u);
  EXPECT_EQ(calls, (std::multimap<uint64_t, uint32_t>{{31, 10}, {32, 10}}));
}

TEST_P(ChunkTest, CleanupStopsAtTheLimit) {
  for (int i = 0; i < 5; i++) {
    Entry f = mkfile(kRootIno, "f" + std::to_string(i));
    write(f.ino, 0, slice(0, 100 + i, 10));
    must(m().unlink(root(), kRootIno, "f" + std::to_string(i)));
  }
  std::multimap<uint64_t, uint32_t> calls;
  EXPECT_EQ(must(m().cleanup_deleted(
                [&](uint64_t id, uint32_t size) {
                  calls.emplace(id, size);
                  return Status::OK();
                },
                2)),
            2u);
  EXPECT_EQ(keys_under(keys::deleted_file_prefix()).size(), 3u);
  EXPECT_EQ(cleanup(calls), 3u);
  EXPECT_EQ(calls.size(), 5u);
}

}  // namespace
}  // namespace sluice::meta
