// Store decorators: fault injection (rates, determinism, truncation, latency, slow bodies,
// a down switch), retry (recovery, budget, what is not retried), limits (bandwidth,
// concurrency) and the stack that open_store_for_mount builds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "object/block_codec.h"
#include "object/fault_store.h"
#include "object/limit_store.h"
#include "object/retry_store.h"
#include "object/store_options.h"
#include "temp_dir.h"

namespace sluice::object {
namespace {

std::shared_ptr<Store> mem_store() {
  auto s = open_store("mem://");
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return *s;
}

std::shared_ptr<FaultStore> fault_store(std::shared_ptr<Store> inner, const std::string& spec) {
  auto f = FaultSpec::parse(spec);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return std::make_shared<FaultStore>(std::move(inner), f.ok() ? *f : FaultSpec{}, spec);
}

double seconds_since(int64_t start_ns) { return static_cast<double>(mono_ns() - start_ns) / 1e9; }

// Counts calls per operation and answers with `fail` (while fail_left != 0; -1 = always)
// instead of asking the store below. Tracks the most puts and gets in flight at once.
class CountingStore : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;

  Status put(const std::string& key, std::string_view data) override {
    InFlight f(*this);
    puts++;
    if (failing()) return fail;
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    return StoreWrapper::put(key, data);
  }
  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override {
    InFlight f(*this);
    gets++;
    if (failing()) return fail;
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    return StoreWrapper::get(key, off, len);
  }
  Result<ObjectInfo> head(const std::string& key) override {
    heads++;
    if (failing()) return fail;
    return StoreWrapper::head(key);
  }

  Status fail = Status(Code::kUnavailable, "counting store down");
  std::atomic<int> fail_left{0};
  int delay_ms = 0;
  std::atomic<int> puts{0}, gets{0}, heads{0};
  std::atomic<int> in_flight{0}, max_in_flight{0};

 private:
  struct InFlight {
    explicit InFlight(CountingStore& s) : s(s) {
      int now = ++s.in_flight;
      int seen = s.max_in_flight.load();
      while (now > seen && !s.max_in_flight.compare_exchange_weak(seen, now)) {
      }
    }
    ~InFlight() { --s.in_flight; }
    CountingStore& s;
  };
  bool failing() {
    int left = fail_left.load();
    while (left != 0) {
      if (left < 0 || fail_left.compare_exchange_weak(left, left - 1)) return true;
    }
    return false;
  }
};

RetryOptions fast_retries(int retries) {
  RetryOptions o;
  o.retries = retries;
  o.initial_backoff_ns = 100'000;  // 0.1 ms
  o.max_backoff_ns = 2'000'000;
  return o;
}

// ---- fault spec ----

TEST(FaultSpec, ParsesEveryKey) {
  auto f = FaultSpec::parse(
      "error_rate=0.1,get_error_rate=0.5,latency=5ms,jitter=250us,bandwidth=2M,"
      "truncate_rate=0.01,seed=42,down_file=/tmp/x");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_DOUBLE_EQ(f->error_rate[static_cast<size_t>(StoreOp::kPut)], 0.1);
  EXPECT_DOUBLE_EQ(f->error_rate[static_cast<size_t>(StoreOp::kGet)], 0.5);
  EXPECT_EQ(f->latency_ns, 5'000'000);
  EXPECT_EQ(f->jitter_ns, 250'000);
  EXPECT_EQ(f->bandwidth, 2u << 20);
  EXPECT_DOUBLE_EQ(f->truncate_rate, 0.01);
  EXPECT_EQ(f->seed, 42u);
  EXPECT_EQ(f->down_file, "/tmp/x");
  EXPECT_TRUE(FaultSpec::parse("").ok());
}

TEST(FaultSpec, BadSpecsAreOneLineInvalid) {
  for (const char* spec : {"error_rate=1.5", "latency=5", "latency=5 ms", "bogus=1",
                           "error_rate", "seed=-1", "bandwidth=3X", "frob_error_rate=0.1",
                           "error_rate=0.1,,seed=1"}) {
    auto f = FaultSpec::parse(spec);
    ASSERT_FALSE(f.ok()) << spec;
    EXPECT_EQ(f.status().code(), Code::kInvalid) << spec;
    EXPECT_NE(f.status().message().find(spec), std::string::npos) << f.status().message();
    EXPECT_EQ(f.status().message().find('\n'), std::string::npos) << f.status().message();
  }
}

// ---- fault store ----

TEST(FaultStore, ErrorRateWithinTolerance) {
  auto inner = mem_store();
  ASSERT_TRUE(inner->put("k", "v").ok());
  auto f = fault_store(inner, "error_rate=0.1,seed=1");
  int failed = 0;
  for (int i = 0; i < 5000; i++) {
    auto r = f->head("k");
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kUnavailable);
      EXPECT_NE(r.status().message().find("injected fault"), std::string::npos);
      failed++;
    }
  }
  EXPECT_GT(failed, 400);
  EXPECT_LT(failed, 600);
  EXPECT_EQ(f->injected_errors(), static_cast<uint64_t>(failed));
}

