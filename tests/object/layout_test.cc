// Block key layout (layout.h) and store URL dispatch (open_store).
#include "object/layout.h"

#include <gtest/gtest.h>

#include <random>

#include "object/store.h"

namespace sluice::object {
namespace {

constexpr uint32_t k4MiB = 4 << 20;

TEST(Layout, BlockKeyFansOutBySliceId) {
  EXPECT_EQ(block_key("vol", 1234, 0, 4096), "vol/chunks/0/1/1234_0_4096");
  EXPECT_EQ(block_key("vol", 7, 2, 100), "vol/chunks/0/0/7_2_100");
  EXPECT_EQ(block_key("v", 1234567890, 3, k4MiB), "v/chunks/1234/1234567/1234567890_3_4194304");
  EXPECT_EQ(block_key("v", UINT64_MAX, 0, 1),
            "v/chunks/18446744073709/18446744073709551/18446744073709551615_0_1");
  EXPECT_EQ(check_key(block_key("vol", 42, 1, 10)).code(), Code::kOk);
}

TEST(Layout, BlockCountRoundsUp) {
  EXPECT_EQ(block_count(0, k4MiB), 0u);
  EXPECT_EQ(block_count(1, k4MiB), 1u);
  EXPECT_EQ(block_count(k4MiB, k4MiB), 1u);
  EXPECT_EQ(block_count(k4MiB + 1, k4MiB), 2u);
  EXPECT_EQ(block_count(64u << 20, k4MiB), 16u);
  EXPECT_EQ(block_count(UINT32_MAX, k4MiB), 1024u);  // no overflow near the top
}

TEST(Layout, LastBlockIsShorter) {
  EXPECT_EQ(block_len(k4MiB + 10, k4MiB, 0), k4MiB);
  EXPECT_EQ(block_len(k4MiB + 10, k4MiB, 1), 10u);
  EXPECT_EQ(block_len(2 * k4MiB, k4MiB, 1), k4MiB);
  EXPECT_EQ(block_len(5, k4MiB, 0), 5u);
  EXPECT_EQ(block_len(UINT32_MAX, k4MiB, 1023), k4MiB - 1);
}

TEST(Layout, BlocksTileTheSliceExactly) {
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; i++) {
    uint32_t block_size = 1 + rng() % 9000;
    uint32_t slice_size = rng() % 200000;
    uint32_t n = block_count(slice_size, block_size);
    uint64_t total = 0;
    for (uint32_t b = 0; b < n; b++) {
      uint32_t len = block_len(slice_size, block_size, b);
      ASSERT_GT(len, 0u);
      ASSERT_LE(len, block_size);
      if (b + 1 < n) {
        ASSERT_EQ(len, block_size);
      }
      total += len;
    }
    ASSERT_EQ(total, slice_size) << "slice " << slice_size << " block " << block_size;
  }
}

TEST(OpenStore, UnknownSchemeListsTheSupportedOnes) {
  auto s = open_store("s3x://bucket/prefix");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalid);
  const std::string& msg = s.status().message();
  EXPECT_NE(msg.find("s3x"), std::string::npos) << msg;
  EXPECT_NE(msg.find("file://"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mem://"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line";
}

TEST(OpenStore, UrlWithoutSchemeIsInvalid) {
  EXPECT_EQ(open_store("/just/a/path").status().code(), Code::kInvalid);
  EXPECT_EQ(open_store("").status().code(), Code::kInvalid);
}

TEST(OpenStore, NamedMemStoresShareObjects) {
  auto a = open_store("mem://layout-shared");
  auto b = open_store("mem://layout-shared");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->put("k", "v").ok());
  EXPECT_EQ(*(*b)->get("k"), "v");
  EXPECT_EQ((*b)->describe(), "mem://layout-shared");
  a->reset();
  b->reset();
  auto again = open_store("mem://layout-shared");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*(*again)->get("k"), "v") << "named stores live for the process";
}

TEST(OpenStore, UnnamedMemStoresArePrivate) {
  auto a = open_store("mem://");
  auto b = open_store("mem://");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->put("k", "v").ok());
  EXPECT_EQ((*b)->get("k").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace sluice::object
