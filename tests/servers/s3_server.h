// S3rver: the s3rver S3 server (npm, pinned and installed into .tools/ by
// scripts/install-deps.sh), started on a free loopback port when a test first asks for it,
// with bucket kS3Bucket and s3rver's built-in credentials S3RVER/S3RVER, and stopped when
// the test program ends (a gtest global Environment; the child also dies with us).
//
// Tests use SLUICE_S3RVER_OR_SKIP(var): where s3rver cannot run (not installed, no node),
// the test is skipped, or fails when SLUICE_REQUIRE_S3=1 (scripts/test.sh sets it).
// Note: s3rver checks the access key but not SigV4 signatures.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

namespace sluice::testing {

inline constexpr const char* kS3Bucket = "sluice-test";

// A loopback port that was free a moment ago (and nothing listens on now).
inline int free_loopback_port() {
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

class S3rver {
 public:
  // The running server, started on first call; nullptr when it cannot run (see why()).
  static S3rver* get();
  static std::string why();
  static bool required() {
    const char* v = std::getenv("SLUICE_REQUIRE_S3");
    return v != nullptr && std::string(v) == "1";
  }
  static void stop_all();

  int port() const { return port_; }
  // s3+http://127.0.0.1:PORT/<path> with s3rver's credentials.
  std::string url(const std::string& path) const {
    return "s3+http://127.0.0.1:" + std::to_string(port_) + "/" + path +
           "?access_key=S3RVER&secret_key=S3RVER";
  }

 private:
  struct State;
  static State& state();

  static std::string script() {
    if (const char* v = std::getenv("SLUICE_S3RVER"); v != nullptr && *v != '\0') return v;
    std::string here = __FILE__;  // <root>/tests/servers/s3_server.h
    return here.substr(0, here.rfind("/tests/")) + "/.tools/node_modules/.bin/s3rver";
  }

  void start(std::string& why) {
    const std::string bin = script();
    if (::access(bin.c_str(), R_OK) != 0) {
      why = "s3rver is not installed at " + bin + " (run scripts/install-deps.sh)";
      return;
    }
    dir_ = ::testing::TempDir() + "s3rver-XXXXXX";
    if (::mkdtemp(dir_.data()) == nullptr) {
      why = "mkdtemp failed for " + dir_;
      return;
    }
    port_ = free_loopback_port();
    const std::string port = std::to_string(port_);
    const std::string log = dir_ + ".log";
    pid_ = ::fork();
    if (pid_ == 0) {  // only async-signal-safe calls until exec
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      // Nothing inherited stays open in the server: an open file on a mount would keep
      // the mount busy, or wait on the server itself.
      ::close_range(3, ~0U, 0);
      // s3rver's ListObjectsV2 continuation tokens use DES, which OpenSSL 3 keeps in its
      // legacy provider.
      ::execlp("node", "node", "--openssl-legacy-provider", bin.c_str(), "--directory",
               dir_.c_str(), "--address", "127.0.0.1", "--port", port.c_str(), "--silent",
               "--configure-bucket", kS3Bucket, nullptr);
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (can_connect(port_)) return;
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        why = "s3rver exited at start (exit status " + std::to_string(WEXITSTATUS(status)) +
              ", log in " + dir_ + ".log)";
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    why = "s3rver did not listen on port " + port + " within 30 s";
    stop();
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      std::filesystem::remove(dir_ + ".log", ec);
      dir_.clear();
    }
  }

  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

struct S3rver::State {
  std::mutex mu;
  bool tried = false, running = false;
  std::string why;
  S3rver server;
};

inline S3rver::State& S3rver::state() {
  static State s;
  return s;
}

inline S3rver* S3rver::get() {
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.tried) {
    s.tried = true;
    s.server.start(s.why);
    s.running = s.why.empty();
  }
  return s.running ? &s.server : nullptr;
}

inline std::string S3rver::why() {
  State& s = state();
  std::lock_guard lock(s.mu);
  return s.why;
}

inline void S3rver::stop_all() {
  State& s = state();
  std::lock_guard lock(s.mu);
  s.server.stop();
  s.running = false;
}

class S3rverEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { S3rver::stop_all(); }
};

inline ::testing::Environment* const kS3rverEnvironment =
    ::testing::AddGlobalTestEnvironment(new S3rverEnvironment);

}  // namespace sluice::testing

// Declares `S3rver* var` for the running server, or skips the test (fails it when
// SLUICE_REQUIRE_S3=1) where s3rver cannot run.
#define SLUICE_S3RVER_OR_SKIP(var)                                              \
  ::sluice::testing::S3rver* var = ::sluice::testing::S3rver::get();            \
  if (var == nullptr) {                                                         \
    if (::sluice::testing::S3rver::required()) {                                \
      FAIL() << "SLUICE_REQUIRE_S3=1 but " << ::sluice::testing::S3rver::why(); \
    }                                                                           \
    GTEST_SKIP() << ::sluice::testing::S3rver::why();                           \
  }
