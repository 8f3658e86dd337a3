// FaultStore: a decorator that makes a healthy store misbehave, for tests and benchmarks.
//
// Configured by a spec string of comma-separated key=value pairs, e.g.
//   "error_rate=0.1,latency=5ms,jitter=5ms,truncate_rate=0.01,seed=1"
// Keys:
//   error_rate=R        every operation fails with probability R (0..1) with kUnavailable
//                       "injected fault"; put_error_rate, get_error_rate, head_error_rate,
//                       del_error_rate, list_error_rate set one operation's rate. Half of
//                       the failed puts fail after the object was stored (a lost response).
//   latency=D, jitter=D each operation first sleeps D plus a uniform [0, jitter) extra;
//                       durations take a unit: ns, us, ms or s.
//   bandwidth=S         slow bodies: a put or get moves at most S bytes/s (per request;
//                       K, M, G suffixes are binary).
//   truncate_rate=R     a successful non-empty get returns a strict prefix of the data with
//                       probability R (the block codec must then report kCorruption).
//   seed=N              seeds the generator: the same calls in the same order fail alike.
//   down_file=PATH      while PATH exists every operation fails (a store that is down,
//                       switched from outside the process, e.g. by an integration test).
//
// Thread safety: all methods may be called concurrently; draws share one seeded generator.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>

#include "object/store.h"

namespace sluice::object {

enum class StoreOp : uint8_t { kPut = 0, kGet, kHead, kDel, kList };
constexpr size_t kStoreOps = 5;
const char* store_op_name(StoreOp op);  // "put", "get", ...

struct FaultSpec {
  std::array<double, kStoreOps> error_rate{};  // indexed by StoreOp
  int64_t latency_ns = 0;
  int64_t jitter_ns = 0;
  uint64_t bandwidth = 0;  // bytes/s per request body; 0 = unlimited
  double truncate_rate = 0;
  uint64_t seed = 0;
  std::string down_file;

  // Parses a spec (see the file comment); an error is kInvalid with a one-line message.
  static Result<FaultSpec> parse(const std::string& spec);
};

class FaultStore : public StoreWrapper {
 public:
  FaultStore(std::shared_ptr<Store> inner, FaultSpec spec, std::string text = "");

  Status put(const std::string& key, std::string_view data) override;
  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override;
  Result<ObjectInfo> head(const std::string& key) override;
  Status del(const std::string& key) override;
  Result<std::vector<ObjectInfo>> list(const std::string& prefix, const std::string& start_after,
                                       size_t limit) override;
  std::string describe() const override;

  // Sets the error rate of every operation (a store going down or coming back).
  void set_error_rate(double rate);

  uint64_t injected_errors() const { return errors_.load(); }
  uint64_t truncations() const { return truncations_.load(); }

 private:
  // Sleeps the latency, then decides whether op fails: the error to return, or OK.
  Status before(StoreOp op, const std::string& key);
  void slow_body(size_t bytes) const;
  bool chance(double p);
  uint64_t uniform(uint64_t n);  // [0, n)

  const std::string text_;
  std::mutex mu_;  // guards spec_.error_rate and rng_
  FaultSpec spec_;
  std::mt19937_64 rng_;
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> truncations_{0};
};

}  // namespace sluice::object
