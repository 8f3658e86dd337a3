// mem:// specifics: fault injection, name sharing, and the optimistic conflict checks
// (read misses, phantoms in scanned ranges, write skew), plus open_engine's URL dispatch.
#include "kv/mem_engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <thread>
#include <vector>

#include "kv/engine.h"
#include "kv_test_util.h"

namespace sluice::kv {
namespace {

using testing::get_one;
using testing::increment;
using testing::put_one;
using testing::read_count;

std::shared_ptr<Engine> open_mem(const std::string& url) {
  auto r = open_engine(url);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : nullptr;
}

TEST(MemEngine, InjectedConflictsAreRetried) {
  auto e = open_mem("mem://?conflict_rate=0.3&seed=42");
  ASSERT_NE(e, nullptr);
  std::atomic<int> calls{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; i++) {
    threads.emplace_back([&] {
      for (int j = 0; j < 100; j++) {
        Status st = e->transact([&](Txn& t) -> Status {
          calls++;
          ASSIGN_OR_RETURN(auto v, t.get("n"));
          return t.put("n", std::to_string(testing::parse_count(v) + 1));
        });
        EXPECT_TRUE(st.ok()) << st.ToString();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(read_count(*e, "n"), 400u);
  EXPECT_GT(calls.load(), 400 + 60);  // ~30% of commits failed and ran again
}

TEST(MemEngine, InjectedFailuresWriteNothing) {
  auto e = open_mem("mem://?fail_rate=1");
  ASSERT_NE(e, nullptr);
  int calls = 0;
  Status st = e->transact([&](Txn& t) {
    calls++;
    return t.put("k", "v");
  });
  EXPECT_EQ(st.code(), Code::kIO);
  EXPECT_EQ(calls, 1);                        // kIO is not retryable
  EXPECT_EQ(get_one(*e, "k"), std::nullopt);  // read() is not subject to faults

  ASSERT_TRUE(set_mem_faults(*e, MemFaults{}));
  EXPECT_TRUE(put_one(*e, "k", "v").ok());
  EXPECT_EQ(get_one(*e, "k"), "v");
  ASSERT_TRUE(set_mem_faults(*e, MemFaults{.conflict_rate = 1}));
  e->set_retry_options({.max_attempts = 3, .base_backoff_us = 1, .max_backoff_us = 1});
  EXPECT_EQ(put_one(*e, "k", "w").code(), Code::kConflict);
  EXPECT_EQ(get_one(*e, "k"), "v");
}

TEST(MemEngine, SameNameSharesDataWhileOpen) {
  auto a = open_mem("mem://shared-test");
  auto b = open_mem("mem://shared-test");
  auto other = open_mem("mem://other-test");
  auto anon1 = open_mem("mem://");
  auto anon2 = open_mem("mem://");
  ASSERT_TRUE(a && b && other && anon1 && anon2);
  EXPECT_EQ(a->describe(), "mem://shared-test");

  ASSERT_TRUE(put_one(*a, "k", "from a").ok());
  EXPECT_EQ(get_one(*b, "k"), "from a");
  EXPECT_EQ(get_one(*other, "k"), std::nullopt);
  ASSERT_TRUE(put_one(*anon1, "k", "anon").ok());
  EXPECT_EQ(get_one(*anon2, "k"), std::nullopt);

  a.reset();
  b.reset();
  auto fresh = open_mem("mem://shared-test");
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(get_one(*fresh, "k"), std::nullopt);  // the data lived as long as its engines
}

TEST(MemEngine, RejectsBadOptions) {
  EXPECT_EQ(open_engine("mem://?conflict_rate=2").status().code(), Code::kInvalid);
  EXPECT_EQ(open_engine("mem://?fail_rate=x").status().code(), Code::kInvalid);
  EXPECT_EQ(open_engine("mem://?seed=abc").status().code(), Code::kInvalid);
  auto unknown = open_engine("mem://?conflict=0.1");
  EXPECT_EQ(unknown.status().code(), Code::kInvalid);
  EXPECT_NE(unknown.status().message().find("conflict_rate"), std::string::npos);
  testing::TempDir dir;
  auto sqlite = open_engine("sqlite3://" + dir.path() + "/x.db", true);
  ASSERT_TRUE(sqlite.ok()) << sqlite.status().ToString();
  EXPECT_FALSE(set_mem_faults(**sqlite, MemFaults{}));
}

// Runs a transaction whose first attempt reads with `observe` and then lets another
// transaction commit `interfere` before committing itself; returns how many attempts it took.
int attempts_with_interference(Engine& e, const std::function<Status(Txn&)>& observe,
                               const std::function<Status(Txn&)>& interfere) {
  int attempts = 0;
  Status st = e.transact([&](Txn& t) -> Status {
    attempts++;
    RETURN_IF_ERROR(observe(t));
    if (attempts == 1) RETURN_IF_ERROR(e.transact(interfere));
    return t.put("result", std::to_string(attempts));
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return attempts;
}

TEST(MemEngine, ConflictsFollowWhatWasRead) {
  auto e = open_mem("mem://");
  ASSERT_NE(e, nullptr);
  for (const char* k : {"d/a", "d/c", "d/e"}) ASSERT_TRUE(put_one(*e, k, "1").ok());
  auto scan_d = [](size_t limit) {
    return [limit](Txn& t) { return t.scan("d/", "d0", limit).status(); };
  };
  auto put = [](const char* k) { return [k](Txn& t) { return t.put(k, "2"); }; };
  auto del = [](const char* k) { return [k](Txn& t) { return t.del(k); }; };
  auto get = [](const char* k) { return [k](Txn& t) { return t.get(k).status(); }; };

  EXPECT_EQ(attempts_with_interference(*e, get("x"), put("x")), 2);  // a read miss
  EXPECT_EQ(attempts_with_interference(*e, get("d/a"), put("d/a")), 2);
  EXPECT_EQ(attempts_with_interference(*e, get("d/a"), put("d/b")), 1);
  EXPECT_EQ(attempts_with_interference(*e, scan_d(0), put("d/b")), 2);  // a phantom
  EXPECT_EQ(attempts_with_interference(*e, scan_d(0), del("d/c")), 2);  // a tombstone
  EXPECT_EQ(attempts_with_interference(*e, scan_d(0), put("e/a")), 1);  // outside the range
  // A scan cut short by its limit covered only the keys it returned.
  EXPECT_EQ(attempts_with_interference(*e, scan_d(1), put("d/z")), 1);
  EXPECT_EQ(attempts_with_interference(*e, scan_d(1), put("d/a")), 2);
  // Deleting a key nobody has does not disturb readers of it.
  EXPECT_EQ(attempts_with_interference(*e, get("nobody"), del("nobody")), 1);
}

TEST(MemEngine, ConflictsSurviveTombstonePruning) {
  auto e = open_mem("mem://");
  ASSERT_NE(e, nullptr);
  for (int batch = 0; batch < 10; batch++) {
    ASSERT_TRUE(e->transact([&](Txn& t) -> Status {
                   for (int i = 0; i < 1000; i++) {
                     RETURN_IF_ERROR(t.put("t/" + std::to_string(batch * 1000 + i), "x"));
                   }
                   return Status::OK();
                 }).ok());
    ASSERT_TRUE(e->transact([&](Txn& t) -> Status {
                   for (int i = 0; i < 1000; i++) {
                     RETURN_IF_ERROR(t.del("t/" + std::to_string(batch * 1000 + i)));
                   }
                   return Status::OK();
                 }).ok());
  }
  ASSERT_TRUE(put_one(*e, "t/live", "1").ok());
  auto scan_t = [](Txn& t) { return t.scan("t/", "t0").status(); };
  EXPECT_EQ(attempts_with_interference(*e, scan_t, [](Txn& t) { return t.del("t/live"); }), 2);
  std::vector<KeyValue> left;
  ASSERT_TRUE(e->read([&](Txn& t) -> Status {
                 ASSIGN_OR_RETURN(left, t.scan("t/", "t0"));
                 return Status::OK();
               }).ok());
  EXPECT_TRUE(left.empty());
}

// Two transactions each read x and y and lower one of them only if x + y == 2. Under
// snapshot isolation both would commit (x + y == 0); serializable commits allow one.
TEST(MemEngine, PreventsWriteSkew) {
  auto e = open_mem("mem://");
  ASSERT_NE(e, nullptr);
  ASSERT_TRUE(put_one(*e, "x", "1").ok());
  ASSERT_TRUE(put_one(*e, "y", "1").ok());
  std::latch both_read(2);
  auto worker = [&](const char* mine) {
    bool first = true;
    Status st = e->transact([&](Txn& t) -> Status {
      ASSIGN_OR_RETURN(auto v, t.multi_get({"x", "y"}));
      if (first) {
        first = false;
        both_read.arrive_and_wait();
      }
      if (std::stoi(*v[0]) + std::stoi(*v[1]) < 2) return Status::OK();
      return t.put(mine, "0");
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
  };
  std::thread tx(worker, "x"), ty(worker, "y");
  tx.join();
  ty.join();
  EXPECT_EQ(read_count(*e, "x") + read_count(*e, "y"), 1u);
}

TEST(OpenEngine, UnknownSchemeListsSupportedOnes) {
  auto r = open_engine("tikv://localhost/0");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("tikv://"), std::string::npos) << msg;
  EXPECT_NE(msg.find("redis://"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sqlite3://"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mem://"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  EXPECT_EQ(open_engine("no-scheme-here").status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace sluice::kv
