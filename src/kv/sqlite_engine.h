// sqlite3://PATH — the embedded default engine. One table kv(k BLOB PRIMARY KEY, v BLOB)
// in WAL mode; safe for many threads (a connection pool) and many processes on one file.
#pragma once

#include <memory>

#include "common/url.h"
#include "kv/engine.h"

namespace sluice::kv {

// URL: sqlite3://PATH[?sync=full|normal&busy_timeout_ms=N]. PATH is relative to the
// working directory unless it starts with '/', so sqlite3:///var/lib/x.db is absolute.
Result<std::shared_ptr<Engine>> open_sqlite_engine(const Url& url, bool create);

}  // namespace sluice::kv
