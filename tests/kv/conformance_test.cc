// The kv conformance suite: every engine must pass these tests unchanged. Each test runs
// once per engine (mem://, sqlite3:// on a file in a fresh temporary directory, and
// postgres://, redis:// and etcd:// under a fresh prefix on the test servers of
// tests/servers/; etcd as a three-member cluster).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <random>
#include <thread>
#include <vector>

#include "kv/engine.h"
#include "kv_test_util.h"
#include "servers/postgres_server.h"
#include "servers/redis_server.h"
#include "servers/etcd_server.h"

namespace sluice::kv {
namespace {

using testing::get_one;
using testing::put_one;
using testing::read_count;
using testing::TempDir;

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // sync=normal skips the fsync per commit, which no test can observe and which would
    // dominate the run time; sqlite_engine_test.cc covers the default sync=full.
    std::string url =
        GetParam() == "mem" ? "mem://" : "sqlite3://" + dir_.path() + "/meta.db?sync=normal";
    if (GetParam() == "postgres") {
      SLUICE_POSTGRES_OR_SKIP(pg);
      url = pg->fresh_url();
    }
    if (GetParam() == "redis") {
      SLUICE_REDIS_OR_SKIP(redis);
      url = redis->fresh_url();
    }
    if (GetParam() == "etcd") {
      SLUICE_ETCD_OR_SKIP(cluster);
      url = cluster->fresh_url();
    }
    auto r = open_engine(url, true);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    e_ = *r;
  }

