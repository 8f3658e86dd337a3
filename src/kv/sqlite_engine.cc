// sqlite3://PATH engine: one WITHOUT ROWID table kv(k, v) in WAL mode.
//
// Threads: each attempt leases one connection from a small pool (connections are used by
// one thread at a time, so they are opened NOMUTEX). Writers in this process take turns
// (begin_writing) before BEGIN IMMEDIATE, so they never spin in SQLite's busy handler against
// each other; writers in other processes are arbitrated by SQLite's file locks and
// busy_timeout. A begin or commit that still finds the database busy is kConflict, which
// the driver in engine.cc retries. Prepared statements are cached per connection.
#include "kv/sqlite_engine.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

namespace sluice::kv {

namespace {

constexpr size_t kMaxIdleConnections = 8;

enum StmtId {
  kBeginRead,
  kBeginWrite,
  kCommit,
  kRollback,
  kGet,
  kPut,
  kDel,
  kScan,
  kScanToEnd,
  kNumStmts
};

constexpr const char* kSql[kNumStmts] = {
    "BEGIN DEFERRED",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SELECT v FROM kv WHERE k = ?1",
    "INSERT INTO kv(k, v) VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
    "DELETE FROM kv WHERE k = ?1",
    "SELECT k, v FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3",
    "SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2",
};

struct Options {
  bool sync_full = true;
  int busy_timeout_ms = 5000;
};

// SQLITE_BUSY and SQLITE_LOCKED become kConflict, which the driver retries.
Code code_of(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Code::kConflict;
    case SQLITE_FULL:
      return Code::kNoSpace;
    case SQLITE_READONLY:
      return Code::kReadOnly;
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return Code::kAccess;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Code::kCorruption;
    case SQLITE_TOOBIG:
      return Code::kInvalid;
    default:
      return Code::kIO;
  }
}

// A one-line error naming the database, the step that failed and SQLite's reason.
Status sqlite_error(sqlite3* db, int rc, const std::string& path, std::string_view what) {
  const char* reason = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Status(code_of(rc),
                "metadata database " + path + ": " + std::string(what) + ": " + reason);
}

// One open connection and its cached statements.
struct Conn {
  sqlite3* db = nullptr;
  sqlite3_stmt* stmts[kNumStmts] = {};

  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() {
    for (sqlite3_stmt* s : stmts) sqlite3_finalize(s);
    sqlite3_close_v2(db);
  }
};

// Borrows a cached statement and resets it (dropping bindings) when the scope ends.
class Stmt {
 public:
  Stmt(Conn& c, StmtId id) : s_(c.stmts[id]) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binds bytes as a BLOB; an empty string binds a zero-length BLOB, never NULL. The
  // bytes must outlive this Stmt.
  int bind(int i, std::string_view b) {
    static const char kEmpty = 0;
    if (b.size() > INT_MAX) return SQLITE_TOOBIG;
    return sqlite3_bind_blob(s_, i, b.empty() ? &kEmpty : b.data(), static_cast<int>(b.size()),
                             SQLITE_STATIC);
  }
  int bind(int i, int64_t v) { return sqlite3_bind_int64(s_, i, v); }
  int step() { return sqlite3_step(s_); }
  std::string column(int col) {
    const void* p = sqlite3_column_blob(s_, col);
    int n = sqlite3_column_bytes(s_, col);
    return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
  }

 private:
  sqlite3_stmt* s_;
};

class SqliteTxn final : public Txn {
 public:
  SqliteTxn(Conn& c, bool read_only, const std::string& path)
      : c_(c), read_only_(read_only), path_(path) {}

  Result<std::optional<std::string>> get(std::string_view key) override {
    Stmt s(c_, kGet);
    int rc = s.bind(1, key);
    if (rc == SQLITE_OK) rc = s.step();
    if (rc == SQLITE_ROW) return std::optional<std::string>(s.column(0));
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    return sqlite_error(c_.db, rc, path_, "get");
  }

