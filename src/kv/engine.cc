// The transaction driver (retry with backoff) and engine URL dispatch.
#include "kv/engine.h"

#include <chrono>
#include <random>
#include <thread>

#include "common/url.h"
#include "kv/etcd_engine.h"
#include "kv/mem_engine.h"
#include "kv/postgres_engine.h"
#include "kv/redis_engine.h"
#include "kv/sqlite_engine.h"

namespace sluice::kv {

Result<std::vector<std::optional<std::string>>> Txn::multi_get(
    const std::vector<std::string>& keys) {
  std::vector<std::optional<std::string>> out;
  out.reserve(keys.size());
  for (const auto& k : keys) {
    ASSIGN_OR_RETURN(auto v, get(k));
    out.push_back(std::move(v));
  }
  return out;
}

Status Engine::transact(const TxnFn& fn) { return drive(fn, false); }
Status Engine::read(const TxnFn& fn) { return drive(fn, true); }

Status Engine::drive(const TxnFn& fn, bool read_only) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  int64_t backoff = retry_.base_backoff_us;
  (read_only ? stats_.reads : stats_.transactions).fetch_add(1, std::memory_order_relaxed);
  Status st;
  for (int i = 0; i < retry_.max_attempts; i++) {
    st = attempt(fn, read_only);
    if (!st.retryable()) {
      if (!st.ok()) stats_.failures.fetch_add(1, std::memory_order_relaxed);
      return st;
    }
    stats_.retries.fetch_add(1, std::memory_order_relaxed);
    std::uniform_int_distribution<int64_t> jitter(backoff / 2, backoff);
    std::this_thread::sleep_for(std::chrono::microseconds(jitter(rng)));
    backoff = std::min(backoff * 2, retry_.max_backoff_us);
  }
  stats_.failures.fetch_add(1, std::memory_order_relaxed);
  return st;
}

Result<std::shared_ptr<Engine>> open_engine(const std::string& url, bool create) {
  ASSIGN_OR_RETURN(Url u, parse_url(url));
  if (u.scheme == "sqlite3") return open_sqlite_engine(u, create);
  if (u.scheme == "mem") return open_mem_engine(u);
  if (u.scheme == "postgres" || u.scheme == "postgresql") {
    return open_postgres_engine(u, create);
  }
  if (u.scheme == "redis" || u.scheme == "rediss") return open_redis_engine(u, create);
  if (u.scheme == "etcd") return open_etcd_engine(u, create);
  return Status(Code::kInvalid, "unsupported metadata URL scheme '" + u.scheme + "://' in '" +
                                    url +
                                    "' (supported: sqlite3://, mem://, postgres://, redis://, "
                                    "etcd://)");
}

}  // namespace sluice::kv
