// redis:// engine specifics (the shared contract is in conformance_test.cc): URL parsing,
// credentials, prefix isolation, an unreachable server, reconnecting after a restart, and
// serializability across engines and processes (phantoms included).
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "kv/engine.h"
#include "kv_test_util.h"
#include "servers/redis_server.h"

namespace sluice::kv {
namespace {

using testing::get_one;
using testing::put_one;
using testing::read_count;
using sluice::testing::RedisServer;

std::shared_ptr<Engine> open_or_die(const std::string& url) {
  auto r = open_engine(url, true);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : nullptr;
}

// Runs one command on the test server directly; returns its reply as text.
std::string raw_command(int port, const std::vector<std::string>& args) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (c == nullptr || c->err) {
    redisFree(c);
    return "connect failed";
  }
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  std::string out = r == nullptr ? "no reply" : r->str ? std::string(r->str, r->len) : "";
  if (r != nullptr && r->type == REDIS_REPLY_INTEGER) out = std::to_string(r->integer);
  freeReplyObject(r);
  redisFree(c);
  return out;
}

TEST(RedisEngine, UrlErrorsAreOneLineAndInvalid) {
  for (const char* url :
       {"redis://", "redis://127.0.0.1:notaport/0", "redis://127.0.0.1:70000/0",
        "redis://127.0.0.1:6379/x", "redis://127.0.0.1:6379/0?bogus=1",
        "redis://127.0.0.1:6379/0?timeout_ms=0", "rediss://127.0.0.1:6379/0"}) {
    auto r = open_engine(url);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), Code::kInvalid) << url << ": " << r.status().ToString();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  }
  auto r = open_engine("rediss://127.0.0.1:6379/0");
  EXPECT_NE(r.status().message().find("TLS"), std::string::npos) << r.status().ToString();
}

TEST(RedisEngine, UnreachableServerFailsFastWithUnavailable) {
  int port = sluice::testing::free_loopback_port();
  const std::string url = "redis://127.0.0.1:" + std::to_string(port) + "/0";
  auto t0 = std::chrono::steady_clock::now();
  auto r = open_engine(url);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().message(),
            "cannot connect to metadata engine " + url + ": Connection refused");
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST(RedisEngine, PrefixesAreIsolated) {
  SLUICE_REDIS_OR_SKIP(redis);
  auto a = open_or_die(redis->fresh_url());
  auto b = open_or_die(redis->fresh_url());
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(put_one(*a, "k", "from a").ok());
  ASSERT_TRUE(put_one(*b, "k2", "from b").ok());
  EXPECT_EQ(get_one(*a, "k"), "from a");
  EXPECT_EQ(get_one(*b, "k"), std::nullopt);
  EXPECT_EQ(get_one(*a, "k2"), std::nullopt);
  std::vector<KeyValue> seen;
  ASSERT_TRUE(b->read([&](Txn& t) -> Status {
                 ASSIGN_OR_RETURN(seen, t.scan("", ""));
                 return Status::OK();
               }).ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].key, "k2");
}

TEST(RedisEngine, UserAndPasswordAuthenticateAndStayOutOfDescribe) {
  SLUICE_REDIS_OR_SKIP(redis);
  ASSERT_EQ(raw_command(redis->port(), {"ACL", "SETUSER", "sluicetest", "on", ">s3cret p@ss",
                                        "~*", "&*", "+@all"}),
            "OK");
  const std::string prefix = "auth" + std::to_string(::getpid());
  const std::string base = "127.0.0.1:" + std::to_string(redis->port()) + "/0?prefix=" + prefix;
  auto e = open_or_die("redis://sluicetest:s3cret%20p%40ss@" + base);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->describe(), "redis://sluicetest@" + base);
  EXPECT_EQ(e->describe().find("s3cret"), std::string::npos);
  ASSERT_TRUE(put_one(*e, "k", "v").ok());

  auto wrong = open_engine("redis://sluicetest:nope@" + base);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), Code::kAccess) << wrong.status().ToString();
  EXPECT_EQ(wrong.status().message().find("nope"), std::string::npos);

  // The password may come from the environment instead.
  ::setenv("SLUICE_META_PASSWORD", "s3cret p@ss", 1);
  auto from_env = open_engine("redis://sluicetest@" + base);
  ::unsetenv("SLUICE_META_PASSWORD");
  ASSERT_TRUE(from_env.ok()) << from_env.status().ToString();
  EXPECT_EQ(get_one(**from_env, "k"), "v");
}

