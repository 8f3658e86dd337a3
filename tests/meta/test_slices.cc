// resolve_slices: overlap rules, holes, truncation hole slices, and random slice lists
// checked against a brute-force model that resolves every byte on its own.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "meta/slices.h"

namespace sluice::meta {
namespace {

Slice slice(uint32_t pos, uint64_t id, uint32_t size, uint32_t off, uint32_t len) {
  return Slice{pos, id, size, off, len};
}

// Where one byte of the chunk comes from: slice id (0 = zeros) and offset in it.
struct Byte {
  uint64_t id = 0;
  uint32_t off = 0;
  bool operator==(const Byte&) const = default;
};

// The model: apply the slices oldest first, byte by byte.
std::vector<Byte> model(const std::vector<Slice>& slices, uint32_t chunk_len) {
  std::vector<Byte> bytes(chunk_len);
  for (const Slice& s : slices) {
    for (uint32_t i = 0; i < s.len && uint64_t{s.pos} + i < chunk_len; i++) {
      bytes[s.pos + i] = s.id == 0 ? Byte{} : Byte{s.id, s.off + i};
    }
  }
  return bytes;
}

// Expands segments to bytes, checking they tile [0, chunk_len) in order.
std::vector<Byte> expand(const std::vector<Segment>& segs, uint32_t chunk_len) {
  std::vector<Byte> bytes;
  uint32_t at = 0;
  for (const Segment& seg : segs) {
    EXPECT_EQ(seg.pos, at) << "segments must be contiguous and ordered";
    EXPECT_GT(seg.len, 0u) << "empty segment at " << seg.pos;
    if (seg.id == 0) {
      EXPECT_EQ(seg.size, 0u);
      EXPECT_EQ(seg.off, 0u);
    } else {
      EXPECT_LE(uint64_t{seg.off} + seg.len, seg.size) << "segment reads past its slice";
    }
    for (uint32_t i = 0; i < seg.len; i++) {
      bytes.push_back(seg.id == 0 ? Byte{} : Byte{seg.id, seg.off + i});
    }
    at = seg.pos + seg.len;
  }
  EXPECT_EQ(at, chunk_len);
  return bytes;
}

TEST(ResolveSlices, EmptyListIsOneHole) {
  EXPECT_EQ(resolve_slices({}, 100), (std::vector<Segment>{{0, 100, 0, 0, 0}}));
  EXPECT_TRUE(resolve_slices({}, 0).empty());
}

TEST(ResolveSlices, SingleSliceWithHolesAround) {
  auto segs = resolve_slices({slice(10, 7, 50, 5, 20)}, 100);
  EXPECT_EQ(segs, (std::vector<Segment>{{0, 10, 0, 0, 0}, {10, 20, 7, 50, 5}, {30, 70, 0, 0, 0}}));
}

TEST(ResolveSlices, LaterSliceSplitsEarlierOne) {
  auto segs = resolve_slices({slice(0, 1, 100, 0, 100), slice(40, 2, 10, 0, 10)}, 100);
  EXPECT_EQ(segs,
            (std::vector<Segment>{{0, 40, 1, 100, 0}, {40, 10, 2, 10, 0}, {50, 50, 1, 100, 50}}));
}

TEST(ResolveSlices, EarlierSliceDoesNotOverrideLater) {
  auto segs = resolve_slices({slice(40, 2, 10, 0, 10), slice(0, 1, 100, 0, 100)}, 100);
  EXPECT_EQ(segs, (std::vector<Segment>{{0, 100, 1, 100, 0}}));
}

TEST(ResolveSlices, PartialOverlapsOnBothSides) {
  auto segs = resolve_slices(
      {slice(0, 1, 60, 0, 60), slice(40, 2, 60, 0, 60), slice(20, 3, 40, 0, 40)}, 100);
  EXPECT_EQ(segs,
            (std::vector<Segment>{{0, 20, 1, 60, 0}, {20, 40, 3, 40, 0}, {60, 40, 2, 60, 20}}));
}

TEST(ResolveSlices, TruncationHoleSliceMasksOldData) {
  // A 100-byte file truncated to 30 (hole slice to the old end), then grown to 80.
  auto segs = resolve_slices({slice(0, 9, 100, 0, 100), slice(30, 0, 0, 0, 70)}, 80);
  EXPECT_EQ(segs, (std::vector<Segment>{{0, 30, 9, 100, 0}, {30, 50, 0, 0, 0}}));
}

TEST(ResolveSlices, WriteAfterTruncationShowsThroughTheHole) {
  auto segs = resolve_slices(
      {slice(0, 9, 100, 0, 100), slice(30, 0, 0, 0, 70), slice(50, 4, 10, 0, 10)}, 100);
  EXPECT_EQ(segs,
            (std::vector<Segment>{
                {0, 30, 9, 100, 0}, {30, 20, 0, 0, 0}, {50, 10, 4, 10, 0}, {60, 40, 0, 0, 0}}));
}

TEST(ResolveSlices, SlicesPastChunkLenAreClipped) {
  auto segs = resolve_slices({slice(0, 1, 100, 0, 100), slice(90, 2, 50, 0, 50)}, 95);
  EXPECT_EQ(segs, (std::vector<Segment>{{0, 90, 1, 100, 0}, {90, 5, 2, 50, 0}}));
  EXPECT_EQ(resolve_slices({slice(120, 3, 10, 0, 10)}, 100),
            (std::vector<Segment>{{0, 100, 0, 0, 0}}));
}

TEST(ResolveSlices, ZeroLengthSlicesAreIgnored) {
  auto segs = resolve_slices({slice(0, 1, 10, 0, 10), slice(5, 2, 10, 0, 0)}, 10);
  EXPECT_EQ(segs, (std::vector<Segment>{{0, 10, 1, 10, 0}}));
}

TEST(ResolveSlices, TouchingSlicesStaySeparate) {
  auto segs = resolve_slices({slice(0, 1, 10, 0, 10), slice(10, 2, 10, 0, 10)}, 20);
  EXPECT_EQ(segs, (std::vector<Segment>{{0, 10, 1, 10, 0}, {10, 10, 2, 10, 0}}));
}

// Random slice lists (writes and holes) against the byte model.
TEST(ResolveSlices, RandomListsMatchByteModel) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 50; round++) {
    uint32_t chunk_len = 1 + rng() % 4096;
    int n = 1 + static_cast<int>(rng() % (round < 40 ? 50 : 3000));
    std::vector<Slice> slices;
    for (int i = 0; i < n; i++) {
      uint32_t pos = rng() % (chunk_len + 64);
      uint32_t len = 1 + rng() % (rng() % 8 == 0 ? 4096 : 200);
      bool hole = rng() % 10 == 0;
      uint32_t off = hole ? 0 : rng() % 100;
      slices.push_back(hole ? slice(pos, 0, 0, 0, len)
                            : slice(pos, 100 + i, off + len + rng() % 10, off, len));
    }
    auto segs = resolve_slices(slices, chunk_len);
    ASSERT_EQ(expand(segs, chunk_len), model(slices, chunk_len)) << "round " << round;
    // Pieces of one slice are never split without a reason: two neighbours from the same
    // slice would have to be contiguous in it, which the resolution never produces.
    for (size_t i = 1; i < segs.size(); i++) {
      if (segs[i].id != 0 && segs[i].id == segs[i - 1].id) {
        EXPECT_NE(segs[i - 1].off + segs[i - 1].len, segs[i].off) << "round " << round;
      }
    }
  }
}

