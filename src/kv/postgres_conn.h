// Internal to the postgres:// engine: URL options, libpq connections and the mapping of
// PostgreSQL errors to Status codes. Not for use outside src/kv/postgres_*.cc.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/url.h"

namespace sluice::kv::pg {

// The parsed postgres:// URL.
struct Config {
  std::string scheme;  // "postgres" or "postgresql", for describe()
  std::string user, password, host, port, dbname;
  std::string prefix;
  std::string sslmode;
  int connect_timeout_s = 2;
  int max_connections = 32;

  // scheme://user@host:port/db?prefix=..., without the password.
  std::string describe() const;
};

// kInvalid with a one-line message for a malformed URL or an unknown option. The password
// comes from the URL or else from env SLUICE_META_PASSWORD.
Result<Config> parse_config(const Url& url);

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, ConnDeleter>;

// Opens a connection to `dbname` (the config's database when empty), with short connect
// and TCP timeouts. Failures: kNotFound when the database does not exist, kAccess when
// authentication fails, else kUnavailable; one line naming the engine.
Result<PgConn> connect(const Config& cfg, const std::string& dbname = "");

// The Status for a failed command (r may be null): kConflict for serialization failures
// (40001) and deadlocks (40P01); kUnavailable for a broken connection, connection
// exceptions (08xxx), shutdowns (57P0x) and exhausted resources (53xxx); else by SQLSTATE.
// `what` names the step, e.g. "commit".
Status error_of(PGconn* c, const PGresult* r, const std::string& engine, std::string_view what);

// True when the connection is known to be broken, or r's error is one that ends the
// session (the commit outcome is then unknown).
bool connection_lost(PGconn* c, const PGresult* r);

}  // namespace sluice::kv::pg
