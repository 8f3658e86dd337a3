// RedisServer: a Debian redis-server on a free loopback port, started in a temp dir when a
// test first asks for it and stopped when the test program ends (a gtest global
// Environment; the child also dies with us). It runs with an fsync'ed append-only file,
// so acknowledged writes survive stop()/start() — failover tests restart it mid-workload
// on the same port and data dir.
//
// Tests use SLUICE_REDIS_OR_SKIP(var): where redis-server cannot run the test is skipped,
// or fails when SLUICE_REQUIRE_SERVERS=1 (scripts/test.sh sets it). Each fresh_url() is a
// redis:// URL with a new ?prefix=, so tests sharing the server do not see each other.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "servers/s3_server.h"  // free_loopback_port, can_connect

namespace sluice::testing {

class RedisServer {
 public:
  // The running server, started on first call; nullptr when it cannot run (see why()).
  static RedisServer* get();
  static std::string why();
  static bool required() {
    const char* v = std::getenv("SLUICE_REQUIRE_SERVERS");
    return v != nullptr && std::string(v) == "1";
  }
  static void stop_all();

  int port() const { return port_; }
  // redis://127.0.0.1:PORT/0?prefix=<prefix>
  std::string url(const std::string& prefix) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/0?prefix=" + prefix;
  }
  // A URL with a prefix no other call in this process returned.
  std::string fresh_url() {
    static std::atomic<int> n{0};
    return url("t" + std::to_string(::getpid()) + "-" + std::to_string(n++));
  }

  // Stops the server gracefully (SIGTERM: it flushes and exits) and waits for it.
  void stop() { signal_and_wait(SIGTERM); }
  // Kills it without warning; acknowledged writes are still in the fsync'ed AOF.
  void kill() { signal_and_wait(SIGKILL); }
  // Starts it again on the same port and data dir; empty string when it listens.
  std::string start() {
    if (pid_ > 0) return "";
    const std::string port = std::to_string(port_);
    const std::string log = dir_ + "/redis.log";
    pid_ = ::fork();
    if (pid_ == 0) {  // only async-signal-safe calls until exec
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      // Not one of our descriptors (a test's open file on a mount would keep it busy).
      ::close_range(3, ~0U, 0);
      ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
               "--dir", dir_.c_str(), "--save", "", "--appendonly", "yes", "--appendfsync",
               "always", "--daemonize", "no", nullptr);
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (can_connect(port_)) return "";
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "redis-server exited at start (exit status " +  // 127: not installed
               std::to_string(WEXITSTATUS(status)) + ", log in " + log + ")";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return "redis-server did not listen on port " + port + " within 30 s";
  }

 private:
  struct State;
  static State& state();

  void signal_and_wait(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  std::string first_start() {
    dir_ = ::testing::TempDir() + "redis-XXXXXX";
    if (::mkdtemp(dir_.data()) == nullptr) return "mkdtemp failed for " + dir_;
    port_ = free_loopback_port();
    return start();
  }

  void shutdown() {
    kill();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

struct RedisServer::State {
  std::mutex mu;
  bool tried = false, running = false;
  std::string why;
  RedisServer server;
};

inline RedisServer::State& RedisServer::state() {
  static State s;
  return s;
}

inline RedisServer* RedisServer::get() {
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.tried) {
    s.tried = true;
    s.why = s.server.first_start();
    s.running = s.why.empty();
  }
  return s.running ? &s.server : nullptr;
}

inline std::string RedisServer::why() {
  State& s = state();
  std::lock_guard lock(s.mu);
  return s.why;
}

inline void RedisServer::stop_all() {
  State& s = state();
  std::lock_guard lock(s.mu);
  s.server.shutdown();
  s.running = false;
}

class RedisServerEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { RedisServer::stop_all(); }
};

inline ::testing::Environment* const kRedisServerEnvironment =
    ::testing::AddGlobalTestEnvironment(new RedisServerEnvironment);

}  // namespace sluice::testing

// Declares `RedisServer* var` for the running server, or skips the test (fails it when
// SLUICE_REQUIRE_SERVERS=1) where redis-server cannot run.
#define SLUICE_REDIS_OR_SKIP(var)                                                      \
  ::sluice::testing::RedisServer* var = ::sluice::testing::RedisServer::get();         \
  if (var == nullptr) {                                                                \
    if (::sluice::testing::RedisServer::required()) {                                  \
      FAIL() << "SLUICE_REQUIRE_SERVERS=1 but " << ::sluice::testing::RedisServer::why(); \
    }                                                                                  \
    GTEST_SKIP() << ::sluice::testing::RedisServer::why();                             \
  }
