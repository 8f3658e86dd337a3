// Failover on the redis:// engine, through a real mount: redis-server is restarted (SIGTERM,
// then SIGKILL) while a workload creates, writes and fsyncs small files. Every operation
// that returned success must be there afterwards with its bytes, `sluice fsck` must find
// the metadata consistent, and the same mount must carry on. Also: an unreachable server
// is a one-line error at format and mount time.
//
// The suite runs in the plain `integration` run only (other reruns filter out Failover*).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <thread>
#include <vector>

#include "mount_fixture.h"
#include "servers/redis_server.h"

namespace sluice::test {
namespace {

using sluice::testing::RedisServer;

class FailoverRedis : public TempDirTest {
 protected:
  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/fuse";
    TempDirTest::SetUp();
    if (HasFatalFailure()) return;
    SLUICE_REDIS_OR_SKIP(redis);
    redis_ = redis;
    meta_url_ = redis->fresh_url();
    mnt_ = path("mnt");
  }

  void TearDown() override {
    if (redis_ != nullptr) {
      EXPECT_EQ(redis_->start(), "");  // whatever a test left stopped
    }
    if (!mnt_.empty() && is_mounted(mnt_)) {
      CliResult r = cli({"umount", mnt_});
      EXPECT_EQ(r.code, 0) << r.err;
      if (is_mounted(mnt_)) umount2(mnt_.c_str(), MNT_DETACH);
    }
    TempDirTest::TearDown();
  }

  void FormatAndMount() {
    CliResult f = cli({"format", meta_url_, "vol", "--storage", "file://" + path("objects")});
    ASSERT_EQ(f.code, 0) << f.err;
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    CliResult m = cli({"mount", meta_url_, mnt_, "--log", path("sluice.log")});
    ASSERT_EQ(m.code, 0) << m.err << "\nlog:\n" << read_file(path("sluice.log"));
    ASSERT_TRUE(is_mounted(mnt_));
  }

  // Creates, writes and fsyncs one small file; true only if every step succeeded.
  static bool write_synced(const std::string& p, const std::string& data) {
    int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
              ::fsync(fd) == 0;
    return ::close(fd) == 0 && ok;
  }

  static std::string content(int i) { return "file " + std::to_string(i) + " payload\n"; }

  RedisServer* redis_ = nullptr;
  std::string meta_url_, mnt_;
};

TEST_F(FailoverRedis, RestartDuringWorkloadLosesNothingAcknowledged) {
  FormatAndMount();
  if (HasFatalFailure()) return;

  std::atomic<bool> stop{false};
  std::atomic<int> next{0};
  std::vector<int> acked;  // written by the worker only, read after join
  int failed = 0;
  std::thread worker([&] {
    while (!stop.load()) {
      int i = next++;
      if (write_synced(mnt_ + "/f" + std::to_string(i), content(i))) {
        acked.push_back(i);
      } else {
        failed++;
      }
    }
  });
  auto wait_for_files = [&](int n) {
    for (int t = 0; t < 3000 && next.load() < n; t++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };

  wait_for_files(50);
  redis_->stop();  // graceful: SIGTERM
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(redis_->start(), "");
  wait_for_files(next.load() + 50);
  redis_->kill();  // abrupt: SIGKILL; the fsync'ed append-only file has every commit
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(redis_->start(), "");
  wait_for_files(next.load() + 50);
  stop = true;
  worker.join();

  ASSERT_GE(acked.size(), 100u) << failed << " failed";
  std::cout << acked.size() << " files acknowledged, " << failed << " failed during outages\n";
  // The mount carries on: new work succeeds, and every acknowledged file is intact.
  ASSERT_TRUE(write_synced(mnt_ + "/after", "after\n"));
  EXPECT_EQ(read_file(mnt_ + "/after"), "after\n");
  for (int i : acked) {
    EXPECT_EQ(read_file(mnt_ + "/f" + std::to_string(i)), content(i)) << "f" << i;
  }

  // And after a fresh mount (nothing from the first mount's caches).
  CliResult u = cli({"umount", mnt_});
  ASSERT_EQ(u.code, 0) << u.err;
  CliResult fsck = cli({"fsck", meta_url_});
  EXPECT_EQ(fsck.code, 0) << fsck.out << fsck.err;
  EXPECT_NE(fsck.out.find("consistent"), std::string::npos) << fsck.out;
  CliResult m = cli({"mount", meta_url_, mnt_, "--log", path("sluice2.log")});
  ASSERT_EQ(m.code, 0) << m.err;
  for (int i : acked) {
    EXPECT_EQ(read_file(mnt_ + "/f" + std::to_string(i)), content(i)) << "f" << i;
  }
}

TEST_F(FailoverRedis, UnreachableServerIsAOneLineError) {
  const std::string url =
      "redis://127.0.0.1:" + std::to_string(sluice::testing::free_loopback_port()) + "/0";
  const std::string want = "cannot connect to metadata engine " + url + ": Connection refused";
  expect_one_line_error(cli({"format", url, "vol", "--storage", "file://" + path("objects")}),
                        want);
  ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
  expect_one_line_error(cli({"mount", url, mnt_}), want);
  EXPECT_FALSE(is_mounted(mnt_));
}

}  // namespace
}  // namespace sluice::test
