// Tests of the offline consistency check: a volume after a mix of operations is
// consistent, and each kind of damage is reported.
#include <fcntl.h>

#include "meta/check.h"
#include "meta/keys.h"
#include "meta_fixture.h"

namespace sluice::meta::testing {
namespace {

class CheckTest : public MetaTest {
 protected:
  CheckReport check() { return must(check_volume(engine())); }
  std::string problems(const CheckReport& r) {
    std::string s;
    for (auto& p : r.problems) s += p + "\n";
    return s;
  }
};
SLUICE_META_ENGINES(CheckTest);

TEST_P(CheckTest, MixedOperationsLeaveAConsistentVolume) {
  auto d = mkdir(kRootIno, "d");
  auto sub = mkdir(d.ino, "sub");
  auto f = mkfile(d.ino, "f");
  must(m().link(root(), f.ino, kRootIno, "f-link"));
  uint64_t id = must(m().new_slice_id());
  must(m().write_slice(f.ino, 0, Slice{0, id, 5000, 0, 5000}, 1));
  must(m().symlink(root(), sub.ino, "ln", "../f"));
  must(m().rename(root(), d.ino, "f", sub.ino, "g", 0));
  auto gone = mkfile(kRootIno, "gone");
  uint64_t id2 = must(m().new_slice_id());
  must(m().write_slice(gone.ino, 0, Slice{0, id2, 100, 0, 100}, 1));
  must(m().unlink(root(), kRootIno, "gone"));

  auto rep = check();
  EXPECT_TRUE(rep.problems.empty()) << problems(rep);
  EXPECT_EQ(rep.directories, 3u);
  EXPECT_EQ(rep.files, 1u);
  ASSERT_EQ(rep.live_slices.size(), 1u);  // the removed file's slice is queued, not live
  EXPECT_EQ(rep.live_slices[0].id, id);
}

TEST_P(CheckTest, ReportsADanglingEntry) {
  auto f = mkfile(kRootIno, "f");
  must(engine().transact([&](kv::Txn& txn) { return txn.del(keys::attr(f.ino)); }));
  auto rep = check();
  ASSERT_FALSE(rep.problems.empty());
  EXPECT_NE(problems(rep).find("points to missing"), std::string::npos) << problems(rep);
}

TEST_P(CheckTest, ReportsAWrongLinkCount) {
  auto f = mkfile(kRootIno, "f");
  Attr a = attr(f.ino);
  a.nlink = 3;
  must(engine().transact([&](kv::Txn& txn) { return txn.put(keys::attr(f.ino), encode_attr(a)); }));
  auto rep = check();
  EXPECT_NE(problems(rep).find("nlink 3 but 1 entries"), std::string::npos) << problems(rep);
}

TEST_P(CheckTest, ReportsAnUnnamedDirectory) {
  auto d = mkdir(kRootIno, "d");
  must(engine().transact([&](kv::Txn& txn) { return txn.del(keys::dentry(kRootIno, "d")); }));
  auto rep = check();
  std::string p = problems(rep);
  EXPECT_NE(p.find("directory has 0 entries naming it"), std::string::npos) << p;
  EXPECT_NE(p.find("directory nlink 3, expected 2"), std::string::npos) << p;  // the root
  (void)d;
}

TEST_P(CheckTest, ReportsChunksWithoutDeletionRecord) {
  auto f = mkfile(kRootIno, "f");
  uint64_t id = must(m().new_slice_id());
  must(m().write_slice(f.ino, 0, Slice{0, id, 10, 0, 10}, 1));
  must(engine().transact([&](kv::Txn& txn) { return txn.del(keys::attr(f.ino)); }));
  auto rep = check();
  EXPECT_NE(problems(rep).find("chunks left behind"), std::string::npos) << problems(rep);
}

}  // namespace
}  // namespace sluice::meta::testing
