// Failover on the postgres:// engine: a volume whose metadata lives on the test PostgreSQL
// server (servers/postgres_server.h) is mounted; a workload creates, writes and fsyncs
// small files while the server is restarted (fast shutdown, then started again on the same
// data directory and port). Every file whose fsync and close returned must be there with
// its content afterwards, the mount must keep working, and `sluice fsck` must find the
// volume consistent. Runs in the plain `integration` run only (the other runs filter out
// Failover*), whatever SLUICE_TEST_META says. PostgresCli: the one-line errors of format
// and mount for an unreachable server and an unformatted database, and credentials from
// the environment.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

std::string content_of(int i) {
  std::string s = "file " + std::to_string(i) + ":";
  while (s.size() < 100 + static_cast<size_t>(i % 50) * 61) s += std::to_string(i * 7919);
  return s;
}

class FailoverPostgres : public TempDirTest {
 protected:
  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/fuse";
    SLUICE_POSTGRES_OR_SKIP(pg);
    pg_ = pg;
    TempDirTest::SetUp();
    if (HasFatalFailure()) return;
    meta_url_ = pg_->fresh_url();
    mnt_ = path("mnt");
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0) << std::strerror(errno);
    CliResult f = cli({"format", meta_url_, "failover", "--storage", "file://" + path("objects")});
    ASSERT_EQ(f.code, 0) << f.err;
    CliResult m = cli({"mount", meta_url_, mnt_, "--log", path("sluice.log")});
    ASSERT_EQ(m.code, 0) << m.err << "\nlog:\n" << read_file(path("sluice.log"));
    ASSERT_TRUE(is_mounted(mnt_));
  }

  void TearDown() override {
    if (pg_ != nullptr && !pg_->running()) {
      std::string why;
      EXPECT_TRUE(pg_->start(why)) << why;
    }
    if (!mnt_.empty() && is_mounted(mnt_)) {
      CliResult r = cli({"umount", mnt_});
      EXPECT_EQ(r.code, 0) << r.err;
      if (is_mounted(mnt_)) umount2(mnt_.c_str(), MNT_DETACH);
    }
    TempDirTest::TearDown();
  }

  // Creates, writes, fsyncs and closes file i; true when every step succeeded.
  bool write_one(int i) {
    const std::string data = content_of(i);
    const std::string p = mnt_ + "/w/f" + std::to_string(i);
    int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) return false;
    bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
              ::fsync(fd) == 0;
    ok = ::close(fd) == 0 && ok;
    return ok;
  }

  sluice::testing::PostgresServer* pg_ = nullptr;
  std::string meta_url_, mnt_;
};

TEST_F(FailoverPostgres, RestartDuringWritesLosesNothing) {
  ASSERT_EQ(::mkdir((mnt_ + "/w").c_str(), 0755), 0) << std::strerror(errno);
  std::mutex mu;
  std::vector<int> acked;  // files whose fsync and close returned 0
  std::atomic<int> failed{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); i++) {
      if (write_one(i)) {
        std::lock_guard g(mu);
        acked.push_back(i);
      } else {
        failed++;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  });
  auto acked_count = [&] {
    std::lock_guard g(mu);
    return static_cast<int>(acked.size());
  };
  auto wait_for = [&](int n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (acked_count() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return acked_count() >= n;
  };

  bool before = wait_for(40);
  pg_->stop();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::string why;
  bool restarted = pg_->start(why);
  const int at_restart = acked_count();
  bool after = restarted && wait_for(at_restart + 40);
  stop = true;
  writer.join();
  ASSERT_TRUE(before) << "only " << acked_count() << " files written before the restart";
  ASSERT_TRUE(restarted) << why;
  ASSERT_TRUE(after) << "the mount did not carry on after the restart: " << acked_count()
                     << " files, " << failed.load() << " failures\nlog:\n"
                     << read_file(path("sluice.log"));

  for (int i : acked) {
    EXPECT_EQ(read_file(mnt_ + "/w/f" + std::to_string(i)), content_of(i)) << "file " << i;
  }
  // Namespace operations work too.
  ASSERT_EQ(::mkdir((mnt_ + "/after").c_str(), 0755), 0) << std::strerror(errno);
  write_file(mnt_ + "/after/x", "still here");
  EXPECT_EQ(read_file(mnt_ + "/after/x"), "still here");
  EXPECT_GE(list_dir(mnt_ + "/w").size(), acked.size());

  RecordProperty("acked_files", static_cast<int>(acked.size()));
  RecordProperty("failed_writes", failed.load());
  CliResult u = cli({"umount", mnt_});
  ASSERT_EQ(u.code, 0) << u.err;
  CliResult fsck = cli({"fsck", meta_url_});
  EXPECT_EQ(fsck.code, 0) << "sluice fsck after the restart:\n" << fsck.out << fsck.err;
}

using PostgresCli = TempDirTest;

TEST_F(PostgresCli, UnreachableOrUnformattedIsOneLineError) {
  SLUICE_POSTGRES_OR_SKIP(pg);
  const std::string dead = "postgres://postgres:secret@127.0.0.1:1/db";  // nothing on port 1
  CliResult f = cli({"format", dead, "vol", "--storage", "file://" + path("objects")});
  expect_one_line_error(f,
                        "cannot connect to metadata engine postgres://postgres@127.0.0.1:1/db: "
                        "Connection refused");
  EXPECT_EQ(f.err.find("secret"), std::string::npos) << f.err;
  ASSERT_EQ(mkdir(path("mnt").c_str(), 0755), 0);
  CliResult m = cli({"mount", dead, path("mnt")});
  expect_one_line_error(m, "cannot connect to metadata engine");

  ASSERT_EQ(pg->exec("CREATE DATABASE sluice_cli_empty"), "");
  m = cli({"mount", pg->url("", "sluice_cli_empty"), path("mnt")});
  expect_one_line_error(m, "is not formatted");
  EXPECT_FALSE(is_mounted(path("mnt")));
}

TEST_F(PostgresCli, FormatCreatesTheDatabaseWithThePasswordFromTheEnvironment) {
  SLUICE_POSTGRES_OR_SKIP(pg);
  const std::string url = std::string("postgres://") + sluice::testing::kPgPasswordUser +
                          "@127.0.0.1:" + std::to_string(pg->port()) + "/sluice_cli_pw";
  const std::string storage = "file://" + path("objects");
  unsetenv("PGPASSWORD");
  unsetenv("SLUICE_META_PASSWORD");
  CliResult f = cli({"format", url, "vol", "--storage", storage});
  expect_one_line_error(f, "cannot connect to metadata engine");
  setenv("SLUICE_META_PASSWORD", sluice::testing::kPgPassword, 1);
  f = cli({"format", url, "vol", "--storage", storage});
  CliResult s = cli({"status", url});
  unsetenv("SLUICE_META_PASSWORD");
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_NE(f.out.find("formatted volume 'vol'"), std::string::npos) << f.out;
  EXPECT_EQ(s.code, 0) << s.err;
}

}  // namespace
}  // namespace sluice::test
