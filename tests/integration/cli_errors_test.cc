// CLI error cases: every bad input ends with exit code 1 and one clear stderr line
// "sluice: ...", and changes nothing it should not.
#include <sys/stat.h>

#include "mount_fixture.h"
#include "kv/engine.h"

namespace sluice::test {
namespace {

class CliErrors : public TempDirTest {
 protected:
  // A formatted volume without a mount.
  std::string Format() {
    std::string url = "sqlite3://" + path("meta.db");
    CliResult r = cli({"format", url, "vol", "--storage", "file://" + path("objects")});
    EXPECT_EQ(r.code, 0) << r.err;
    return url;
  }
};

TEST_F(CliErrors, UnknownCommand) {
  expect_one_line_error(cli({"frobnicate"}), "unknown command 'frobnicate'");
}

TEST_F(CliErrors, MissingArgument) { expect_one_line_error(cli({"format"}), "META_URL"); }

TEST_F(CliErrors, UnknownOption) {
  expect_one_line_error(cli({"status", "sqlite3://x.db", "--bogus"}), "--bogus");
}

TEST_F(CliErrors, FormatUnknownMetaScheme) {
  expect_one_line_error(cli({"format", "nosuch://x", "vol", "--storage", "file://" + path("o")}),
                        "unsupported metadata URL scheme 'nosuch://'");
  EXPECT_FALSE(std::filesystem::exists(path("o"))) << "storage written before the meta URL "
                                                      "was checked";
}

TEST_F(CliErrors, FormatUnknownStorageScheme) {
  expect_one_line_error(
      cli({"format", "sqlite3://" + path("meta.db"), "vol", "--storage", "nosuch://bucket"}),
      "unsupported storage URL scheme 'nosuch://'");
  EXPECT_FALSE(std::filesystem::exists(path("meta.db")));
}

TEST_F(CliErrors, FormatUnwritableStorage) {
  write_file(path("a-file"), "not a directory");
  expect_one_line_error(cli({"format", "sqlite3://" + path("meta.db"), "vol", "--storage",
                             "file://" + path("a-file") + "/objects"}),
                        "cannot write to storage file://" + path("a-file") + "/objects");
  EXPECT_FALSE(std::filesystem::exists(path("meta.db")));
}

TEST_F(CliErrors, FormatBadSizeAndName) {
  std::string url = "sqlite3://" + path("meta.db");
  std::string storage = "file://" + path("objects");
  expect_one_line_error(cli({"format", url, "vol", "--storage", storage, "--block-size", "4X"}),
                        "invalid size '4X' for --block-size");
  expect_one_line_error(cli({"format", url, "vol", "--storage", storage, "--block-size", "3M"}),
                        "power of two");
  expect_one_line_error(cli({"format", url, "vol", "--storage", storage, "--capacity", "lots"}),
                        "invalid size 'lots' for --capacity");
  expect_one_line_error(cli({"format", url, "a/b", "--storage", storage}),
                        "invalid volume name 'a/b'");
  expect_one_line_error(cli({"format", url, "vol", "--storage", storage, "--compression", "gz"}),
                        "--compression");
}

TEST_F(CliErrors, FormatTwiceNeedsForce) {
  std::string url = Format();
  expect_one_line_error(cli({"format", url, "vol", "--storage", "file://" + path("objects")}),
                        "already formatted");
  CliResult forced = cli({"format", url, "vol", "--force", "--trash-days", "3"});
  EXPECT_EQ(forced.code, 0) << forced.err;
  CliResult st = cli({"status", url});
  EXPECT_EQ(st.code, 0) << st.err;
  EXPECT_NE(st.out.find("file://" + path("objects")), std::string::npos)
      << "--force without --storage must keep the storage: " << st.out;
  EXPECT_NE(st.out.find("trash days    3"), std::string::npos) << st.out;
  expect_one_line_error(cli({"format", url, "other", "--force"}), "cannot be renamed");
}

TEST_F(CliErrors, FormatKeepsSettingsCopyInStore) {
  Format();
  std::string copy = read_file(path("objects/vol/sluice_format.json"));
  EXPECT_NE(copy.find("\"vol\""), std::string::npos) << copy;
}

TEST_F(CliErrors, MountMissingDatabase) {
  ASSERT_EQ(mkdir(path("mnt").c_str(), 0755), 0);
  expect_one_line_error(cli({"mount", "sqlite3://" + path("none.db"), path("mnt")}),
                        "does not exist");
}

TEST_F(CliErrors, MountNotAVolume) {
  ASSERT_EQ(mkdir(path("mnt").c_str(), 0755), 0);
  std::string url = "sqlite3://" + path("plain.db");
  ASSERT_TRUE(kv::open_engine(url, true).ok());  // a kv database that was never formatted
  expect_one_line_error(cli({"mount", url, path("mnt")}), "is not a Sluice volume");
  write_file(path("empty.db"), "");  // some other SQLite database
  expect_one_line_error(cli({"mount", "sqlite3://" + path("empty.db"), path("mnt")}),
                        "is not a Sluice database");
}

TEST_F(CliErrors, MountUnknownScheme) {
  ASSERT_EQ(mkdir(path("mnt").c_str(), 0755), 0);
  expect_one_line_error(cli({"mount", "nosuch://x", path("mnt")}),
                        "unsupported metadata URL scheme");
}

TEST_F(CliErrors, MountBadMountpoint) {
  std::string url = Format();
  expect_one_line_error(cli({"mount", url, path("missing")}),
                        "mountpoint " + path("missing") + " does not exist");
  write_file(path("file"), "x");
  expect_one_line_error(cli({"mount", url, path("file")}), "is not a directory");
  ASSERT_EQ(mkdir(path("full").c_str(), 0755), 0);
  write_file(path("full/x"), "x");
  expect_one_line_error(cli({"mount", url, path("full")}), "is not empty");
  EXPECT_FALSE(is_mounted(path("full")));
}

TEST_F(CliErrors, UmountNotMounted) {
  ASSERT_EQ(mkdir(path("mnt").c_str(), 0755), 0);
  expect_one_line_error(cli({"umount", path("mnt")}), path("mnt") + " is not mounted");
}

TEST_F(CliErrors, InfoOutsideMount) {
  write_file(path("file"), "x");
  expect_one_line_error(cli({"info", path("file")}), "is not inside a Sluice mount");
  expect_one_line_error(cli({"info", path("missing")}), "cannot stat");
}

TEST_F(CliErrors, StatusOfMissingVolume) {
  expect_one_line_error(cli({"status", "sqlite3://" + path("none.db")}), "does not exist");
}

TEST_F(CliErrors, VersionAndHelp) {
  CliResult v = cli({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out.rfind("sluice ", 0), 0u) << v.out;
  for (const char* cmd : {"format", "mount", "umount", "status", "info"}) {
    CliResult h = cli({cmd, "--help"});
    EXPECT_EQ(h.code, 0) << cmd;
    EXPECT_NE(h.out.find("Examples:"), std::string::npos) << cmd << ": " << h.out;
  }
}

// Uses a real mount: the second mount on the same directory is refused.
class CliMountErrors : public MountFixture {};

TEST_F(CliMountErrors, AlreadyMounted) {
  expect_one_line_error(cli({"mount", meta_url_, mnt_, "--log", path("second.log")}),
                        mnt_ + " is already a mount point");
  expect_one_line_error(cli({"mount", meta_url_, mnt_, "--nonempty"}),
                        "is already a mount point");
}

}  // namespace
}  // namespace sluice::test