  Result<std::vector<KeyValue>> scan(std::string_view begin, std::string_view end,
                                     size_t limit) override {
    Stmt s(c_, end.empty() ? kScanToEnd : kScan);
    int64_t lim = limit == 0 || limit > INT64_MAX ? -1 : static_cast<int64_t>(limit);
    int rc = s.bind(1, begin);
    if (rc == SQLITE_OK) rc = end.empty() ? s.bind(2, lim) : s.bind(2, end);
    if (rc == SQLITE_OK && !end.empty()) rc = s.bind(3, lim);
    std::vector<KeyValue> out;
    if (rc == SQLITE_OK) {
      while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.column(0), s.column(1)});
    }
    if (rc != SQLITE_DONE) return sqlite_error(c_.db, rc, path_, "scan");
    return out;
  }

  Status put(std::string_view key, std::string_view value) override {
    if (read_only_) return Status(Code::kReadOnly, "put in a read-only transaction");
    Stmt s(c_, kPut);
    int rc = s.bind(1, key);
    if (rc == SQLITE_OK) rc = s.bind(2, value);
    if (rc == SQLITE_OK) rc = s.step();
    return rc == SQLITE_DONE ? Status::OK() : sqlite_error(c_.db, rc, path_, "put");
  }

  Status del(std::string_view key) override {
    if (read_only_) return Status(Code::kReadOnly, "delete in a read-only transaction");
    Stmt s(c_, kDel);
    int rc = s.bind(1, key);
    if (rc == SQLITE_OK) rc = s.step();
    return rc == SQLITE_DONE ? Status::OK() : sqlite_error(c_.db, rc, path_, "delete");
  }

 private:
  Conn& c_;
  bool read_only_;
  const std::string& path_;
};

class SqliteEngine final : public Engine {
 public:
  SqliteEngine(std::string path, Options opts) : path_(std::move(path)), opts_(opts) {}

  // Opens the first connection, switches the file to WAL and creates (create=true) or
  // checks for the kv table.
  Status init(bool create) {
    ASSIGN_OR_RETURN(auto c, connect(create));
    auto exec = [&](const char* sql, const char* what) -> Status {
      int rc = sqlite3_exec(c->db, sql, nullptr, nullptr, nullptr);
      return rc == SQLITE_OK ? Status::OK() : sqlite_error(c->db, rc, path_, what);
    };
    RETURN_IF_ERROR(exec("PRAGMA journal_mode=WAL", "enabling WAL"));
    if (create) {
      RETURN_IF_ERROR(
          exec("CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) "
               "WITHOUT ROWID",
               "creating the kv table"));
    } else {
      bool found = false;
      int rc = sqlite3_exec(
          c->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv'",
          [](void* f, int, char**, char**) {
            *static_cast<bool*>(f) = true;
            return 0;
          },
          &found, nullptr);
      if (rc != SQLITE_OK) return sqlite_error(c->db, rc, path_, "reading the schema");
      if (!found) {
        return Status(Code::kInvalid,
                      "metadata database " + path_ + " is not a Sluice database (no kv table)");
      }
    }
    RETURN_IF_ERROR(prepare(*c));
    idle_.push_back(std::move(c));
    return Status::OK();
  }

  std::string describe() const override { return "sqlite3://" + path_; }

 protected:
  Status attempt(const TxnFn& fn, bool read_only) override {
    if (!read_only && !begin_writing()) {
      return Status(Code::kConflict, "metadata database " + path_ + ": writer turn timed out");
    }
    struct EndWriting {
      SqliteEngine* e;  // null for read-only attempts
      ~EndWriting() {
        if (e) e->end_writing();
      }
    } writing_guard{read_only ? nullptr : this};
    ASSIGN_OR_RETURN(auto conn, acquire());
    Lease lease(*this, std::move(conn));
    Conn& c = *lease.conn;

    int rc = Stmt(c, read_only ? kBeginRead : kBeginWrite).step();
    if (rc != SQLITE_DONE) return sqlite_error(c.db, rc, path_, "begin");
    SqliteTxn txn(c, read_only, path_);
    RETURN_IF_ERROR(fn(txn));  // the lease rolls back
    rc = Stmt(c, kCommit).step();
    if (rc != SQLITE_DONE) return sqlite_error(c.db, rc, path_, "commit");
    return Status::OK();
  }

 private:
  // Waits up to busy_timeout_ms for this engine's writer turn.
  bool begin_writing() {
    std::unique_lock<std::mutex> l(writer_mu_);
    auto timeout = std::chrono::milliseconds(opts_.busy_timeout_ms);
    if (!writer_cv_.wait_for(l, timeout, [&] { return !writing_; })) return false;
    writing_ = true;
    return true;
  }

  void end_writing() {
    {
      std::lock_guard<std::mutex> g(writer_mu_);
      writing_ = false;
    }
    writer_cv_.notify_one();
  }

