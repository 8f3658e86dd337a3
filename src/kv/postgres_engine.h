// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?options] (also postgresql://) — the
// PostgreSQL metadata engine on libpq. One table sluice_kv(k bytea PRIMARY KEY, v bytea);
// bytea compares bytewise, which is the kv key order.
//
// Options:
//   prefix=NAME         keys are stored as NAME 0x00 KEY, so several volumes share one
//                       database without seeing each other (NAME must not contain 0x00)
//   sslmode=MODE        passed to libpq (disable, prefer, require, verify-full, ...)
//   connect_timeout=S   seconds per connection attempt (default 2, libpq's minimum)
//   max_connections=N   connections this engine opens at most (default 32)
// Password: the URL's, else env SLUICE_META_PASSWORD, else libpq's own (PGPASSWORD,
// ~/.pgpass). describe() never shows it.
//
// open with create=true (format) creates the database (needs CREATEDB) and the table when
// missing; create=false fails with kNotFound when either is missing, and with a one-line
// kUnavailable when the server cannot be reached.
#pragma once

#include <memory>

#include "common/url.h"
#include "kv/engine.h"

namespace sluice::kv {

Result<std::shared_ptr<Engine>> open_postgres_engine(const Url& url, bool create);

}  // namespace sluice::kv