TEST(FaultStore, SameSeedSameFaults) {
  auto inner = mem_store();
  ASSERT_TRUE(inner->put("k", "v").ok());
  auto pattern = [&](const std::string& spec) {
    auto f = fault_store(inner, spec);
    std::string p;
    for (int i = 0; i < 300; i++) p += f->head("k").ok() ? '.' : 'x';
    return p;
  };
  EXPECT_EQ(pattern("error_rate=0.3,seed=7"), pattern("error_rate=0.3,seed=7"));
  EXPECT_NE(pattern("error_rate=0.3,seed=7"), pattern("error_rate=0.3,seed=8"));
}

TEST(FaultStore, PerOperationRateAndLostPutResponses) {
  auto inner = mem_store();
  auto f = fault_store(inner, "put_error_rate=1,seed=3");
  int stored = 0;
  for (int i = 0; i < 100; i++) {
    const std::string key = "k" + std::to_string(i);
    EXPECT_EQ(f->put(key, "v").code(), Code::kUnavailable);
    if (f->get(key, 0, -1).ok()) stored++;  // gets are not failed
  }
  // About half of the failed puts stored the object anyway.
  EXPECT_GT(stored, 25);
  EXPECT_LT(stored, 75);
}

TEST(FaultStore, TruncatedBodiesFailBlockDecoding) {
  auto inner = mem_store();
  const std::string raw(10000, 'z');
  ASSERT_TRUE(inner->put("b", encode_block(raw)).ok());
  auto f = fault_store(inner, "truncate_rate=1,seed=2");
  for (int i = 0; i < 50; i++) {
    auto got = f->get("b", 0, -1);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_LT(got->size(), kBlockHeaderSize + raw.size());
    auto decoded = decode_block(*got, "b");
    EXPECT_EQ(decoded.status().code(), Code::kCorruption);
  }
  EXPECT_EQ(f->truncations(), 50u);
  auto whole = fault_store(inner, "truncate_rate=0")->get("b", 0, -1);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(*decode_block(*whole, "b"), raw);
}

TEST(FaultStore, LatencyAndSlowBodies) {
  auto inner = mem_store();
  ASSERT_TRUE(inner->put("big", std::string(256 << 10, 'x')).ok());
  int64_t t0 = mono_ns();
  ASSERT_TRUE(fault_store(inner, "latency=30ms,jitter=10ms")->head("big").ok());
  EXPECT_GE(seconds_since(t0), 0.030);
  t0 = mono_ns();
  ASSERT_TRUE(fault_store(inner, "bandwidth=1M")->get("big", 0, -1).ok());
  EXPECT_GE(seconds_since(t0), 0.25 * 0.8);  // 256 KiB at 1 MiB/s
}

TEST(FaultStore, DownFileAndSetErrorRate) {
  testing::TempDir dir;
  const std::string down = dir.path() + "/down";
  auto inner = mem_store();
  ASSERT_TRUE(inner->put("k", "v").ok());
  auto f = fault_store(inner, "down_file=" + down);
  EXPECT_TRUE(f->head("k").ok());
  std::ofstream(down).put('x');
  EXPECT_EQ(f->head("k").status().code(), Code::kUnavailable);
  unlink(down.c_str());
  EXPECT_TRUE(f->head("k").ok());
  f->set_error_rate(1);
  EXPECT_FALSE(f->del("k").ok());
  f->set_error_rate(0);
  EXPECT_TRUE(f->del("k").ok());
}