  // A leased connection. On release an unfinished transaction is rolled back; a
  // connection that cannot be brought back to autocommit is closed, not pooled.
  struct Lease {
    SqliteEngine& e;
    std::unique_ptr<Conn> conn;
    Lease(SqliteEngine& engine, std::unique_ptr<Conn> c) : e(engine), conn(std::move(c)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (!sqlite3_get_autocommit(conn->db)) Stmt(*conn, kRollback).step();
      if (!sqlite3_get_autocommit(conn->db)) return;
      std::lock_guard<std::mutex> g(e.mu_);
      if (e.idle_.size() < kMaxIdleConnections) e.idle_.push_back(std::move(conn));
    }
  };

  Result<std::unique_ptr<Conn>> acquire() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    ASSIGN_OR_RETURN(auto c, connect(false));
    RETURN_IF_ERROR(prepare(*c));
    return c;
  }

  Result<std::unique_ptr<Conn>> connect(bool create) {
    auto c = std::make_unique<Conn>();
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path_.c_str(), &c->db, flags, nullptr);
    if (rc != SQLITE_OK) return sqlite_error(c->db, rc, path_, "open");
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, opts_.busy_timeout_ms);
    const char* sync = opts_.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
    rc = sqlite3_exec(c->db, sync, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return sqlite_error(c->db, rc, path_, "setting synchronous");
    return c;
  }

  Status prepare(Conn& c) {
    for (int i = 0; i < kNumStmts; i++) {
      int rc =
          sqlite3_prepare_v3(c.db, kSql[i], -1, SQLITE_PREPARE_PERSISTENT, &c.stmts[i], nullptr);
      if (rc != SQLITE_OK) return sqlite_error(c.db, rc, path_, "preparing statements");
    }
    return Status::OK();
  }

  const std::string path_;
  const Options opts_;
  // One writer of this engine at a time, from BEGIN IMMEDIATE to commit or rollback
  // (a flag and a condition variable: TSan cannot see std::timed_mutex's timed lock).
  std::mutex writer_mu_;
  std::condition_variable writer_cv_;
  bool writing_ = false;  // guarded by writer_mu_
  std::mutex mu_;         // guards idle_; never held while waiting for the writer turn
  std::vector<std::unique_ptr<Conn>> idle_;
};

Result<Options> parse_options(const Url& url) {
  Options o;
  for (const auto& [k, v] : url.query) {
    if (k == "sync") {
      if (v != "full" && v != "normal") {
        return Status(Code::kInvalid, "sqlite3 option sync='" + v + "': expected full or normal");
      }
      o.sync_full = v == "full";
    } else if (k == "busy_timeout_ms") {
      char* endp = nullptr;
      errno = 0;
      long ms = std::strtol(v.c_str(), &endp, 10);
      if (v.empty() || *endp != '\0' || errno != 0 || ms < 0 || ms > INT_MAX) {
        return Status(Code::kInvalid,
                      "sqlite3 option busy_timeout_ms='" + v + "': expected milliseconds");
      }
      o.busy_timeout_ms = static_cast<int>(ms);
    } else {
      return Status(Code::kInvalid,
                    "unknown sqlite3 option '" + k + "' (supported: sync, busy_timeout_ms)");
    }
  }
  return o;
}

// Turns the usual path problems into one-line errors before SQLite gives a vaguer one.
Status check_path(const std::string& path, bool create) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return Status(Code::kIsDir, "metadata database " + path + " is a directory");
    }
    if (access(path.c_str(), R_OK | W_OK) != 0) {
      int err = errno;
      return Status::FromErrno(err, "metadata database " + path +
                                        " is not readable and "
                                        "writable: " +
                                        std::strerror(err));
    }
    return Status::OK();
  }
  int err = errno;
  if (err != ENOENT) {
    return Status::FromErrno(err, "metadata database " + path + ": " + std::strerror(err));
  }
  if (!create) return Status(Code::kNotFound, "metadata database " + path + " does not exist");
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status(Code::kNotFound, "cannot create metadata database " + path + ": directory " +
                                       dir + " does not exist");
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return Status(Code::kAccess, "cannot create metadata database " + path + ": directory " + dir +
                                     " is not writable");
  }
  return Status::OK();
}

}  // namespace

Result<std::shared_ptr<Engine>> open_sqlite_engine(const Url& url, bool create) {
  if (url.body.empty()) {
    return Status(Code::kInvalid,
                  "sqlite3:// URL needs a file path, e.g. "
                  "sqlite3:///var/lib/sluice/meta.db");
  }
  ASSIGN_OR_RETURN(Options opts, parse_options(url));
  RETURN_IF_ERROR(check_path(url.body, create));
  auto e = std::make_shared<SqliteEngine>(url.body, opts);
  RETURN_IF_ERROR(e->init(create));
  return std::shared_ptr<Engine>(std::move(e));
}

}  // namespace sluice::kv
