// Retries with exponential backoff and jitter; the policy is in retry_store.h.
#include "object/retry_store.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "common/clock.h"
#include "common/logging.h"

namespace sluice::object {

RetryStore::RetryStore(std::shared_ptr<Store> inner, RetryOptions opts)
    : StoreWrapper(std::move(inner)), opts_(opts) {}

int64_t RetryStore::backoff_ns(int retry) const {
  int64_t d = std::max<int64_t>(opts_.initial_backoff_ns, 1);
  for (int i = 0; i < retry && d < opts_.max_backoff_ns; i++) d *= 2;
  d = std::min(d, std::max<int64_t>(opts_.max_backoff_ns, 1));
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return d / 2 + std::uniform_int_distribution<int64_t>(0, d - d / 2 - 1)(rng);
}

Status RetryStore::run(const char* op, const std::string& key, bool corruption_retryable,
                       const std::function<Status()>& attempt) {
  const int64_t start = mono_ns();
  for (int retry = 0;; retry++) {
    Status st = attempt();
    if (st.ok()) {
      if (retry > 0) stats_.recovered++;
      return st;
    }
    if (!st.retryable() && !(corruption_retryable && st.is(Code::kCorruption))) return st;
    const int64_t wait = backoff_ns(retry);
    const int64_t elapsed = mono_ns() - start;
    if (retry >= opts_.retries || elapsed + wait > opts_.budget_ns) {
      stats_.exhausted++;
      LOG_WARN("object store: {} {} failed after {} attempts in {} ms, giving up: {}", op, key,
               retry + 1, elapsed / 1'000'000, st.ToString());
      return Status(st.code(), st.message() + " (after " + std::to_string(retry + 1) +
                                   " attempts)");
    }
    LOG_DEBUG("object store: {} {} failed ({}), retry {} in {} ms", op, key, st.ToString(),
              retry + 1, wait / 1'000'000);
    stats_.retries++;
    std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
  }
}

Status RetryStore::put(const std::string& key, std::string_view data) {
  return run("put", key, false, [&] { return inner_->put(key, data); });
}

Result<std::string> RetryStore::get(const std::string& key, uint64_t off, int64_t len) {
  std::string out;
  Status st = run("get", key, true, [&]() -> Status {
    auto r = inner_->get(key, off, len);
    if (!r.ok()) return r.status();
    out = std::move(r).value();
    return Status::OK();
  });
  if (!st.ok()) return st;
  return out;
}

Result<SplitObject> RetryStore::get_split(const std::string& key, size_t head_len) {
  SplitObject out;
  Status st = run("get", key, true, [&]() -> Status {
    auto r = inner_->get_split(key, head_len);
    if (!r.ok()) return r.status();
    out = std::move(r).value();
    return Status::OK();
  });
  if (!st.ok()) return st;
  return out;
}

Result<ObjectInfo> RetryStore::head(const std::string& key) {
  ObjectInfo out;
  Status st = run("head", key, false, [&]() -> Status {
    auto r = inner_->head(key);
    if (!r.ok()) return r.status();
    out = std::move(r).value();
    return Status::OK();
  });
  if (!st.ok()) return st;
  return out;
}

Status RetryStore::del(const std::string& key) {
  return run("del", key, false, [&] { return inner_->del(key); });
}

Result<std::vector<ObjectInfo>> RetryStore::list(const std::string& prefix,
                                                 const std::string& start_after, size_t limit) {
  std::vector<ObjectInfo> out;
  Status st = run("list", prefix, false, [&]() -> Status {
    auto r = inner_->list(prefix, start_after, limit);
    if (!r.ok()) return r.status();
    out = std::move(r).value();
    return Status::OK();
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace sluice::object
