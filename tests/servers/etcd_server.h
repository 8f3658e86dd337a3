// EtcdCluster: a three-member etcd cluster on loopback (Debian's etcd-server, /usr/bin/etcd),
// started in a temporary directory when a test first asks for it and stopped when the test
// program ends (a gtest global Environment; members also die with us, PR_SET_PDEATHSIG).
// Members fsync as etcd does by default. Failover tests stop and restart single members
// (same data directory and ports) and ask which member leads.
//
// Tests use SLUICE_ETCD_OR_SKIP(var): where etcd cannot run, the test is skipped, or fails
// when SLUICE_REQUIRE_SERVERS=1 (scripts/test.sh sets it). fresh_url() gives each test its
// own key prefix, so tests sharing the cluster stay independent.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace sluice::testing {

namespace etcd_detail {

inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

inline bool can_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

}  // namespace etcd_detail

class EtcdCluster {
 public:
  static constexpr int kMembers = 3;

  // The running cluster, started on first call; nullptr when it cannot run (see why()).
  static EtcdCluster* get();
  static std::string why();
  static bool required() {
    const char* v = std::getenv("SLUICE_REQUIRE_SERVERS");
    return v != nullptr && std::string(v) == "1";
  }
  static void stop_all();

  // "127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2"
  std::string endpoints() const {
    std::string s;
    for (int i = 0; i < kMembers; i++) {
      s += (i ? "," : "") + std::string("127.0.0.1:") + std::to_string(client_port_[i]);
    }
    return s;
  }
  int client_port(int i) const { return client_port_[i]; }
  // etcd://ENDPOINTS/<a prefix no other call returns>.
  std::string fresh_url() {
    static std::atomic<int> n{0};
    return "etcd://" + endpoints() + "/sluice-test-" + std::to_string(::getpid()) + "-" +
           std::to_string(n++);
  }

  // SIGTERM and wait: etcd shuts down cleanly. kill_member: SIGKILL, no shutdown at all.
  void stop_member(int i) { signal_member(i, SIGTERM); }
  void kill_member(int i) { signal_member(i, SIGKILL); }
  // Restarts a stopped member on its data directory and ports; true once it listens.
  bool start_member(int i) {
    if (pid_[i] > 0) return true;
    spawn(i);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (etcd_detail::can_connect(client_port_[i])) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  // The index of the member that currently leads, or -1 when none could be found (no
  // quorum, or no member answers). Asks etcdctl on the running members.
  int leader() const {
    std::string eps;
    for (int i = 0; i < kMembers; i++) {
      if (pid_[i] <= 0) continue;
      eps += (eps.empty() ? "" : ",") + std::string("127.0.0.1:") +
             std::to_string(client_port_[i]);
    }
    if (eps.empty()) return -1;
    std::string cmd = "etcdctl --command-timeout=2s --endpoints=" + eps +
                      " endpoint status -w json 2>/dev/null";
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
      std::array<char, 4096> buf;
      size_t n;
      while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
      ::pclose(f);
    }
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (!j.is_array()) return -1;
    for (const auto& st : j) {
      const auto& s = st["Status"];
      if (!s.is_object() || !s.contains("leader")) continue;
      if (s["header"]["member_id"] == s["leader"]) {
        const std::string ep = st.value("Endpoint", "");
        for (int i = 0; i < kMembers; i++) {
          if (ep == "127.0.0.1:" + std::to_string(client_port_[i])) return i;
        }
      }
    }
    return -1;
  }
  // Waits (up to 30 s) for a leader among the running members; its index, or -1.
  int wait_for_leader() const {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      int l = leader();
      if (l >= 0) return l;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }

 private:
  struct State;
  static State& state();

