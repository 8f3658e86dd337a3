// etcd:// engine tests beyond the conformance suite: URL handling, prefix isolation,
// snapshot reads, conflict detection for scanned ranges (phantoms), unreachable clusters,
// and carrying on while members stop and restart. Runs on the three-member loopback
// cluster of servers/etcd_server.h.
#include <gtest/gtest.h>

#include "kv/engine.h"
#include "kv_test_util.h"
#include "servers/etcd_server.h"

namespace sluice::kv {
namespace {

using sluice::testing::EtcdCluster;
using testing::get_one;
using testing::put_one;
using testing::read_count;

std::shared_ptr<Engine> open_or_die(const std::string& url) {
  auto r = open_engine(url, true);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : nullptr;
}

std::vector<std::string> all_keys(Engine& e) {
  std::vector<std::string> out;
  Status st = e.read([&](Txn& t) -> Status {
    ASSIGN_OR_RETURN(auto kvs, t.scan("", ""));
    out.clear();
    for (auto& kv : kvs) out.push_back(kv.key);
    return Status::OK();
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

TEST(EtcdUrl, RejectsBadUrlsWithOneLine) {
  for (const std::string url :
       {"etcd://127.0.0.1:1/p?bogus=1", "etcd://user:secret@127.0.0.1:1/p",
        "etcd://127.0.0.1:1/a?prefix=b", "etcd://127.0.0.1:1,,127.0.0.1:2/p", "etcd:///p"}) {
    auto r = open_engine(url);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), Code::kInvalid) << url;
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
    EXPECT_EQ(r.status().message().find("secret"), std::string::npos) << r.status().message();
  }
}

TEST(EtcdUrl, UnreachableClusterIsUnavailable) {
  const int port = sluice::testing::etcd_detail::free_port();
  const std::string url = "etcd://127.0.0.1:" + std::to_string(port) + "/p";
  auto r = open_engine(url);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("cannot connect to metadata engine " + url),
            std::string::npos)
      << r.status().message();
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
}

TEST(EtcdEngine, PrefixesAreIsolated) {
  SLUICE_ETCD_OR_SKIP(cluster);
  const std::string url = cluster->fresh_url();
  // "P" and "P-more": one prefix extends the other, and still neither sees the other.
  auto a = open_or_die(url);
  auto b = open_or_die(url + "-more");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(put_one(*a, "k", "from a").ok());
  ASSERT_TRUE(put_one(*b, "k", "from b").ok());
  ASSERT_TRUE(put_one(*b, "\xff\xff", "high").ok());
  EXPECT_EQ(get_one(*a, "k"), "from a");
  EXPECT_EQ(get_one(*b, "k"), "from b");
  EXPECT_EQ(all_keys(*a), std::vector<std::string>{"k"});
  EXPECT_EQ(all_keys(*b), (std::vector<std::string>{"k", "\xff\xff"}));
}

TEST(EtcdEngine, QueryPrefixEqualsPathPrefix) {
  SLUICE_ETCD_OR_SKIP(cluster);
  const std::string url = cluster->fresh_url();
  const auto slash = url.rfind('/');
  const std::string by_query = url.substr(0, slash) + "?prefix=" + url.substr(slash + 1);
  auto a = open_or_die(url);
  auto b = open_or_die(by_query);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(put_one(*a, "k", "v").ok());
  EXPECT_EQ(get_one(*b, "k"), "v");
  EXPECT_EQ(a->describe(), url);
  EXPECT_EQ(b->describe(), url);
}

TEST(EtcdEngine, ReadsSeeOneSnapshot) {
  SLUICE_ETCD_OR_SKIP(cluster);
  auto e = open_or_die(cluster->fresh_url());
  ASSERT_TRUE(e);
  ASSERT_TRUE(put_one(*e, "a", "1").ok());
  ASSERT_TRUE(put_one(*e, "b", "1").ok());
  std::optional<std::string> a, b;
  std::vector<KeyValue> kvs;
  Status st = e->read([&](Txn& t) -> Status {
    ASSIGN_OR_RETURN(a, t.get("a"));
    // Another transaction commits between our reads; we must not see it.
    RETURN_IF_ERROR(e->transact([](Txn& o) -> Status {
      RETURN_IF_ERROR(o.put("b", "2"));
      return o.put("c", "2");
    }));
    ASSIGN_OR_RETURN(b, t.get("b"));
    ASSIGN_OR_RETURN(kvs, t.scan("", ""));
    return Status::OK();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(a, "1");
  EXPECT_EQ(b, "1");
  EXPECT_EQ(kvs.size(), 2u);
  EXPECT_EQ(get_one(*e, "b"), "2");
}

// Runs a transaction that scans [begin, end), lets `other` commit in between (first
// attempt only), then writes "out". Returns how many attempts it took.
int attempts_with_interleaved(Engine& e, const std::string& begin, const std::string& end,
                              const TxnFn& other) {
  int attempts = 0;
  Status st = e.transact([&](Txn& t) -> Status {
    attempts++;
    ASSIGN_OR_RETURN(auto kvs, t.scan(begin, end));
    if (attempts == 1) RETURN_IF_ERROR(e.transact(other));
    return t.put("out", std::to_string(kvs.size()));
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return attempts;
}

TEST(EtcdEngine, ScannedRangeConflictsWithInsertUpdateAndDelete) {
  SLUICE_ETCD_OR_SKIP(cluster);
  auto e = open_or_die(cluster->fresh_url());
  ASSERT_TRUE(e);
  ASSERT_TRUE(put_one(*e, "r/1", "x").ok());
  ASSERT_TRUE(put_one(*e, "r/2", "x").ok());
  ASSERT_TRUE(put_one(*e, "z", "x").ok());
  // An insert into the range (a phantom), an update in it, a delete from it: each must
  // make the scanning transaction run again.
  EXPECT_EQ(attempts_with_interleaved(*e, "r/", "r0", [](Txn& t) { return t.put("r/3", "y"); }),
            2);
  EXPECT_EQ(get_one(*e, "out"), "3");
  EXPECT_EQ(attempts_with_interleaved(*e, "r/", "r0", [](Txn& t) { return t.put("r/1", "y"); }),
            2);
  EXPECT_EQ(attempts_with_interleaved(*e, "r/", "r0", [](Txn& t) { return t.del("r/2"); }), 2);
  EXPECT_EQ(get_one(*e, "out"), "2");
  // Writes outside the range do not disturb it.
  EXPECT_EQ(attempts_with_interleaved(*e, "r/", "r0", [](Txn& t) { return t.put("z", "y"); }),
            1);
  EXPECT_EQ(attempts_with_interleaved(*e, "r/", "r0", [](Txn& t) { return t.put("a", "y"); }),
            1);
}

TEST(EtcdEngine, ReadKeyConflictsWhenDeletedOrCreated) {
  SLUICE_ETCD_OR_SKIP(cluster);
  auto e = open_or_die(cluster->fresh_url());
  ASSERT_TRUE(e);
  ASSERT_TRUE(put_one(*e, "k", "1").ok());
  for (bool create : {false, true}) {
    int attempts = 0;
    Status st = e->transact([&](Txn& t) -> Status {
      attempts++;
      ASSIGN_OR_RETURN(auto v, t.get("k"));
      if (attempts == 1) {
        RETURN_IF_ERROR(e->transact([&](Txn& o) { return create ? o.put("k", "2") : o.del("k"); }));
      }
      return t.put("seen", v.value_or("none"));
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(attempts, 2);
    EXPECT_EQ(get_one(*e, "seen"), create ? "2" : "none");
  }
}

// Increments a counter n times; the number that failed.
int increments(Engine& e, int n) {
  int failed = 0;
  for (int i = 0; i < n; i++) {
    if (!testing::increment(e, "counter").ok()) failed++;
  }
  return failed;
}

TEST(EtcdEngine, CarriesOnWhenTheLeaderStops) {
  SLUICE_ETCD_OR_SKIP(cluster);
  auto e = open_or_die(cluster->fresh_url());
  ASSERT_TRUE(e);
  ASSERT_EQ(increments(*e, 20), 0);
  const int leader = cluster->wait_for_leader();
  ASSERT_GE(leader, 0);
  cluster->stop_member(leader);
  EXPECT_EQ(increments(*e, 20), 0);  // the two others elect a leader and serve
  ASSERT_TRUE(cluster->start_member(leader));
  ASSERT_GE(cluster->wait_for_leader(), 0);
  EXPECT_EQ(increments(*e, 20), 0);
  EXPECT_EQ(read_count(*e, "counter"), 60u);
}

TEST(EtcdEngine, ReconnectsAfterTheWholeClusterRestarts) {
  SLUICE_ETCD_OR_SKIP(cluster);
  auto e = open_or_die(cluster->fresh_url());
  ASSERT_TRUE(e);
  ASSERT_TRUE(put_one(*e, "k", "before").ok());
  for (int i = 0; i < EtcdCluster::kMembers; i++) cluster->stop_member(i);
  e->set_retry_options({.max_attempts = 3, .base_backoff_us = 1000, .max_backoff_us = 10000});
  Status down = put_one(*e, "k", "while down");
  EXPECT_EQ(down.code(), Code::kUnavailable) << down.ToString();
  EXPECT_EQ(down.message().find('\n'), std::string::npos);
  for (int i = 0; i < EtcdCluster::kMembers; i++) ASSERT_TRUE(cluster->start_member(i));
  ASSERT_GE(cluster->wait_for_leader(), 0);
  e->set_retry_options({});
  EXPECT_EQ(get_one(*e, "k"), "before");
  ASSERT_TRUE(put_one(*e, "k", "after").ok());
  EXPECT_EQ(get_one(*e, "k"), "after");
}

}  // namespace
}  // namespace sluice::kv
