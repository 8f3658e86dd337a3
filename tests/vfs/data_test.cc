// The data path of one client: writes buffered into slices and read back, against an
// in-memory model; blocks, chunk boundaries, holes, truncation, open buffers.
#include <random>

#include "vfs_fixture.h"

namespace sluice::vfs::testing {
namespace {

class DataTest : public VfsTest {
 protected:
  std::vector<meta::Slice> slices(Ino ino, uint32_t idx) {
    auto s = vfs_->meta().read_chunk(ino, idx);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : std::vector<meta::Slice>{};
  }
  uint64_t size_of(Ino ino) {
    auto a = vfs_->getattr(ctx_, ino);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a->size : 0;
  }
  Status truncate(Ino ino, uint64_t size, uint64_t fh = 0) {
    meta::SetAttr req;
    req.mask = meta::kSetSize;
    req.size = size;
    return vfs_->setattr(ctx_, ino, req, fh).status();
  }
};

// Apply a model to a string: write data at off, growing with zeros.
void model_write(std::string& model, uint64_t off, const std::string& data) {
  if (model.size() < off + data.size()) model.resize(off + data.size(), '\0');
  model.replace(off, data.size(), data);
}

TEST_F(DataTest, RandomOperationsMatchModel) {
  auto [ino, fh] = create("f");
  std::string model;
  std::mt19937_64 rng(42);
  auto uniform = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  for (int op = 0; op < 400; op++) {
    const uint64_t kind = uniform(0, 99);
    if (kind < 50) {
      uint64_t off = uniform(0, 2 << 20);
      std::string data = pattern(uniform(1, 200 << 10), op);
      ASSERT_TRUE(write(*vfs_, ino, fh, off, data)) << "op " << op;
      model_write(model, off, data);
    } else if (kind < 55) {
      // Sequential append, which extends the open buffer.
      std::string data = pattern(uniform(1, 100 << 10), op);
      ASSERT_TRUE(write(*vfs_, ino, fh, model.size(), data));
      model_write(model, model.size(), data);
    } else if (kind < 85) {
      uint64_t off = uniform(0, model.size() + 1000);
      size_t len = uniform(0, 400 << 10);
      std::string want = off < model.size() ? model.substr(off, len) : "";
      ASSERT_EQ(read(*vfs_, ino, fh, off, len), want)
          << "op " << op << " read " << off << "+" << len;
    } else if (kind < 90) {
      uint64_t size = uniform(0, model.size() + (100 << 10));
      ASSERT_OK(truncate(ino, size, fh));
      model.resize(size, '\0');
    } else if (kind < 95) {
      ASSERT_OK(vfs_->fsync(ctx_, ino, fh, false));
    } else {
      ASSERT_OK(vfs_->release(ino, fh));
      auto h = vfs_->open(ctx_, ino, O_RDWR);
      ASSERT_OK(h);
      fh = *h;
    }
    ASSERT_EQ(size_of(ino), model.size()) << "op " << op;
  }
  ASSERT_OK(vfs_->release(ino, fh));
  // A second client sees exactly the model.
  auto other = mount();
  auto h = other->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(h);
  EXPECT_EQ(read(*other, ino, *h, 0, model.size() + 10), model);
  EXPECT_OK(other->release(ino, *h));
  EXPECT_OK(other->stop());
}

TEST_F(DataTest, WriteSpanningBlocksBecomesOneSliceOfBlocks) {
  auto [ino, fh] = create("f");
  const std::string data = pattern(3 * kBlock + kBlock / 2, 1);
  ASSERT_TRUE(write(*vfs_, ino, fh, kBlock / 2, data));
  ASSERT_OK(vfs_->fsync(ctx_, ino, fh, false));
  auto s = slices(ino, 0);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].pos, kBlock / 2);
  EXPECT_EQ(s[0].len, data.size());
  EXPECT_EQ(object_keys().size(), 4u) << "3.5 blocks of data are 4 objects";
  EXPECT_EQ(read(*vfs_, ino, fh, kBlock / 2, data.size()), data);
  EXPECT_EQ(read(*vfs_, ino, fh, 0, kBlock / 2), std::string(kBlock / 2, '\0'));
  EXPECT_EQ(vfs_->stats().object_puts.load(), 4u);
  EXPECT_OK(vfs_->release(ino, fh));
}

