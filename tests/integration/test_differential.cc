// The randomized differential tester (differential.h) on a real mount: the same random
// sequence of operations on a local directory and on the mount must give the same
// errnos, bytes and trees after every step. Runs on the default volume (two seeds, and
// once more across a remount) and on volume variants whose data path differs: a small
// block size (writes cross many blocks), compressed blocks, and the kernel's write-back
// cache. Seeds and steps can be overridden with SLUICE_DIFF_SEED and SLUICE_DIFF_STEPS to
// replay a failure (they then apply to every test here).
#include "differential.h"
#include "mount_fixture.h"

namespace sluice::test {
namespace {

class Differential : public MountFixture {
 protected:
  // Runs one sequence on fresh, empty directories: ref-<name> locally and
  // <root>/<name> on the mount.
  void Run(testing::DiffOptions defaults, const std::string& name, const std::string& root) {
    std::string ref = path("ref-" + name), sub = root + "/" + name;
    ASSERT_EQ(mkdir(ref.c_str(), 0755), 0) << std::strerror(errno);
    ASSERT_EQ(mkdir(sub.c_str(), 0755), 0) << std::strerror(errno);
    testing::DiffOptions opts = testing::diff_options_from_env(defaults);
    testing::DiffResult res = testing::run_differential(ref, sub, opts);
    EXPECT_TRUE(res.ok) << res.failure;
    EXPECT_EQ(res.steps_run, opts.steps) << res.failure;
  }
  void Run(testing::DiffOptions defaults, const std::string& name) { Run(defaults, name, mnt_); }
};

TEST_F(Differential, Seed1) { Run({.seed = 1, .steps = 300}, "seed1"); }

TEST_F(Differential, Seed2Short) { Run({.seed = 2, .steps = 120}, "seed2"); }

// After a remount the mount's tree must still equal the reference built before it; a
// short sequence on top compares the whole trees at its first step and keeps going.
TEST_F(Differential, SurvivesRemount) {
  Run({.seed = 3, .steps = 100}, "seed3");
  Unmount();
  Mount();
  testing::DiffResult res =
      testing::run_differential(path("ref-seed3"), mnt_ + "/seed3", {.seed = 4, .steps = 30});
  EXPECT_TRUE(res.ok) << res.failure;
  EXPECT_EQ(res.steps_run, 30) << res.failure;
}

// The tester sees through the mount: a change made behind its back through a second
// mount of the volume is reported at the next step as a tree difference.
TEST_F(Differential, DetectsChangesFromAnotherMount) {
  Run({.seed = 5, .steps = 60}, "seed5");
  if (HasFailure()) return;
  MountAt(meta_url_, path("mnt2"));
  std::string stray = path("mnt2/seed5/stray-from-mnt2");
  write_file(stray, "not in the reference");
  testing::DiffResult res =
      testing::run_differential(path("ref-seed5"), mnt_ + "/seed5", {.seed = 6, .steps = 5});
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.steps_run, 1);
  EXPECT_NE(res.failure.find("extra stray-from-mnt2"), std::string::npos) << res.failure;
}

// A volume variant: format options and mount options.
struct Variant {
  const char* name;
  std::vector<std::string> format_opts;
  std::vector<std::string> mount_opts;
};

class DifferentialVariant : public Differential,
                            public ::testing::WithParamInterface<Variant> {
 protected:
  void SetUp() override {
    Differential::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const Variant& v = GetParam();
    std::string url = "sqlite3://" + path("variant.db");
    std::vector<std::string> args = {"format", url, "variant", "--storage",
                                     "file://" + path("variant-objects")};
    args.insert(args.end(), v.format_opts.begin(), v.format_opts.end());
    CliResult f = cli(args);
    ASSERT_EQ(f.code, 0) << f.err;
    variant_mnt_ = path("variant-mnt");
    MountAt(url, variant_mnt_, v.mount_opts);
  }
  std::string variant_mnt_;
};

TEST_P(DifferentialVariant, Sequence) {
  // Larger writes than the default so that small blocks and compression see many blocks.
  Run({.seed = 11, .steps = 80, .max_file_size = 6 << 20}, "v", variant_mnt_);
  // And the variant's data read back from its store after a remount.
  UnmountAt(variant_mnt_);
  MountAt("sqlite3://" + path("variant.db"), variant_mnt_, GetParam().mount_opts);
  testing::DiffResult res =
      testing::run_differential(path("ref-v"), variant_mnt_ + "/v", {.seed = 12, .steps = 20});
  EXPECT_TRUE(res.ok) << res.failure;
}

INSTANTIATE_TEST_SUITE_P(
    Volumes, DifferentialVariant,
    ::testing::Values(Variant{"SmallBlocks", {"--block-size", "64K"}, {}},
                      Variant{"Zstd", {"--compression", "zstd"}, {}},
                      Variant{"Lz4SmallBlocks", {"--compression", "lz4", "--block-size", "128K"}, {}},
                      Variant{"Writeback", {}, {"--writeback"}},
                      Variant{"NoKernelCache",
                              {},
                              {"--entry-timeout", "0", "--attr-timeout", "0",
                               "--dir-entry-timeout", "0"}}),
    [](const ::testing::TestParamInfo<Variant>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace sluice::test
