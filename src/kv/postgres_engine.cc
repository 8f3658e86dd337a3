// postgres:// engine: kv over one PostgreSQL table, sluice_kv(k bytea PRIMARY KEY, v bytea).
//
// Isolation: transact() runs at SERIALIZABLE. The kv contract is serializable
// transactions, and REPEATABLE READ (snapshot isolation) is not: it allows write skew,
// e.g. two closures that each read keys A and B and write only one of them. PostgreSQL's
// SSI turns every such race into a 40001 serialization failure, which is kConflict here,
// so the driver in engine.cc re-runs the closure. read() runs at REPEATABLE READ READ ONLY:
// one consistent snapshot, never aborted, and it causes no aborts of writers.
//
// Threads: a pool of connections (at most max_connections), each used by one attempt at
// a time; statements are prepared once per connection and use binary parameters and
// results. A broken connection fails the attempt with kUnavailable and is dropped with
// every idle one (after a server restart they are all dead); the next attempt connects
// afresh, so the engine reconnects by itself.
//
// Commit outcome: when the connection breaks during COMMIT, the commit may or may not have
// happened. Every write transaction learns its transaction id at BEGIN, so the engine
// reconnects and asks txid_status(): committed → success, aborted → kUnavailable (the
// driver may safely re-run the closure); still unknown after kResolveTimeout → kIO, never
// a re-run that could apply the closure twice.
#include "kv/postgres_engine.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kv/postgres_conn.h"

namespace sluice::kv {

namespace {

using pg::PgConn;
using pg::PgResult;

constexpr const char* kTable = "sluice_kv";
constexpr Oid kByteaOid = 17, kByteaArrayOid = 1001, kInt8Oid = 20;
constexpr auto kResolveTimeout = std::chrono::seconds(20);
constexpr auto kPoolWait = std::chrono::seconds(10);

enum StmtId { kGet, kMultiGet, kScan, kPut, kDel, kNumStmts };

struct StmtDef {
  const char* name;
  const char* sql;
  int nparams;
  Oid types[3];
};

constexpr StmtDef kStmts[kNumStmts] = {
    {"sluice_get", "SELECT v FROM sluice_kv WHERE k = $1", 1, {kByteaOid}},
    {"sluice_mget", "SELECT k, v FROM sluice_kv WHERE k = ANY($1)", 1, {kByteaArrayOid}},
    {"sluice_scan",
     "SELECT k, v FROM sluice_kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3",
     3,
     {kByteaOid, kByteaOid, kInt8Oid}},
    {"sluice_put",
     "INSERT INTO sluice_kv(k, v) VALUES($1, $2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
     2,
     {kByteaOid, kByteaOid}},
    {"sluice_del", "DELETE FROM sluice_kv WHERE k = $1", 1, {kByteaOid}},
};

void put_be32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>(v >> s));
}

// keys as a one-dimensional bytea[] in PostgreSQL's binary array format.
std::string bytea_array(const std::vector<std::string>& keys) {
  std::string out;
  put_be32(out, 1);  // dimensions
  put_be32(out, 0);  // no NULLs
  put_be32(out, kByteaOid);
  put_be32(out, static_cast<uint32_t>(keys.size()));
  put_be32(out, 1);  // lower bound
  for (const auto& k : keys) {
    put_be32(out, static_cast<uint32_t>(k.size()));
    out += k;
  }
  return out;
}

std::string column(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}

class PgEngine;

class PgTxn final : public Txn {
 public:
  PgTxn(PgEngine& e, PGconn* c, bool read_only) : e_(e), c_(c), read_only_(read_only) {}

  Result<std::optional<std::string>> get(std::string_view key) override;
  Result<std::vector<std::optional<std::string>>> multi_get(
      const std::vector<std::string>& keys) override;
  Result<std::vector<KeyValue>> scan(std::string_view begin, std::string_view end,
                                     size_t limit) override;
  Status put(std::string_view key, std::string_view value) override;
  Status del(std::string_view key) override;

  // The first error of any statement: PostgreSQL aborts the transaction then, so the
  // attempt must fail even if the closure ignored the error.
  const Status& failed() const { return failed_; }

