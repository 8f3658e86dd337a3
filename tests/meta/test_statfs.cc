// statfs (statfs.cc): totals from the format's limits, usage from the counters that
// create, truncate and remove maintain.
#include "meta_fixture.h"

namespace sluice::meta {
namespace {

class StatfsTest : public testing::MetaTest {
 protected:
  void truncate(Ino ino, uint64_t size) {
    SetAttr s;
    s.mask = kSetSize;
    s.size = size;
    must(m().setattr(root(), ino, s));
  }
};
SLUICE_META_ENGINES(StatfsTest);

TEST_P(StatfsTest, UnlimitedVolume) {
  StatFs st = must(m().statfs(root()));
  EXPECT_EQ(st.total_bytes, uint64_t{1} << 50);
  EXPECT_EQ(st.used_bytes, 0u);
  EXPECT_EQ(st.avail_bytes, st.total_bytes);
  EXPECT_EQ(st.used_inodes, 0u);
  EXPECT_GE(st.avail_inodes, 1'000'000u);

  Entry f = mkfile(kRootIno, "f");
  mkdir(kRootIno, "d");
  truncate(f.ino, 10'000);
  st = must(m().statfs(root()));
  EXPECT_EQ(st.used_bytes, 12'288u);  // rounded up to 4 KiB
  EXPECT_EQ(st.avail_bytes, st.total_bytes - 12'288);
  EXPECT_EQ(st.used_inodes, 2u);

  must(m().unlink(root(), kRootIno, "f"));
  must(m().rmdir(root(), kRootIno, "d"));
  st = must(m().statfs(root()));
  EXPECT_EQ(st.used_bytes, 0u);
  EXPECT_EQ(st.used_inodes, 0u);
}

TEST_P(StatfsTest, LimitedVolume) {
  ASSERT_NO_FATAL_FAILURE(reformat([](Format& f) {
    f.capacity = 1 << 20;
    f.inodes = 10;
  }));
  Entry f = mkfile(kRootIno, "f");
  mkfile(kRootIno, "g");
  truncate(f.ino, 4096 * 3);
  StatFs st = must(m().statfs(root()));
  EXPECT_EQ(st.total_bytes, 1u << 20);
  EXPECT_EQ(st.used_bytes, 4096u * 3);
  EXPECT_EQ(st.avail_bytes, (1u << 20) - 4096 * 3);
  EXPECT_EQ(st.used_inodes, 2u);
  EXPECT_EQ(st.avail_inodes, 8u);
}

TEST_P(StatfsTest, AvailableFloorsAtZero) {
  // Limits lowered below current usage (format --force) report nothing available.
  mkfile(kRootIno, "a");
  mkfile(kRootIno, "b");
  truncate(must(m().lookup(root(), kRootIno, "a")).ino, 1 << 20);
  ASSERT_NO_FATAL_FAILURE(reformat([](Format& f) {
    f.capacity = 4096;
    f.inodes = 1;
  }));
  StatFs st = must(m().statfs(root()));
  EXPECT_EQ(st.used_bytes, 1u << 20);
  EXPECT_EQ(st.avail_bytes, 0u);
  EXPECT_EQ(st.used_inodes, 2u);
  EXPECT_EQ(st.avail_inodes, 0u);
}

}  // namespace
}  // namespace sluice::meta