  // Sends sig and waits for the exit; SIGKILL after 10 s if the member is still there.
  void signal_member(int i, int sig) {
    if (pid_[i] <= 0) return;
    ::kill(pid_[i], sig);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::waitpid(pid_[i], nullptr, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_[i], SIGKILL);
        ::waitpid(pid_[i], nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_[i] = -1;
  }

  void spawn(int i) {
    const std::string name = "m" + std::to_string(i);
    const std::string data = dir_ + "/" + name;
    const std::string log = dir_ + "/" + name + ".log";
    const std::string client = "http://127.0.0.1:" + std::to_string(client_port_[i]);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_[i]);
    std::string cluster;
    for (int m = 0; m < kMembers; m++) {
      cluster += (m ? ",m" : "m") + std::to_string(m) +
                 "=http://127.0.0.1:" + std::to_string(peer_port_[m]);
    }
    pid_t pid = ::fork();
    if (pid == 0) {  // only async-signal-safe calls until exec
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      // Inherit none of the test's descriptors (a file open in a mount would keep it busy).
      ::close_range(3, ~0U, 0);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execlp("etcd", "etcd", "--name", name.c_str(), "--data-dir", data.c_str(),
               "--listen-client-urls", client.c_str(), "--advertise-client-urls",
               client.c_str(), "--listen-peer-urls", peer.c_str(),
               "--initial-advertise-peer-urls", peer.c_str(), "--initial-cluster",
               cluster.c_str(), "--initial-cluster-state", "new", "--initial-cluster-token",
               dir_.c_str(), nullptr);
      ::_exit(127);
    }
    pid_[i] = pid;
  }

  void start(std::string& why) {
    if (::access("/usr/bin/etcd", X_OK) != 0 && std::system("command -v etcd >/dev/null") != 0) {
      why = "etcd is not installed (apt-get install etcd-server etcd-client)";
      return;
    }
    dir_ = ::testing::TempDir() + "etcd-XXXXXX";
    if (::mkdtemp(dir_.data()) == nullptr) {
      why = "mkdtemp failed for " + dir_;
      return;
    }
    for (int i = 0; i < kMembers; i++) {
      client_port_[i] = etcd_detail::free_port();
      peer_port_[i] = etcd_detail::free_port();
    }
    for (int i = 0; i < kMembers; i++) spawn(i);
    for (int i = 0; i < kMembers; i++) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!etcd_detail::can_connect(client_port_[i])) {
        int status;
        if (::waitpid(pid_[i], &status, WNOHANG) == pid_[i]) {
          pid_[i] = -1;
          why = "etcd member " + std::to_string(i) + " exited at start (log in " + dir_ + ")";
          stop();
          return;
        }
        if (std::chrono::steady_clock::now() > deadline) {
          why = "etcd member " + std::to_string(i) + " did not listen within 30 s";
          stop();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    if (wait_for_leader() < 0) {
      why = "the etcd cluster elected no leader within 30 s (logs in " + dir_ + ")";
      stop();
    }
  }

  void stop() {
    for (int i = 0; i < kMembers; i++) signal_member(i, SIGTERM);
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  std::array<pid_t, kMembers> pid_{-1, -1, -1};
  std::array<int, kMembers> client_port_{};
  std::array<int, kMembers> peer_port_{};
  std::string dir_;
};

struct EtcdCluster::State {
  std::mutex mu;
  bool tried = false, running = false;
  std::string why;
  EtcdCluster cluster;
};

inline EtcdCluster::State& EtcdCluster::state() {
  static State s;
  return s;
}

inline EtcdCluster* EtcdCluster::get() {
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.tried) {
    s.tried = true;
    s.cluster.start(s.why);
    s.running = s.why.empty();
  }
  return s.running ? &s.cluster : nullptr;
}

inline std::string EtcdCluster::why() {
  State& s = state();
  std::lock_guard lock(s.mu);
  return s.why;
}

inline void EtcdCluster::stop_all() {
  State& s = state();
  std::lock_guard lock(s.mu);
  s.cluster.stop();
  s.running = false;
}

class EtcdEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { EtcdCluster::stop_all(); }
};

inline ::testing::Environment* const kEtcdEnvironment =
    ::testing::AddGlobalTestEnvironment(new EtcdEnvironment);

}  // namespace sluice::testing

// Declares `EtcdCluster* var` for the running cluster, or skips the test (fails it when
// SLUICE_REQUIRE_SERVERS=1) where etcd cannot run.
#define SLUICE_ETCD_OR_SKIP(var)                                                         \
  ::sluice::testing::EtcdCluster* var = ::sluice::testing::EtcdCluster::get();           \
  if (var == nullptr) {                                                                  \
    if (::sluice::testing::EtcdCluster::required()) {                                    \
      FAIL() << "SLUICE_REQUIRE_SERVERS=1 but " << ::sluice::testing::EtcdCluster::why(); \
    }                                                                                    \
    GTEST_SKIP() << ::sluice::testing::EtcdCluster::why();                               \
  }