 private:
  // Runs a prepared statement with binary parameters (a null value is SQL NULL) and
  // binary results; an error becomes failed_.
  Result<PgResult> exec(StmtId id, std::initializer_list<std::optional<std::string_view>> params);

  PgEngine& e_;
  PGconn* c_;
  bool read_only_;
  Status failed_;
};

class PgEngine final : public Engine {
 public:
  explicit PgEngine(pg::Config cfg)
      : cfg_(std::move(cfg)),
        desc_(cfg_.describe()),
        key_prefix_(cfg_.prefix + '\0'),
        key_end_(cfg_.prefix + '\x01') {}

  // Connects (creating the database when create and it is missing) and creates
  // (create=true) or checks for the table.
  Status init(bool create) {
    auto c = pg::connect(cfg_);
    if (!c.ok() && c.status().is(Code::kNotFound) && create) {
      RETURN_IF_ERROR(create_database());
      c = pg::connect(cfg_);
    }
    if (!c.ok()) return c.status();
    PGconn* conn = c->get();
    if (create) {
      PgResult r(PQexec(conn,
                        "CREATE TABLE IF NOT EXISTS sluice_kv(k bytea PRIMARY KEY, v bytea NOT "
                        "NULL)"));
      // Two formats racing to create the table: the loser fails, but the table exists.
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        Status st = pg::error_of(conn, r.get(), desc_, "creating table sluice_kv");
        ASSIGN_OR_RETURN(bool exists, table_exists(conn));
        if (!exists) return st;
      }
    } else {
      ASSIGN_OR_RETURN(bool exists, table_exists(conn));
      if (!exists) {
        return Status(Code::kNotFound, "metadata engine " + desc_ + " is not formatted (no table " +
                                           kTable + "; run sluice format)");
      }
    }
    RETURN_IF_ERROR(prepare(conn));
    std::lock_guard g(mu_);
    open_++;
    idle_.push_back(std::move(*c));
    return Status::OK();
  }

  std::string describe() const override { return desc_; }

  std::string stored(std::string_view key) const { return key_prefix_ + std::string(key); }
  std::string_view user_key(std::string_view stored) const {
    return stored.substr(key_prefix_.size());
  }
  const std::string& key_end() const { return key_end_; }
  const std::string& desc() const { return desc_; }

 protected:
  Status attempt(const TxnFn& fn, bool read_only) override {
    ASSIGN_OR_RETURN(PgConn conn, acquire());
    Lease lease(*this, std::move(conn));
    PGconn* c = lease.conn.get();

    int64_t xid = 0;
    if (read_only) {
      PgResult r(PQexec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        return pg::error_of(c, r.get(), desc_, "begin");
      }
    } else {
      // One round trip: BEGIN, and the transaction id for resolving a lost commit.
      PgResult r(PQexec(c, "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT txid_current()"));
      if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
        return pg::error_of(c, r.get(), desc_, "begin");
      }
      xid = std::strtoll(PQgetvalue(r.get(), 0, 0), nullptr, 10);
    }
    PgTxn txn(*this, c, read_only);
    Status st = fn(txn);
    if (!txn.failed().ok()) return txn.failed();  // the lease rolls back
    if (!st.ok()) return st;

    PgResult r(PQexec(c, "COMMIT"));
    if (PQresultStatus(r.get()) == PGRES_COMMAND_OK &&
        std::strcmp(PQcmdStatus(r.get()), "COMMIT") == 0) {
      return Status::OK();
    }
    Status err = pg::error_of(c, r.get(), desc_, "commit");
    if (read_only || !pg::connection_lost(c, r.get())) {
      return err.ok() ? Status(Code::kConflict, "metadata engine " + desc_ + ": rolled back") : err;
    }
    return resolve(xid, err);
  }

 private:
  // A leased connection: rolled back and pooled when the attempt ends, or closed when it
  // is broken, together with every idle one.
  struct Lease {
    PgEngine& e;
    PgConn conn;
    Lease(PgEngine& engine, PgConn c) : e(engine), conn(std::move(c)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      PGconn* c = conn.get();
      if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        PgResult r(PQexec(c, "ROLLBACK"));
      }
      bool healthy = PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
      std::vector<PgConn> dropped;  // closed outside the lock
      {
        std::lock_guard g(e.mu_);
        if (healthy) {
          e.idle_.push_back(std::move(conn));
        } else {
          dropped.push_back(std::move(conn));
          for (auto& i : e.idle_) dropped.push_back(std::move(i));
          e.open_ -= static_cast<int>(e.idle_.size());
          e.idle_.clear();
          e.open_--;
        }
      }
      e.cv_.notify_all();  // one pooled, or several closed: waiters may connect anew
    }
  };

  // An idle connection, or a new one while fewer than max_connections are open.
  Result<PgConn> acquire() {
    {
      std::unique_lock l(mu_);
      if (!cv_.wait_for(l, kPoolWait,
                        [&] { return !idle_.empty() || open_ < cfg_.max_connections; })) {
        return Status(Code::kUnavailable, "metadata engine " + desc_ + ": all " +
                                              std::to_string(cfg_.max_connections) +
                                              " connections stayed busy");
      }
      if (!idle_.empty()) {
        PgConn c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      open_++;  // reserved while connecting
    }
    auto c = pg::connect(cfg_);
    Status st = c.ok() ? prepare(c->get()) : c.status();
    if (!st.ok()) {
      {
        std::lock_guard g(mu_);
        open_--;
      }
      cv_.notify_one();
      // A database or table that vanished while mounted is an outage to retry through.
      return st.is(Code::kNotFound) ? Status(Code::kUnavailable, st.message()) : st;
    }
    return std::move(*c);
  }

  Status prepare(PGconn* c) {
    for (const StmtDef& s : kStmts) {
      PgResult r(PQprepare(c, s.name, s.sql, s.nparams, s.types));
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        return pg::error_of(c, r.get(), desc_, "preparing statements");
      }
    }
    return Status::OK();
  }

  Result<bool> table_exists(PGconn* c) {
    PgResult r(PQexec(c, "SELECT to_regclass('sluice_kv') IS NOT NULL"));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
      return pg::error_of(c, r.get(), desc_, "checking for table sluice_kv");
    }
    return std::strcmp(PQgetvalue(r.get(), 0, 0), "t") == 0;
  }

  // CREATE DATABASE through the "postgres" maintenance database.
  Status create_database() {
    ASSIGN_OR_RETURN(PgConn admin, pg::connect(cfg_, "postgres"));
    char* ident = PQescapeIdentifier(admin.get(), cfg_.dbname.data(), cfg_.dbname.size());
    if (ident == nullptr) return pg::error_of(admin.get(), nullptr, desc_, "creating the database");
    std::string sql = "CREATE DATABASE " + std::string(ident);
    PQfreemem(ident);
    PgResult r(PQexec(admin.get(), sql.c_str()));
    const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
    if (PQresultStatus(r.get()) == PGRES_COMMAND_OK ||
        (state != nullptr && std::strcmp(state, "42P04") == 0)) {  // created meanwhile
      return Status::OK();
    }
    return pg::error_of(admin.get(), r.get(), desc_, "creating the database");
  }

  // The connection broke during COMMIT of transaction xid: asks a new connection whether
  // it committed, for up to kResolveTimeout.
  Status resolve(int64_t xid, const Status& err) {
    const std::string id = std::to_string(xid);
    const char* params[1] = {id.c_str()};
    auto deadline = std::chrono::steady_clock::now() + kResolveTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto c = pg::connect(cfg_);
      if (c.ok()) {
        PgResult r(PQexecParams(c->get(), "SELECT txid_status($1::bigint)", 1, nullptr, params,
                                nullptr, nullptr, 0));
        if (PQresultStatus(r.get()) == PGRES_TUPLES_OK && PQntuples(r.get()) == 1) {
          std::string s = PQgetvalue(r.get(), 0, 0);
          if (s == "committed") return Status::OK();
          if (s == "aborted") return err;  // kUnavailable: nothing was written, re-run
          if (s != "in progress") break;   // NULL: too old to know
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return Status(Code::kIO,
                  err.message() + "; whether transaction " + id + " committed is unknown");
  }

  const pg::Config cfg_;
  const std::string desc_;
  const std::string key_prefix_;  // prefix + 0x00: every stored key starts with it
  const std::string key_end_;     // prefix + 0x01: just past every stored key

  std::mutex mu_;  // guards idle_ and open_
  std::condition_variable cv_;
  std::vector<PgConn> idle_;
  int open_ = 0;  // connections open, idle or leased (or being opened)
};

Result<PgResult> PgTxn::exec(StmtId id,
                             std::initializer_list<std::optional<std::string_view>> params) {
  if (!failed_.ok()) return failed_;
  const char* values[3] = {};
  int lengths[3] = {}, formats[3] = {};
  int i = 0;
  for (const auto& p : params) {
    if (p) {
      values[i] = p->empty() ? "" : p->data();
      lengths[i] = static_cast<int>(p->size());
    }
    formats[i] = 1;
    i++;
  }
  PgResult r(PQexecPrepared(c_, kStmts[id].name, i, values, lengths, formats, 1));
  ExecStatusType s = PQresultStatus(r.get());
  if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) return r;
  failed_ = pg::error_of(c_, r.get(), e_.desc(), kStmts[id].name + 7);  // "get", "put", ...
  return failed_;
}