TEST(RedisEngine, ValuesAreStoredUnderThePrefix) {
  SLUICE_REDIS_OR_SKIP(redis);
  const std::string prefix = "layout" + std::to_string(::getpid());
  auto e = open_or_die(redis->url(prefix));
  ASSERT_TRUE(e);
  ASSERT_TRUE(put_one(*e, "key", "value").ok());
  std::string stored = raw_command(redis->port(), {"HGET", prefix + ":kv", "key"});
  ASSERT_EQ(stored.size(), 16u + 5u) << stored;
  EXPECT_EQ(stored.substr(16), "value");
  EXPECT_EQ(raw_command(redis->port(), {"ZSCORE", prefix + ":idx", "key"}), "0");
}

// A transaction that read a key whose value another client changed before the commit
// runs again; so does one that scanned a range another client inserted into.
TEST(RedisEngine, StaleReadsAndPhantomsConflict) {
  SLUICE_REDIS_OR_SKIP(redis);
  const std::string url = redis->fresh_url();
  auto e = open_or_die(url), other = open_or_die(url);
  ASSERT_TRUE(e && other);
  ASSERT_TRUE(put_one(*e, "k", "1").ok());

  int calls = 0;
  ASSERT_TRUE(e->transact([&](Txn& t) -> Status {
                 ASSIGN_OR_RETURN(auto v, t.get("k"));
                 if (calls++ == 0) RETURN_IF_ERROR(put_one(*other, "k", "10"));
                 return t.put("k", std::to_string(std::stoi(*v) + 1));
               }).ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(get_one(*e, "k"), "11");

  calls = 0;
  ASSERT_TRUE(e->transact([&](Txn& t) -> Status {
                 ASSIGN_OR_RETURN(auto dir, t.scan("d/", "d0"));
                 if (calls++ == 0) RETURN_IF_ERROR(put_one(*other, "d/new", "x"));
                 return t.put("count", std::to_string(dir.size()));
               }).ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(get_one(*e, "count"), "1");

  // A key that was missing and is created concurrently conflicts too.
  calls = 0;
  ASSERT_TRUE(e->transact([&](Txn& t) -> Status {
                 ASSIGN_OR_RETURN(auto v, t.get("fresh"));
                 if (calls++ == 0) RETURN_IF_ERROR(put_one(*other, "fresh", "made"));
                 return t.put("saw", v ? *v : "nothing");
               }).ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(get_one(*e, "saw"), "made");

  // A read-only transaction with two reads sees one snapshot.
  calls = 0;
  std::string a, b;
  ASSERT_TRUE(e->read([&](Txn& t) -> Status {
                 ASSIGN_OR_RETURN(auto x, t.get("k"));
                 if (calls++ == 0) {
                   RETURN_IF_ERROR(other->transact([](Txn& o) -> Status {
                     RETURN_IF_ERROR(o.put("k", "20"));
                     return o.put("saw", "20");
                   }));
                 }
                 ASSIGN_OR_RETURN(auto y, t.get("saw"));
                 a = *x;
                 b = *y;
                 return Status::OK();
               }).ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(a, "20");
  EXPECT_EQ(b, "20");
}

// Scans with a limit merge the Txn's own writes correctly.
TEST(RedisEngine, LimitedScanMergesLocalWrites) {
  SLUICE_REDIS_OR_SKIP(redis);
  auto e = open_or_die(redis->fresh_url());
  ASSERT_TRUE(e);
  ASSERT_TRUE(e->transact([](Txn& t) -> Status {
                 for (const char* k : {"a", "b", "c", "d", "e"}) RETURN_IF_ERROR(t.put(k, k));
                 return Status::OK();
               }).ok());
  ASSERT_TRUE(e->transact([](Txn& t) -> Status {
                 RETURN_IF_ERROR(t.del("a"));
                 RETURN_IF_ERROR(t.del("b"));
                 RETURN_IF_ERROR(t.put("bb", "new"));
                 RETURN_IF_ERROR(t.put("z", "new"));
                 ASSIGN_OR_RETURN(auto two, t.scan("", "", 2));
                 EXPECT_EQ(two.size(), 2u);
                 if (two.size() == 2) {
                   EXPECT_EQ(two[0].key, "bb");
                   EXPECT_EQ(two[1].key, "c");
                 }
                 ASSIGN_OR_RETURN(auto all, t.scan("c", "", 10));
                 EXPECT_EQ(all.size(), 4u);  // c d e z
                 if (all.size() == 4) {
                   EXPECT_EQ(all[3].key, "z");
                 }
                 return Status::OK();
               }).ok());
}

// Processes (not only threads) incrementing one counter count exactly.
TEST(RedisEngine, ConcurrentProcessesCountExactly) {
  SLUICE_REDIS_OR_SKIP(redis);
  const std::string url = redis->fresh_url();
  constexpr int kProcs = 4, kPerProc = 100;
  std::vector<pid_t> kids;
  for (int i = 0; i < kProcs; i++) {
    pid_t pid = ::fork();
    if (pid == 0) {
      auto r = open_engine(url);
      if (!r.ok()) ::_exit(2);
      for (int j = 0; j < kPerProc; j++) {
        Status st = testing::increment(**r, "counter");
        if (!st.ok()) {
          fprintf(stderr, "child: %s\n", st.ToString().c_str());
          ::_exit(3);
        }
      }
      ::_exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  auto e = open_or_die(url);
  ASSERT_TRUE(e);
  EXPECT_EQ(read_count(*e, "counter"), uint64_t{kProcs * kPerProc});
}

// A commit whose reply never comes (the server is stuck in a long script for longer than
// the client's I/O timeout, then runs the commit after the client gave up on it) is
// resolved through its marker: applied exactly once, not once per attempt.
TEST(RedisEngine, CommitWithLostReplyIsAppliedExactlyOnce) {
  SLUICE_REDIS_OR_SKIP(redis);
  auto e = open_or_die(redis->fresh_url() + "&timeout_ms=300");
  ASSERT_TRUE(e);
  ASSERT_TRUE(put_one(*e, "counter", "0").ok());
  const std::string busy_1s =
      "local s = redis.call('TIME') "
      "while true do local n = redis.call('TIME') "
      "if (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > 1000000 then break end end "
      "return 1";
  std::thread busy;
  int calls = 0;
  Status st = e->transact([&](Txn& t) -> Status {
    ASSIGN_OR_RETURN(auto v, t.get("counter"));
    if (calls++ == 0) {  // the commit below goes out while the server is busy
      busy = std::thread([&] { raw_command(redis->port(), {"EVAL", busy_1s, "0"}); });
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return t.put("counter", std::to_string(std::stoi(*v) + 1));
  });
  busy.join();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(read_count(*e, "counter"), 1u) << "closure ran " << calls << " times";
}

// While the server is down transactions fail with kUnavailable (after the driver's
// retries); once it is back the same engine reconnects, and nothing acknowledged is lost.
TEST(RedisEngine, ReconnectsAfterRestartWithoutLosingWrites) {
  SLUICE_REDIS_OR_SKIP(redis);
  auto e = open_or_die(redis->fresh_url());
  ASSERT_TRUE(e);
  e->set_retry_options({5, 1000, 10'000});
  for (int i = 0; i < 20; i++) ASSERT_TRUE(put_one(*e, "k" + std::to_string(i), "v").ok());

  redis->stop();
  Status down = put_one(*e, "while-down", "v");
  EXPECT_EQ(down.code(), Code::kUnavailable) << down.ToString();
  ASSERT_EQ(redis->start(), "");

  e->set_retry_options({});
  ASSERT_TRUE(put_one(*e, "after", "v").ok());
  for (int i = 0; i < 20; i++) EXPECT_EQ(get_one(*e, "k" + std::to_string(i)), "v");
  EXPECT_EQ(get_one(*e, "while-down"), std::nullopt);

  redis->kill();  // no shutdown flush: the fsync'ed append-only file still has it all
  ASSERT_EQ(redis->start(), "");
  EXPECT_EQ(get_one(*e, "after"), "v");
  EXPECT_EQ(get_one(*e, "k19"), "v");
}

}  // namespace
}  // namespace sluice::kv
