// Failover of the etcd:// metadata engine through a real mount: a workload creates and
// writes small files (each fsynced) while the etcd leader is killed and later restarted.
// Every operation that returned success must be there afterwards (checked through a fresh
// mount), `sluice fsck` must find the metadata consistent, and the mount must carry on
// during and after the outage. Runs on the three-member cluster of servers/etcd_server.h
// whatever SLUICE_TEST_META says (the per-backend reruns in tests/CMakeLists.txt filter
// Failover* out).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "mount_fixture.h"
#include "servers/etcd_server.h"

namespace sluice::test {
namespace {

using sluice::testing::EtcdCluster;

class FailoverEtcd : public TempDirTest {
 protected:
  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/fuse";
    SLUICE_ETCD_OR_SKIP(cluster);
    cluster_ = cluster;
    TempDirTest::SetUp();
    if (HasFatalFailure()) return;
    meta_url_ = cluster_->fresh_url();
    mnt_ = path("mnt");
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    CliResult f = cli({"format", meta_url_, "failover", "--storage", "file://" + path("objects")});
    ASSERT_EQ(f.code, 0) << f.err;
    Mount();
  }

  void TearDown() override {
    stop_workload();
    Unmount();
    if (cluster_ != nullptr) {
      for (int i = 0; i < EtcdCluster::kMembers; i++) cluster_->start_member(i);
    }
    TempDirTest::TearDown();
  }

  void Mount() {
    CliResult r = cli({"mount", meta_url_, mnt_, "--log", path("sluice.log")});
    ASSERT_EQ(r.code, 0) << r.err << "\nlog:\n" << read_file(path("sluice.log"));
    ASSERT_TRUE(is_mounted(mnt_));
  }

  void Unmount() {
    if (mnt_.empty() || !is_mounted(mnt_)) return;
    CliResult r = cli({"umount", mnt_});
    EXPECT_EQ(r.code, 0) << r.err;
    if (is_mounted(mnt_)) umount2(mnt_.c_str(), MNT_DETACH);
    EXPECT_FALSE(is_mounted(mnt_));
  }

  static std::string content_of(int i) { return "file " + std::to_string(i) + " payload\n"; }

  // Creates, writes and fsyncs mnt/d/f<i> for i = 0, 1, ... until stopped; records each
  // that fully succeeded.
  void start_workload() {
    ASSERT_EQ(mkdir((mnt_ + "/d").c_str(), 0755), 0) << std::strerror(errno);
    worker_ = std::thread([this] {
      for (int i = 0; !stop_.load(); i++) {
        const std::string p = mnt_ + "/d/f" + std::to_string(i);
        const std::string data = content_of(i);
        // O_CLOEXEC: an etcd member restarted meanwhile (fork+exec) must not inherit it
        // and keep the mount busy.
        int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
        bool ok = fd >= 0 &&
                  ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
                  ::fsync(fd) == 0;
        if (fd >= 0 && ::close(fd) != 0) ok = false;
        if (ok) {
          std::lock_guard lock(mu_);
          acked_.push_back(i);
        } else {
          failed_++;
        }
      }
    });
  }

  void stop_workload() {
    stop_ = true;
    if (worker_.joinable()) worker_.join();
  }

  size_t acked() {
    std::lock_guard lock(mu_);
    return acked_.size();
  }

  // Waits until `more` further operations succeed; false after 120 s without that.
  bool progress(size_t more) {
    const size_t target = acked() + more;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (acked() < target) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  EtcdCluster* cluster_ = nullptr;
  std::string meta_url_, mnt_;
  std::thread worker_;
  std::atomic<bool> stop_{false};
  std::atomic<int> failed_{0};
  std::mutex mu_;
  std::vector<int> acked_;  // guarded by mu_
};

TEST_F(FailoverEtcd, KillingTheLeaderLosesNoAcknowledgedWrite) {
  start_workload();
  ASSERT_TRUE(progress(30)) << "no progress before the failover";
  const int leader = cluster_->wait_for_leader();
  ASSERT_GE(leader, 0);
  cluster_->kill_member(leader);
  // The two others elect a new leader; the mount must carry on without a remount.
  ASSERT_TRUE(progress(30)) << "no progress with the old leader down";
  ASSERT_TRUE(cluster_->start_member(leader));
  ASSERT_GE(cluster_->wait_for_leader(), 0);
  ASSERT_TRUE(progress(30)) << "no progress after the old leader came back";
  stop_workload();
  std::vector<int> acked;
  {
    std::lock_guard lock(mu_);
    acked = acked_;
  }
  std::cerr << acked.size() << " operations acknowledged, " << failed_.load() << " failed\n";

  // Durable in etcd, not just in this mount's caches: check through a fresh mount.
  Unmount();
  CliResult fsck = cli({"fsck", meta_url_});
  EXPECT_EQ(fsck.code, 0) << fsck.out << fsck.err;
  EXPECT_NE(fsck.out.find("consistent"), std::string::npos) << fsck.out;
  Mount();
  for (int i : acked) {
    EXPECT_EQ(read_file(mnt_ + "/d/f" + std::to_string(i)), content_of(i)) << "file f" << i;
  }
}

}  // namespace
}  // namespace sluice::test