// A full 64 MiB chunk with thousands of slices: resolved in 4 KiB units against the model.
TEST(ResolveSlices, ThousandsOfSlicesOnAFullChunk) {
  constexpr uint32_t kUnit = 4096;
  constexpr uint32_t kUnits = (64u << 20) / kUnit;
  std::mt19937 rng(7);
  std::vector<Slice> slices, unit_slices;
  for (int i = 0; i < 5000; i++) {
    uint32_t pos = rng() % kUnits;
    uint32_t len = 1 + rng() % 64;
    unit_slices.push_back(slice(pos, 1 + i, len, 0, len));
    slices.push_back(slice(pos * kUnit, 1 + i, len * kUnit, 0, len * kUnit));
  }
  auto segs = resolve_slices(slices, kUnits * kUnit);
  std::vector<Segment> scaled;
  for (Segment s : segs) {
    ASSERT_EQ(s.pos % kUnit, 0u);
    ASSERT_EQ(s.len % kUnit, 0u);
    scaled.push_back(Segment{s.pos / kUnit, s.len / kUnit, s.id, s.size / kUnit, s.off / kUnit});
  }
  EXPECT_EQ(expand(scaled, kUnits), model(unit_slices, kUnits));
}

}  // namespace
}  // namespace sluice::meta
