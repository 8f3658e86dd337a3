// Mount options of the object store stack: a mount under injected faults (errors,
// truncated bodies) keeps data exact; a store that is down turns into EIO after the
// retry budget, with the reason logged, and the mount recovers when the store comes
// back; bad fault specs, from the option or from SLUICE_INJECT_FAULTS, are one-line
// errors.
#include <cstdlib>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

class FaultyMount : public MountFixture {
 protected:
  std::vector<std::string> MountOptions() const override {
    return {"--inject-faults", "error_rate=0.1,truncate_rate=0.05,seed=1,down_file=" + down(),
            "--upload-limit", "256M", "--download-limit", "256M", "--max-uploads", "4",
            "--io-retries", "6", "--cache-size", "0"};  // reads must reach the store
  }
  std::string down() const { return dir_ + "/store-down"; }
  void Remount() {
    Unmount();
    Mount(MountOptions());
  }
};

TEST_F(FaultyMount, DataSurvivesInjectedFaults) {
  std::vector<std::string> files;
  for (int i = 0; i < 4; i++) {
    std::string data;
    for (int k = 0; k < 150'000 * (i + 1); k++) data += static_cast<char>('a' + (k * 7 + i) % 26);
    write_file(mnt_ + "/f" + std::to_string(i), data);
    files.push_back(data);
  }
  Remount();  // reads come from the store, not from the mount's caches
  for (int i = 0; i < 4; i++) {
    EXPECT_TRUE(read_file(mnt_ + "/f" + std::to_string(i)) == files[i]) << "file " << i;
  }
  EXPECT_NE(read_file(path("sluice.log")).find("injecting object store faults"),
            std::string::npos);
}

TEST_F(FaultyMount, StoreDownIsEioThenRecovers) {
  const std::string data(300'000, 'd');
  write_file(mnt_ + "/f", data);
  Remount();
  write_file(down(), "");
  int fd = open((mnt_ + "/f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  char buf[4096];
  errno = 0;
  EXPECT_EQ(pread(fd, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_NE(read_file(path("sluice.log")).find("giving up"), std::string::npos);
  unlink(down().c_str());
  EXPECT_EQ(pread(fd, buf, sizeof buf, 0), static_cast<ssize_t>(sizeof buf)) << std::strerror(errno);
  close(fd);
  EXPECT_TRUE(read_file(mnt_ + "/f") == data);
}

class MountFaultSpec : public TempDirTest {
 protected:
  std::string Format() {
    std::string url = "sqlite3://" + path("meta.db");
    CliResult r = cli({"format", url, "vol", "--storage", "file://" + path("objects")});
    EXPECT_EQ(r.code, 0) << r.err;
    mkdir(path("mnt").c_str(), 0755);
    return url;
  }
};

TEST_F(MountFaultSpec, BadSpecIsOneLineError) {
  std::string url = Format();
  expect_one_line_error(cli({"mount", url, path("mnt"), "--inject-faults", "error_rate=2"}),
                        "invalid fault spec 'error_rate=2'");
  setenv("SLUICE_INJECT_FAULTS", "nonsense=1", 1);
  CliResult r = cli({"mount", url, path("mnt")});
  unsetenv("SLUICE_INJECT_FAULTS");
  expect_one_line_error(r, "unknown key 'nonsense'");
  expect_one_line_error(cli({"mount", url, path("mnt"), "--upload-limit", "fast"}),
                        "--upload-limit");
  EXPECT_FALSE(is_mounted(path("mnt")));
}

}  // namespace
}  // namespace sluice::test