TEST_F(DataTest, SparseWriteAcrossChunkBoundarySplits) {
  auto [ino, fh] = create("f");
  const std::string data = pattern(200 << 10, 2);
  const uint64_t off = kChunk - (50 << 10);
  ASSERT_TRUE(write(*vfs_, ino, fh, off, data));
  EXPECT_EQ(size_of(ino), off + data.size()) << "buffered writes count in getattr";
  EXPECT_EQ(slices(ino, 0).size(), 1u) << "a buffer that reaches the chunk end is flushed";
  EXPECT_TRUE(slices(ino, 1).empty());
  ASSERT_OK(vfs_->fsync(ctx_, ino, fh, false));
  auto first = slices(ino, 0);
  auto second = slices(ino, 1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(first[0].pos, kChunk - (50 << 10));
  EXPECT_EQ(first[0].len, 50u << 10);
  EXPECT_EQ(second[0].pos, 0u);
  EXPECT_EQ(second[0].len, 150u << 10);
  EXPECT_EQ(read(*vfs_, ino, fh, off - 10, data.size() + 100), std::string(10, '\0') + data);
  EXPECT_EQ(read(*vfs_, ino, fh, 0, 4096), std::string(4096, '\0'));
  EXPECT_EQ(vfs_->stats().object_gets.load(), 0u) << "write-through cache serves the reads";
  EXPECT_OK(vfs_->release(ino, fh));
}

TEST_F(DataTest, OverwriteAndAppendStayInTheOpenBuffer) {
  auto [ino, fh] = create("f");
  // All within the first block, which no write completes: it stays open.
  std::string model = pattern(30 << 10, 3);
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, model));
  const std::string patch = pattern(10 << 10, 4), tail = pattern(20 << 10, 5);
  ASSERT_TRUE(write(*vfs_, ino, fh, 5 << 10, patch));
  ASSERT_TRUE(write(*vfs_, ino, fh, model.size(), tail));
  model_write(model, 5 << 10, patch);
  model_write(model, 30 << 10, tail);
  EXPECT_TRUE(slices(ino, 0).empty()) << "nothing committed before a flush";
  ASSERT_OK(vfs_->flush(ctx_, ino, fh));
  EXPECT_EQ(slices(ino, 0).size(), 1u);
  EXPECT_EQ(read(*vfs_, ino, fh, 0, 1 << 20), model);
  EXPECT_OK(vfs_->release(ino, fh));
}

TEST_F(DataTest, WriteOutsideTheOpenBufferFlushesIt) {
  auto [ino, fh] = create("f");
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, pattern(1000, 6)));
  ASSERT_TRUE(write(*vfs_, ino, fh, 5000, pattern(1000, 7)));
  EXPECT_EQ(slices(ino, 0).size(), 1u) << "the first buffer was committed";
  ASSERT_OK(vfs_->fsync(ctx_, ino, fh, false));
  EXPECT_EQ(slices(ino, 0).size(), 2u);
  EXPECT_EQ(read(*vfs_, ino, fh, 0, 6000),
            pattern(1000, 6) + std::string(4000, '\0') + pattern(1000, 7));
  EXPECT_OK(vfs_->release(ino, fh));
}

TEST_F(DataTest, HolesReadAsZeros) {
  auto [ino, fh] = create("f");
  const std::string data = pattern(1000, 8);
  ASSERT_TRUE(write(*vfs_, ino, fh, 3 * kBlock + 7, data));
  EXPECT_EQ(read(*vfs_, ino, fh, 0, 3 * kBlock + 7), std::string(3 * kBlock + 7, '\0'));
  EXPECT_EQ(read(*vfs_, ino, fh, 3 * kBlock, 2000), std::string(7, '\0') + data);
  EXPECT_EQ(read(*vfs_, ino, fh, 10 * kBlock, 10), "") << "past the end";
  EXPECT_OK(vfs_->release(ino, fh));
}

TEST_F(DataTest, TruncateShrinkThenExtendReadsZeros) {
  auto [ino, fh] = create("f");
  const std::string data = pattern(300 << 10, 9);
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, data));
  // Still buffered: the truncate flushes it first.
  ASSERT_OK(truncate(ino, 100 << 10));
  EXPECT_EQ(size_of(ino), 100u << 10);
  EXPECT_EQ(read(*vfs_, ino, fh, 0, 1 << 20), data.substr(0, 100 << 10));
  ASSERT_OK(truncate(ino, 200 << 10));
  EXPECT_EQ(read(*vfs_, ino, fh, 0, 1 << 20),
            data.substr(0, 100 << 10) + std::string(100 << 10, '\0'));
  EXPECT_OK(vfs_->release(ino, fh));
}

TEST_F(DataTest, OpenWithTruncEmptiesTheFile) {
  auto [ino, fh] = create("f");
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, pattern(5000, 10)));
  auto h = vfs_->open(ctx_, ino, O_WRONLY | O_TRUNC);
  ASSERT_OK(h);
  EXPECT_EQ(size_of(ino), 0u);
  EXPECT_EQ(read(*vfs_, ino, fh, 0, 100), "") << "the first handle sees the truncate";
  EXPECT_OK(vfs_->release(ino, *h));
  EXPECT_OK(vfs_->release(ino, fh));
}

