// sqlite3://PATH — the embedded default engine. One table kv(k BLOB PRIMARY KEY, v BLOB)
// in WAL mode; safe for many threads (a connection pool) and many processes on one file.
#pragma once

#include <memory>

#include "common/url.h"
#include "kv/engine.h"

namespace sluice::kv {

Result<std::shared_ptr<Engine>> open_sqlite_engine(const Url& url);

}  // namespace sluice::kv
