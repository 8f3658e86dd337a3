// PostgresServer: a throwaway PostgreSQL (Debian's postgresql package, binaries under
// /usr/lib/postgresql/<version>/bin or $SLUICE_PG_BIN) for tests. Started at first use:
// initdb in a temp directory, then postgres listening on 127.0.0.1 at a free port with
// its unix socket in the same directory; stopped (and the directory removed) when the
// test program ends, by a gtest global Environment. initdb and postgres refuse to run as
// root, so when we are root they run as the `postgres` user (fork + setuid). The server
// inherits none of the test's file descriptors.
//
// Auth: trust for everyone on loopback, except role kPgPasswordUser (password
// kPgPassword, may create databases), which must authenticate with SCRAM. Database
// kPgDatabase exists from the start. fsync is off: the tests restart the server cleanly
// (stop/start) or kill it, neither of which loses what the OS already has.
//
// Tests use SLUICE_POSTGRES_OR_SKIP(var): where PostgreSQL cannot run the test is skipped,
// or fails when SLUICE_REQUIRE_SERVERS=1 (scripts/test.sh sets it).
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::testing {

inline constexpr const char* kPgDatabase = "sluice_test";
inline constexpr const char* kPgPasswordUser = "sluice_pw";
inline constexpr const char* kPgPassword = "pw-s3cret";

class PostgresServer {
 public:
  // The running server, started on first call; nullptr when it cannot run (see why()).
  static PostgresServer* get();
  static std::string why();
  static bool required() {
    const char* v = std::getenv("SLUICE_REQUIRE_SERVERS");
    return v != nullptr && std::string(v) == "1";
  }
  static void stop_all();

  int port() const { return port_; }
  // postgres://postgres@127.0.0.1:PORT/<db>[?prefix=<prefix>]
  std::string url(const std::string& prefix, const std::string& db = kPgDatabase) const {
    std::string u = "postgres://postgres@127.0.0.1:" + std::to_string(port_) + "/" + db;
    return prefix.empty() ? u : u + "?prefix=" + prefix;
  }
  // A URL with a prefix no other call in any process has returned.
  std::string fresh_url() const {
    static std::atomic<int> seq{0};
    return url("t" + std::to_string(getpid()) + "_" + std::to_string(seq++));
  }

  // Fast shutdown (SIGINT: clients are disconnected, everything committed is kept).
  void stop() { signal_and_wait(SIGINT); }
  // Immediate shutdown (SIGQUIT: like a crash; the next start runs WAL recovery).
  void kill() { signal_and_wait(SIGQUIT); }
  // Starts again on the same data directory and port; false (with why) if it does not.
  bool start(std::string& why) { return launch(why); }
  bool running() const { return pid_ > 0; }

  // Runs sql as the superuser in db; returns libpq's error message, empty on success.
  std::string exec(const std::string& sql, const std::string& db = "postgres") const {
    const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port_) +
                                 " user=postgres dbname=" + db + " connect_timeout=5";
    PGconn* c = PQconnectdb(conninfo.c_str());
    std::string err;
    if (PQstatus(c) != CONNECTION_OK) {
      err = PQerrorMessage(c);
    } else {
      PGresult* r = PQexec(c, sql.c_str());
      ExecStatusType s = PQresultStatus(r);
      if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) err = PQresultErrorMessage(r);
      PQclear(r);
    }
    PQfinish(c);
    return err;
  }

 private:
  struct State;
  static State& state();

  static std::string bindir() {
    if (const char* v = std::getenv("SLUICE_PG_BIN"); v != nullptr && *v != '\0') return v;
    for (const char* ver : {"17", "16", "15", "14", "13"}) {
      std::string d = std::string("/usr/lib/postgresql/") + ver + "/bin";
      if (::access((d + "/postgres").c_str(), X_OK) == 0) return d;
    }
    return "";
  }

  static int free_port() {
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

  // Forks and execs argv as the server's user with output appended to the log; the child
  // gets `death_signal` when this thread exits.
  pid_t spawn(const std::vector<std::string>& argv, int death_signal) const {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const std::string log = dir_ + "/server.log";
    pid_t pid = ::fork();
    if (pid == 0) {  // only async-signal-safe calls until exec
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      // No other descriptor of the test may live on in the server: a file open on a Sluice
      // mount, closed by an exiting backend, would wait in FUSE flush for a metadata commit
      // that waits for this very server (a deadlock at shutdown).
      ::close_range(3, ~0U, 0);
      if (run_as_ != static_cast<uid_t>(-1)) {
        if (::setgroups(0, nullptr) != 0 || ::setgid(run_gid_) != 0 || ::setuid(run_as_) != 0) {
          ::_exit(126);
        }
      }
      ::prctl(PR_SET_PDEATHSIG, death_signal);  // after setuid, which clears it
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    return pid;
  }

  void init(std::string& why) {
    const std::string bin = bindir();
    if (bin.empty()) {
      why = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres)";
      return;
    }
    bin_ = bin;
    if (::geteuid() == 0) {
      struct passwd* pw = ::getpwnam("postgres");
      if (pw == nullptr) {
        why = "running as root and there is no `postgres` user to run PostgreSQL as";
        return;
      }
      run_as_ = pw->pw_uid;
      run_gid_ = pw->pw_gid;
    }
    dir_ = (std::filesystem::temp_directory_path() / "sluice-pg-XXXXXX").string();
    if (::mkdtemp(dir_.data()) == nullptr) {
      why = "mkdtemp failed for " + dir_;
      dir_.clear();
      return;
    }
    if (run_as_ != static_cast<uid_t>(-1) && ::chown(dir_.c_str(), run_as_, run_gid_) != 0) {
      why = "cannot give " + dir_ + " to the postgres user";
      return;
    }
    pid_t p = spawn({bin_ + "/initdb", "-D", dir_ + "/data", "-U", "postgres", "-A", "trust", "-E",
                     "UTF8", "--locale=C", "--no-sync"},
                    SIGKILL);
    int status = 0;
    if (p < 0 || ::waitpid(p, &status, 0) != p || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      why = "initdb failed (log in " + dir_ + "/server.log)";
      return;
    }
    {
      std::ofstream hba(dir_ + "/data/pg_hba.conf", std::ios::trunc);
      hba << "local all all trust\n"
          << "host all " << kPgPasswordUser << " 127.0.0.1/32 scram-sha-256\n"
          << "host all all 127.0.0.1/32 trust\n";
    }
    port_ = free_port();
    if (!launch(why)) return;
    for (const std::string& sql : {std::string("CREATE DATABASE ") + kPgDatabase,
                                   std::string("CREATE ROLE ") + kPgPasswordUser +
                                       " LOGIN CREATEDB PASSWORD '" + kPgPassword + "'"}) {
      if (std::string err = exec(sql); !err.empty()) {
        why = "setting up the test server: " + err;
        return;
      }
    }
  }

  bool launch(std::string& why) {
    const std::string port = std::to_string(port_);
    pid_ = spawn({bin_ + "/postgres", "-D", dir_ + "/data", "-p", port, "-k", dir_, "-c",
                  "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=300",
                  "-c", "shared_buffers=32MB"},
                 SIGQUIT);
    const std::string ping = "host=127.0.0.1 port=" + port + " user=postgres dbname=postgres";
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (PQping(ping.c_str()) == PQPING_OK) return true;
      int status;
      if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        why = "postgres exited at start (log in " + dir_ + "/server.log)";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    why = "postgres did not accept connections on port " + port + " within 60 s";
    signal_and_wait(SIGQUIT);
    return false;
  }

  void signal_and_wait(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  void destroy() {
    signal_and_wait(SIGINT);
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  std::string bin_, dir_;
  uid_t run_as_ = static_cast<uid_t>(-1);
  gid_t run_gid_ = static_cast<gid_t>(-1);
  pid_t pid_ = -1;
  int port_ = 0;
};

struct PostgresServer::State {
  std::mutex mu;
  bool tried = false, ok = false;
  std::string why;
  PostgresServer server;
};

inline PostgresServer::State& PostgresServer::state() {
  static State s;
  return s;
}

inline PostgresServer* PostgresServer::get() {
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.tried) {
    s.tried = true;
    s.server.init(s.why);
    s.ok = s.why.empty();
  }
  return s.ok ? &s.server : nullptr;
}

inline std::string PostgresServer::why() {
  State& s = state();
  std::lock_guard lock(s.mu);
  return s.why;
}

inline void PostgresServer::stop_all() {
  State& s = state();
  std::lock_guard lock(s.mu);
  s.server.destroy();
  s.ok = false;
}

class PostgresEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { PostgresServer::stop_all(); }
};

inline ::testing::Environment* const kPostgresEnvironment =
    ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

}  // namespace sluice::testing

// Declares `PostgresServer* var` for the running server, or skips the test (fails it
// when SLUICE_REQUIRE_SERVERS=1) where PostgreSQL cannot run.
#define SLUICE_POSTGRES_OR_SKIP(var)                                                         \
  ::sluice::testing::PostgresServer* var = ::sluice::testing::PostgresServer::get();         \
  if (var == nullptr) {                                                                      \
    if (::sluice::testing::PostgresServer::required()) {                                     \
      FAIL() << "SLUICE_REQUIRE_SERVERS=1 but " << ::sluice::testing::PostgresServer::why(); \
    }                                                                                        \
    GTEST_SKIP() << ::sluice::testing::PostgresServer::why();                                \
  }