TEST_F(DataTest, ReadAfterWriteWithoutClose) {
  auto [ino, fh] = create("f");
  auto reader = vfs_->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(reader);
  const std::string data = pattern(70000, 11);
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, data));
  EXPECT_EQ(read(*vfs_, ino, *reader, 0, 100000), data) << "another handle of the same client";
  ASSERT_TRUE(write(*vfs_, ino, fh, 70000, "tail"));
  EXPECT_EQ(read(*vfs_, ino, *reader, 69998, 100), data.substr(69998) + "tail");
  EXPECT_OK(vfs_->release(ino, *reader));
  EXPECT_OK(vfs_->release(ino, fh));
}

TEST_F(DataTest, HandleModesAreEnforced) {
  auto [ino, fh] = create("f");
  EXPECT_OK(vfs_->release(ino, fh));
  auto ro = vfs_->open(ctx_, ino, O_RDONLY);
  auto wo = vfs_->open(ctx_, ino, O_WRONLY);
  ASSERT_OK(ro);
  ASSERT_OK(wo);
  char c = 'x';
  EXPECT_EQ(vfs_->write(ctx_, ino, *ro, 0, &c, 1).status().code(), Code::kBadFd);
  EXPECT_EQ(vfs_->read(ctx_, ino, *wo, 0, &c, 1).status().code(), Code::kBadFd);
  EXPECT_EQ(vfs_->read(ctx_, ino, 12345, 0, &c, 1).status().code(), Code::kBadFd);
  EXPECT_EQ(vfs_->read(ctx_, ino + 1, *ro, 0, &c, 1).status().code(), Code::kBadFd);
  EXPECT_OK(vfs_->release(ino, *ro));
  EXPECT_OK(vfs_->release(ino, *wo));
  EXPECT_EQ(vfs_->release(ino, *wo).code(), Code::kBadFd);
}

class CompressedDataTest : public DataTest {
 protected:
  void adjust_format(meta::Format& fmt) override { fmt.compression = "zstd"; }
};

TEST_F(CompressedDataTest, RoundTripThroughCompressedBlocks) {
  auto [ino, fh] = create("f");
  const std::string data = std::string(3 * kBlock, 'z') + pattern(kBlock, 12);
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, data));
  ASSERT_OK(vfs_->release(ino, fh));
  EXPECT_LT(vfs_->stats().object_put_bytes.load(), 2 * kBlock) << "runs of 'z' compress";
  auto other = mount();
  auto h = other->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(h);
  EXPECT_EQ(read(*other, ino, *h, 0, data.size()), data);
  EXPECT_EQ(other->stats().object_gets.load(), 4u);
  EXPECT_OK(other->release(ino, *h));
  EXPECT_OK(other->stop());
}

// read_pieces (the FUSE read path) answers with pieces of cached blocks and zeros for
// holes, in file order; their bytes equal what read() copies.
TEST_F(DataTest, ReadPiecesPointIntoBlocksAndZeroFillHoles) {
  auto [ino, fh] = create("f");
  const std::string a = pattern(kBlock + 1000, 1), b = pattern(3 * kBlock + 7, 2);
  const uint64_t hole = 300 << 10;  // more than the zero buffer (128 KiB)
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, a));
  ASSERT_TRUE(write(*vfs_, ino, fh, a.size() + hole, b));
  ASSERT_OK(vfs_->fsync(ctx_, ino, fh, false));
  std::string model = a + std::string(hole, '\0') + b;

  for (uint64_t off : {uint64_t{0}, uint64_t{500}, uint64_t{kBlock - 3}, a.size() - 10,
                       a.size() + 5, model.size() - 100}) {
    ReadData d;
    ASSERT_OK(vfs_->read_pieces(ctx_, ino, fh, off, 600 << 10, d));
    const std::string want = model.substr(off, 600 << 10);
    ASSERT_EQ(d.size, want.size()) << off;
    std::string got;
    size_t sum = 0;
    for (const ReadPiece& p : d.pieces) {
      ASSERT_GT(p.len, 0u);
      ASSERT_NE(p.data, nullptr);  // no disk cache: every piece is in memory
      got.append(p.data, p.len);
      sum += p.len;
    }
    EXPECT_EQ(sum, d.size);
    EXPECT_EQ(got, want) << "read_pieces at " << off;
    EXPECT_EQ(read(*vfs_, ino, fh, off, 600 << 10), want) << "read at " << off;
    // copy_to from the middle of the pieces, across piece boundaries.
    if (want.size() > 71000) {
      std::string part(1000, 'x');
      ASSERT_EQ(d.copy_to(part.data(), 70000, part.size()), 1000u);
      EXPECT_EQ(part, want.substr(70000, 1000)) << off;
    }
  }
  // Past the end: no pieces.
  ReadData end;
  ASSERT_OK(vfs_->read_pieces(ctx_, ino, fh, model.size(), 4096, end));
  EXPECT_EQ(end.size, 0u);
  EXPECT_TRUE(end.pieces.empty());
}

}  // namespace
}  // namespace sluice::vfs::testing
