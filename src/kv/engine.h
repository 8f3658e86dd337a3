// kv: the transactional key-value contract that all metadata lives on.
//
// An Engine runs closures over a Txn atomically. Keys and values are arbitrary byte
// strings; keys order bytewise (memcmp), so big-endian encoded integers scan in numeric
// order. Engines: sqlite3://PATH (embedded default), mem://NAME (tests, fault
// injection), postgres://USER@HOST:PORT/DATABASE (kv/postgres_engine.h). Every engine
// passes tests/kv/conformance_test.cc.
//
// The driver (Engine::transact) owns retries: a closure may run several times, so it
// must not have side effects outside the Txn other than assigning its outputs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::kv {

struct KeyValue {
  std::string key;
  std::string value;
};

// One transaction's view. Reads see the transaction's own writes. Not thread-safe:
// a Txn belongs to the thread running the closure, and is only valid inside it.
class Txn {
 public:
  virtual ~Txn() = default;

  // nullopt when the key does not exist.
  virtual Result<std::optional<std::string>> get(std::string_view key) = 0;
  // One answer per key, in order. The default calls get() per key; engines with a
  // batched read override it.
  virtual Result<std::vector<std::optional<std::string>>> multi_get(
      const std::vector<std::string>& keys);
  // Keys in [begin, end) in ascending order; at most `limit` of them (0 = no limit).
  // An empty `end` means "to the end of the key space".
  virtual Result<std::vector<KeyValue>> scan(std::string_view begin, std::string_view end,
                                             size_t limit = 0) = 0;
  // Writes fail with kReadOnly inside Engine::read().
  virtual Status put(std::string_view key, std::string_view value) = 0;
  virtual Status del(std::string_view key) = 0;  // deleting a missing key is not an error
};

using TxnFn = std::function<Status(Txn&)>;

struct RetryOptions {
  int max_attempts = 50;        // then kConflict / kUnavailable reaches the caller
  int64_t base_backoff_us = 200;
  int64_t max_backoff_us = 100'000;
};

// Counted by the driver, for metrics: one per transact()/read() call, plus the attempts
// that were retried and the calls that failed.
struct EngineStats {
  std::atomic<uint64_t> transactions{0}, reads{0}, retries{0}, failures{0};
};

// Thread-safe: any number of threads may call transact()/read() at once.
class Engine {
 public:
  virtual ~Engine() = default;

  // Runs fn atomically and durably. If fn returns an error, nothing is written and the
  // error is returned. Conflicts (and retryable engine errors) re-run fn from scratch
  // with exponential backoff and jitter, up to RetryOptions::max_attempts.
  Status transact(const TxnFn& fn);
  // Runs fn over a consistent snapshot; writes are refused.
  Status read(const TxnFn& fn);

  void set_retry_options(RetryOptions o) { retry_ = o; }
  const EngineStats& stats() const { return stats_; }
  // The URL it was opened with, credentials removed.
  virtual std::string describe() const = 0;

 protected:
  // One attempt: begin a transaction, run fn, commit. Returns kConflict when the commit
  // lost a race (the driver then retries). Implemented by each engine.
  virtual Status attempt(const TxnFn& fn, bool read_only) = 0;

 private:
  Status drive(const TxnFn& fn, bool read_only);
  RetryOptions retry_;
  EngineStats stats_;
};

// Opens an engine by URL. Unknown schemes fail with a one-line kInvalid message that
// lists the supported ones. With create=false a missing database (e.g. no SQLite file)
// is kNotFound with a one-line message naming it; `format` passes create=true.
Result<std::shared_ptr<Engine>> open_engine(const std::string& url, bool create = false);

}  // namespace sluice::kv