// ---- retry store ----

TEST(RetryStore, RecoversFromThirtyPercentErrors) {
  auto faults = fault_store(mem_store(), "error_rate=0.3,truncate_rate=0,seed=11");
  RetryStore r(faults, fast_retries(10));
  for (int i = 0; i < 200; i++) {
    const std::string key = "k/" + std::to_string(i);
    ASSERT_TRUE(r.put(key, key).ok());
    auto got = r.get(key, 0, -1);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, key);
    auto split = r.get_split(key, 2);  // retried as a get
    ASSERT_TRUE(split.ok()) << split.status().ToString();
    EXPECT_EQ(split->head + split->body, key);
    EXPECT_EQ(split->head, key.substr(0, 2));
    ASSERT_TRUE(r.head(key).ok());
  }
  auto l = r.list("k/", "", 0);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->size(), 200u);
  for (int i = 0; i < 200; i++) ASSERT_TRUE(r.del("k/" + std::to_string(i)).ok());
  EXPECT_GT(faults->injected_errors(), 150u);
  EXPECT_EQ(r.stats().retries.load(), faults->injected_errors());
  EXPECT_GT(r.stats().recovered.load(), 0u);
  EXPECT_EQ(r.stats().exhausted.load(), 0u);
}

TEST(RetryStore, GivesUpWithTheLastErrorAfterItsRetries) {
  auto counting = std::make_shared<CountingStore>(fault_store(mem_store(), "error_rate=1"));
  RetryStore r(counting, fast_retries(3));
  Status st = r.put("k", "v");
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("injected fault"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("after 4 attempts"), std::string::npos) << st.message();
  EXPECT_EQ(counting->puts.load(), 4);
  EXPECT_EQ(r.stats().exhausted.load(), 1u);
}

TEST(RetryStore, GivesUpWhenTheTimeBudgetIsSpent) {
  auto counting = std::make_shared<CountingStore>(mem_store());
  counting->fail_left = -1;
  RetryOptions o;
  o.retries = 1000;
  o.initial_backoff_ns = 5'000'000;
  o.max_backoff_ns = 5'000'000;
  o.budget_ns = 60'000'000;
  RetryStore r(counting, o);
  const int64_t t0 = mono_ns();
  EXPECT_EQ(r.head("k").status().code(), Code::kUnavailable);
  EXPECT_LT(seconds_since(t0), 0.5);
  EXPECT_GT(counting->heads.load(), 2);
  EXPECT_LT(counting->heads.load(), 30);  // waits of 2.5-5 ms within 60 ms
}

TEST(RetryStore, NonRetryableErrorsReturnAtOnce) {
  for (Code c : {Code::kNotFound, Code::kAccess, Code::kInvalid, Code::kPermission}) {
    auto counting = std::make_shared<CountingStore>(mem_store());
    counting->fail = Status(c, "nope");
    counting->fail_left = -1;
    RetryStore r(counting, fast_retries(10));
    EXPECT_EQ(r.put("k", "v").code(), c);
    EXPECT_EQ(r.get("k", 0, -1).status().code(), c);
    EXPECT_EQ(r.head("k").status().code(), c);
    EXPECT_EQ(counting->puts.load() + counting->gets.load() + counting->heads.load(), 3)
        << code_name(c);
    EXPECT_EQ(r.stats().retries.load(), 0u);
  }
}

TEST(RetryStore, CorruptionIsRetriedOnGetOnly) {
  auto counting = std::make_shared<CountingStore>(mem_store());
  ASSERT_TRUE(counting->put("k", "v").ok());
  counting->fail = Status(Code::kCorruption, "short body");
  RetryStore r(counting, fast_retries(10));
  counting->fail_left = 2;
  auto got = r.get("k", 0, -1);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(counting->gets.load(), 3);
  counting->fail_left = 2;
  EXPECT_EQ(r.head("k").status().code(), Code::kCorruption);
  EXPECT_EQ(counting->heads.load(), 1);
}