Result<std::optional<std::string>> PgTxn::get(std::string_view key) {
  const std::string k = e_.stored(key);
  ASSIGN_OR_RETURN(PgResult r, exec(kGet, {k}));
  if (PQntuples(r.get()) == 0) return std::optional<std::string>();
  return std::optional<std::string>(column(r.get(), 0, 0));
}

Result<std::vector<std::optional<std::string>>> PgTxn::multi_get(
    const std::vector<std::string>& keys) {
  if (keys.empty()) return std::vector<std::optional<std::string>>();
  std::vector<std::string> stored;
  stored.reserve(keys.size());
  for (const auto& k : keys) stored.push_back(e_.stored(k));
  const std::string array = bytea_array(stored);
  ASSIGN_OR_RETURN(PgResult r, exec(kMultiGet, {array}));
  std::unordered_map<std::string, std::string> found;
  for (int row = 0; row < PQntuples(r.get()); row++) {
    found.emplace(column(r.get(), row, 0), column(r.get(), row, 1));
  }
  std::vector<std::optional<std::string>> out;
  out.reserve(keys.size());
  for (const auto& k : stored) {
    auto it = found.find(k);
    out.push_back(it == found.end() ? std::nullopt : std::optional<std::string>(it->second));
  }
  return out;
}

Result<std::vector<KeyValue>> PgTxn::scan(std::string_view begin, std::string_view end,
                                          size_t limit) {
  const std::string lo = e_.stored(begin);
  const std::string hi = end.empty() ? e_.key_end() : e_.stored(end);
  std::string lim;  // int8, big-endian
  for (int shift = 56; shift >= 0; shift -= 8) lim.push_back(static_cast<char>(limit >> shift));
  std::optional<std::string_view> lim_param;
  if (limit != 0 && limit <= static_cast<size_t>(INT64_MAX)) lim_param = lim;  // NULL: no limit
  ASSIGN_OR_RETURN(PgResult r, exec(kScan, {lo, hi, lim_param}));
  std::vector<KeyValue> out;
  out.reserve(static_cast<size_t>(PQntuples(r.get())));
  for (int row = 0; row < PQntuples(r.get()); row++) {
    std::string k = column(r.get(), row, 0);
    out.push_back({std::string(e_.user_key(k)), column(r.get(), row, 1)});
  }
  return out;
}

Status PgTxn::put(std::string_view key, std::string_view value) {
  if (read_only_) return Status(Code::kReadOnly, "put in a read-only transaction");
  const std::string k = e_.stored(key);
  return exec(kPut, {k, value}).status();
}

Status PgTxn::del(std::string_view key) {
  if (read_only_) return Status(Code::kReadOnly, "delete in a read-only transaction");
  const std::string k = e_.stored(key);
  return exec(kDel, {k}).status();
}

}  // namespace

Result<std::shared_ptr<Engine>> open_postgres_engine(const Url& url, bool create) {
  ASSIGN_OR_RETURN(pg::Config cfg, pg::parse_config(url));
  auto e = std::make_shared<PgEngine>(std::move(cfg));
  RETURN_IF_ERROR(e->init(create));
  return std::shared_ptr<Engine>(std::move(e));
}

}  // namespace sluice::kv
