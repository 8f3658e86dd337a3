// redis://[user:pass@]host[:port][/db][?prefix=NAME&timeout_ms=N] — a networked engine on
// Redis (libhiredis), with optimistic serializable transactions.
//
// Layout, per prefix P ("sluice" when no prefix is given): a hash P:kv maps each key to a
// 16-hex-digit version followed by its value; a sorted set P:idx holds every key with
// score 0, so ZRANGEBYLEX scans in memcmp order; P:gen counts writing commits (the version
// of the keys a commit writes). A Txn reads through to Redis and buffers its writes; the
// commit is one Lua script that checks every key version the Txn read (and a digest of
// every range it scanned, so concurrent inserts into a scanned range conflict) and then
// applies the writes atomically. Each writing commit leaves a marker P:commit:<id> for ten
// minutes, so a commit whose reply was lost (server restart) is resolved, not re-applied.
//
// Durability is Redis's: run it with appendonly yes and appendfsync always.
// Password: in the URL, or SLUICE_META_PASSWORD, or REDISCLI_AUTH. rediss:// (TLS) is
// refused with a one-line error.
#pragma once

#include <memory>

#include "common/url.h"
#include "kv/engine.h"

namespace sluice::kv {

// Connects (and authenticates) once so an unreachable server fails here, fast, with
// kUnavailable. `create` has no meaning for Redis.
Result<std::shared_ptr<Engine>> open_redis_engine(const Url& url, bool create);

}  // namespace sluice::kv