// ---- limit store ----

TEST(LimitStore, UploadsAreBoundedByTheLimit) {
  const uint64_t rate = 1 << 20, object = 64 << 10;
  LimitStore s(mem_store(), LimitOptions{rate, 0, 0, 0});
  const RateLimiter reference(rate);
  std::vector<std::thread> threads;
  const int64_t t0 = mono_ns();
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3; i++) {
        EXPECT_TRUE(s.put("k" + std::to_string(t * 10 + i), std::string(object, 'u')).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  const double bytes = 12.0 * object - static_cast<double>(reference.burst());
  EXPECT_GE(seconds_since(t0), 0.8 * bytes / rate);
}

TEST(LimitStore, DownloadsAreBoundedByTheLimit) {
  const uint64_t rate = 2 << 20, object = 256 << 10;
  auto inner = mem_store();
  ASSERT_TRUE(inner->put("k", std::string(object, 'd')).ok());
  LimitStore s(inner, LimitOptions{0, rate, 0, 0});
  const int64_t t0 = mono_ns();
  for (int i = 0; i < 6; i++) {  // whole gets and split gets count alike
    ASSERT_TRUE(i % 2 == 0 ? s.get("k", 0, -1).ok() : s.get_split("k", 100).ok());
  }
  const double bytes = 6.0 * object - static_cast<double>(RateLimiter(rate).burst());
  EXPECT_GE(seconds_since(t0), 0.8 * bytes / rate);
  const int64_t t1 = mono_ns();
  ASSERT_TRUE(s.put("up", std::string(4 << 20, 'u')).ok());
  EXPECT_LT(seconds_since(t1), 1.0) << "uploads are not limited by the download limit";
}

TEST(LimitStore, ConcurrencyCapIsNeverExceeded) {
  auto counting = std::make_shared<CountingStore>(mem_store());
  counting->delay_ms = 2;
  ASSERT_TRUE(counting->put("g", "x").ok());
  counting->max_in_flight = 0;
  LimitStore s(counting, LimitOptions{0, 0, 3, 2});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 15; i++) EXPECT_TRUE(s.put("k" + std::to_string(t), "v").ok());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(counting->max_in_flight.load(), 3);
  EXPECT_GE(counting->max_in_flight.load(), 2) << "puts never overlapped";
  counting->max_in_flight = 0;
  threads.clear();
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&] {
      for (int i = 0; i < 15; i++) EXPECT_TRUE(s.get("g", 0, -1).ok());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(counting->max_in_flight.load(), 2);
}

// ---- the mount's stack ----

TEST(OpenStoreForMount, RetriesHideInjectedFaults) {
  StoreOptions o;
  o.fault_spec = "error_rate=0.3,seed=5";
  o.retry = fast_retries(10);
  o.limits.max_uploads = 4;
  auto s = open_store_for_mount("mem://", o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_NE((*s)->describe().find("fault injection: error_rate=0.3"), std::string::npos)
      << (*s)->describe();
  for (int i = 0; i < 100; i++) {
    const std::string key = "k" + std::to_string(i);
    ASSERT_TRUE((*s)->put(key, key).ok());
    auto got = (*s)->get(key, 0, -1);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, key);
  }
}

TEST(OpenStoreForMount, WithoutRetriesFaultsSurface) {
  StoreOptions o;
  o.fault_spec = "error_rate=1";
  o.retry.retries = 0;
  auto s = open_store_for_mount("mem://", o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->put("k", "v").code(), Code::kUnavailable);
}

TEST(OpenStoreForMount, BadSpecOrUrlIsInvalid) {
  StoreOptions o;
  o.fault_spec = "error_rate=2";
  auto s = open_store_for_mount("mem://", o);
  EXPECT_EQ(s.status().code(), Code::kInvalid);
  EXPECT_NE(s.status().message().find("error_rate=2"), std::string::npos);
  EXPECT_EQ(open_store_for_mount("nosuch://x", StoreOptions{}).status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace sluice::object