  // All committed pairs, in key order.
  std::vector<KeyValue> scan_all(std::string_view begin = "", std::string_view end = "",
                                 size_t limit = 0) {
    std::vector<KeyValue> out;
    Status st = e_->read([&](Txn& t) -> Status {
      ASSIGN_OR_RETURN(out, t.scan(begin, end, limit));
      return Status::OK();
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }

  static std::vector<std::string> keys_of(const std::vector<KeyValue>& kvs) {
    std::vector<std::string> out;
    for (const auto& kv : kvs) out.push_back(kv.key);
    return out;
  }

  TempDir dir_;
  std::shared_ptr<Engine> e_;
};

using Keys = std::vector<std::string>;

// A pause between a transaction's reads and its writes, so that concurrent transactions
// really overlap (without it, short transactions on two cores barely interleave).
constexpr auto kRaceWindow = std::chrono::microseconds(20);

TEST_P(Conformance, PutGetOverwriteDelete) {
  ASSERT_TRUE(put_one(*e_, "a", "1").ok());
  EXPECT_EQ(get_one(*e_, "a"), "1");
  ASSERT_TRUE(put_one(*e_, "a", "2").ok());
  EXPECT_EQ(get_one(*e_, "a"), "2");
  ASSERT_TRUE(e_->transact([](Txn& t) { return t.del("a"); }).ok());
  EXPECT_EQ(get_one(*e_, "a"), std::nullopt);
  // Deleting a missing key is not an error.
  EXPECT_TRUE(e_->transact([](Txn& t) { return t.del("never-there"); }).ok());
}

TEST_P(Conformance, MissingKeyDiffersFromEmptyValue) {
  EXPECT_EQ(get_one(*e_, "missing"), std::nullopt);
  ASSERT_TRUE(put_one(*e_, "empty", "").ok());
  EXPECT_EQ(get_one(*e_, "empty"), std::optional<std::string>(""));
  ASSERT_TRUE(put_one(*e_, "", "empty key").ok());
  EXPECT_EQ(get_one(*e_, ""), "empty key");
}

TEST_P(Conformance, MultiGetAnswersInOrder) {
  ASSERT_TRUE(put_one(*e_, "x", "1").ok());
  ASSERT_TRUE(put_one(*e_, "z", "3").ok());
  std::vector<std::optional<std::string>> got;
  ASSERT_TRUE(e_->read([&](Txn& t) -> Status {
                  ASSIGN_OR_RETURN(got, t.multi_get({"z", "y", "x", "z"}));
                  return Status::OK();
                }).ok());
  std::vector<std::optional<std::string>> want = {"3", std::nullopt, "1", "3"};
  EXPECT_EQ(got, want);
}

TEST_P(Conformance, ScanOrdersAndBounds) {
  for (const char* k : {"d", "b", "a", "e", "c"}) ASSERT_TRUE(put_one(*e_, k, k).ok());
  EXPECT_EQ(keys_of(scan_all()), (Keys{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(keys_of(scan_all("b", "d")), (Keys{"b", "c"}));  // end is exclusive
  EXPECT_EQ(keys_of(scan_all("bb", "")), (Keys{"c", "d", "e"}));
  EXPECT_EQ(keys_of(scan_all("", "", 2)), (Keys{"a", "b"}));
  EXPECT_EQ(keys_of(scan_all("b", "e", 10)), (Keys{"b", "c", "d"}));
  EXPECT_TRUE(scan_all("c", "c").empty());
  EXPECT_TRUE(scan_all("d", "b").empty());
  EXPECT_TRUE(scan_all("f").empty());
  auto kvs = scan_all("c", "d");
  ASSERT_EQ(kvs.size(), 1u);
  EXPECT_EQ(kvs[0].value, "c");
}

TEST_P(Conformance, BinaryKeysOrderBytewise) {
  using namespace std::string_literals;
  Keys keys = {"\x00"s,  "\x00\x00"s, "\x01"s, "a"s,    "a\x00"s,    "a\x00z"s,  "a\x7f"s,
               "a\x80"s, "a\xff"s,    "b"s,    "\xff"s, "\xff\x00"s, "\xff\xff"s};
  Keys shuffled = keys;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  for (const auto& k : shuffled) ASSERT_TRUE(put_one(*e_, k, "v" + k + "\x00\xff"s).ok());

  auto all = scan_all();
  EXPECT_EQ(keys_of(all), keys);
  for (const auto& kv : all) EXPECT_EQ(kv.value, "v" + kv.key + "\x00\xff"s);
  EXPECT_EQ(keys_of(scan_all("a"s, "a\xff"s)), (Keys{"a", "a\x00"s, "a\x00z"s, "a\x7f", "a\x80"}));
  EXPECT_EQ(keys_of(scan_all("\xff"s, "")), (Keys{"\xff", "\xff\x00"s, "\xff\xff"}));
  EXPECT_EQ(keys_of(scan_all("\x00"s, "\x01"s)), (Keys{"\x00"s, "\x00\x00"s}));
  EXPECT_EQ(keys_of(scan_all("a\x00"s, "", 2)), (Keys{"a\x00"s, "a\x00z"s}));
  EXPECT_EQ(get_one(*e_, "a\x00z"s), "va\x00z\x00\xff"s);
  EXPECT_EQ(get_one(*e_, "a\x00y"s), std::nullopt);
}

TEST_P(Conformance, LargeValueRoundTrips) {
  std::string big(1 << 20, '\0');
  std::mt19937 rng(3);
  for (auto& c : big) c = static_cast<char>(rng());
  ASSERT_TRUE(put_one(*e_, "big", big).ok());
  EXPECT_EQ(get_one(*e_, "big"), big);
}

TEST_P(Conformance, ReadsSeeOwnWrites) {
  for (const char* k : {"a", "c", "e", "g"}) ASSERT_TRUE(put_one(*e_, k, "old").ok());
  Status st = e_->transact([&](Txn& t) -> Status {
    RETURN_IF_ERROR(t.put("b", "new"));
    RETURN_IF_ERROR(t.del("c"));
    RETURN_IF_ERROR(t.put("e", "new"));
    RETURN_IF_ERROR(t.del("g"));
    RETURN_IF_ERROR(t.put("h", "new"));
    ASSIGN_OR_RETURN(auto b, t.get("b"));
    ASSIGN_OR_RETURN(auto c, t.get("c"));
    EXPECT_EQ(b, "new");
    EXPECT_EQ(c, std::nullopt);
    ASSIGN_OR_RETURN(auto many, t.multi_get({"a", "c", "e"}));
    EXPECT_EQ(many, (std::vector<std::optional<std::string>>{"old", std::nullopt, "new"}));

    ASSIGN_OR_RETURN(auto all, t.scan("", ""));
    EXPECT_EQ(keys_of(all), (Keys{"a", "b", "e", "h"}));
    if (all.size() == 4) {
      EXPECT_EQ(all[2].value, "new");
    }
    ASSIGN_OR_RETURN(auto two, t.scan("", "", 2));
    EXPECT_EQ(keys_of(two), (Keys{"a", "b"}));
    ASSIGN_OR_RETURN(auto mid, t.scan("c", "h"));
    EXPECT_EQ(keys_of(mid), (Keys{"e"}));
    // A key put and then deleted in one transaction is gone.
    RETURN_IF_ERROR(t.put("x", "tmp"));
    RETURN_IF_ERROR(t.del("x"));
    ASSIGN_OR_RETURN(auto tail, t.scan("h", ""));
    EXPECT_EQ(keys_of(tail), (Keys{"h"}));
    return Status::OK();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(keys_of(scan_all()), (Keys{"a", "b", "e", "h"}));
  EXPECT_EQ(get_one(*e_, "e"), "new");
}

TEST_P(Conformance, FailedClosureWritesNothing) {
  ASSERT_TRUE(put_one(*e_, "keep", "1").ok());
  int calls = 0;
  Status st = e_->transact([&](Txn& t) -> Status {
    calls++;
    RETURN_IF_ERROR(t.put("a", "1"));
    RETURN_IF_ERROR(t.put("keep", "2"));
    RETURN_IF_ERROR(t.del("keep"));
    return Status(Code::kNotFound, "closure gave up");
  });
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), "closure gave up");
  EXPECT_EQ(calls, 1);  // a non-retryable error is not retried
  EXPECT_EQ(get_one(*e_, "a"), std::nullopt);
  EXPECT_EQ(get_one(*e_, "keep"), "1");
}

TEST_P(Conformance, ReadRefusesWrites) {
  ASSERT_TRUE(put_one(*e_, "k", "v").ok());
  Status put_st, del_st;
  Status st = e_->read([&](Txn& t) -> Status {
    put_st = t.put("k", "w");
    del_st = t.del("k");
    return Status::OK();
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(put_st.code(), Code::kReadOnly);
  EXPECT_EQ(del_st.code(), Code::kReadOnly);
  EXPECT_EQ(get_one(*e_, "k"), "v");
}

TEST_P(Conformance, ConcurrentIncrementsAreExact) {
  constexpr int kThreads = 8, kPerThread = 200;
  std::atomic<int> failures{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; i++) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int j = 0; j < kPerThread; j++) {
        Status st = e_->transact([&](Txn& t) -> Status {
          ASSIGN_OR_RETURN(auto v, t.get("counter"));
          std::this_thread::sleep_for(kRaceWindow);
          return t.put("counter", std::to_string(testing::parse_count(v) + 1));
        });
        if (!st.ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(read_count(*e_, "counter"), uint64_t{kThreads * kPerThread});
}

TEST_P(Conformance, ConcurrentTransfersKeepTheSum) {
  constexpr int kAccounts = 16, kThreads = 8, kPerThread = 100, kInitial = 100;
  auto account = [](int i) { return "acct/" + std::to_string(100 + i); };
  ASSERT_TRUE(e_->transact([&](Txn& t) -> Status {
                  for (int i = 0; i < kAccounts; i++) {
                    RETURN_IF_ERROR(t.put(account(i), std::to_string(kInitial)));
                  }
                  return Status::OK();
                }).ok());
  // Sums every account in one read; -1 when the read itself failed.
  auto total = [&] {
    int64_t sum = 0;
    Status st = e_->read([&](Txn& t) -> Status {
      ASSIGN_OR_RETURN(auto all, t.scan("acct/", "acct0"));
      sum = 0;
      for (const auto& kv : all) sum += std::stoll(kv.value);
      return Status::OK();
    });
    return st.ok() ? sum : -1;
  };

  std::atomic<bool> done{false};
  std::atomic<int> failures{0}, bad_sums{0}, audits{0};
  std::thread auditor([&] {
    while (!done.load()) {
      if (total() != kAccounts * kInitial) bad_sums++;
      audits++;
    }
  });
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; i++) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      std::mt19937 rng(i);
      for (int j = 0; j < kPerThread; j++) {
        int from = static_cast<int>(rng() % kAccounts);
        int to = static_cast<int>((from + 1 + rng() % (kAccounts - 1)) % kAccounts);
        int64_t amount = 1 + rng() % 40;
        Status st = e_->transact([&](Txn& t) -> Status {
          ASSIGN_OR_RETURN(auto v, t.multi_get({account(from), account(to)}));
          int64_t a = std::stoll(*v[0]), b = std::stoll(*v[1]);
          if (a < amount) return Status::OK();  // would overdraw: no transfer
          std::this_thread::sleep_for(kRaceWindow);
          RETURN_IF_ERROR(t.put(account(from), std::to_string(a - amount)));
          return t.put(account(to), std::to_string(b + amount));
        });
        if (!st.ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  done = true;
  auditor.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(bad_sums.load(), 0) << "of " << audits.load() << " audits";
  EXPECT_GT(audits.load(), 0);
  EXPECT_EQ(total(), kAccounts * kInitial);
  for (const auto& kv : scan_all("acct/", "acct0")) EXPECT_GE(std::stoll(kv.value), 0);
}

INSTANTIATE_TEST_SUITE_P(Engines, Conformance,
                         ::testing::Values("mem", "sqlite3", "postgres", "redis", "etcd"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace sluice::kv
