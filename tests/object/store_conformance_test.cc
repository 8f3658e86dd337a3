// Store conformance suite: the behaviour store.h promises, run against every backend
// (file:// in a temp dir, mem:// under a fresh name, s3+http:// under a fresh prefix of a
// bucket on s3rver). A new backend joins by adding a case to the instantiation at the bottom.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "object/store.h"
#include "servers/s3_server.h"
#include "temp_dir.h"

namespace sluice::object {
namespace {

class StoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    static std::atomic<int> seq{0};
    std::string url;
    if (GetParam() == "file") {
      url = "file://" + dir_.path() + "/store?fsync=false";
    } else if (GetParam() == "mem") {
      url = "mem://conformance-" + std::to_string(seq++);
    } else {
      SLUICE_S3RVER_OR_SKIP(s3);
      url = s3->url(std::string(testing::kS3Bucket) + "/conformance-" + std::to_string(seq++));
    }
    auto s = open_store(url);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = *s;
  }

  void put(const std::string& key, const std::string& data) {
    Status st = store_->put(key, data);
    ASSERT_TRUE(st.ok()) << key << ": " << st.ToString();
  }

  std::vector<std::string> list_keys(const std::string& prefix, const std::string& start_after = "",
                                     size_t limit = 0) {
    auto r = store_->list(prefix, start_after, limit);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> keys;
    if (r.ok()) {
      for (const auto& info : *r) keys.push_back(info.key);
    }
    return keys;
  }

  testing::TempDir dir_;
  std::shared_ptr<Store> store_;
};

TEST_P(StoreConformance, PutGetRoundTripsBinaryData) {
  std::string data("a\0b\xff\n", 5);
  put("a/b/c", data);
  auto r = store_->get("a/b/c");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, data);
}

TEST_P(StoreConformance, EmptyObjectExists) {
  put("empty", "");
  auto r = store_->get("empty");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "");
  auto h = store_->head("empty");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->size, 0u);
  EXPECT_EQ(list_keys(""), std::vector<std::string>{"empty"});
}

TEST_P(StoreConformance, GetRangesAreTruncatedAtTheEnd) {
  put("r", "0123456789");
  struct Case {
    uint64_t off;
    int64_t len;
    std::string want;
  } cases[] = {{0, -1, "0123456789"}, {2, 3, "234"}, {7, -1, "789"}, {8, 100, "89"},
               {9, 1, "9"},           {10, -1, ""},  {50, 5, ""},    {3, 0, ""}};
  for (const auto& c : cases) {
    auto r = store_->get("r", c.off, c.len);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, c.want) << "off=" << c.off << " len=" << c.len;
  }
}

TEST_P(StoreConformance, GetSplitPartsAreTheObjectsBytes) {
  std::string data(100'000, '\0');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(i * 7 + i / 251);
  put("s", data);
  put("tiny", "abc");
  for (size_t split : {size_t(0), size_t(1), size_t(544), size_t(99'999), size_t(100'000),
                       size_t(200'000)}) {
    auto r = store_->get_split("s", split);
    ASSERT_TRUE(r.ok()) << split << ": " << r.status().ToString();
    EXPECT_EQ(r->head, data.substr(0, split)) << split;
    EXPECT_EQ(r->body, data.substr(std::min(split, data.size()))) << split;
  }
  auto t = store_->get_split("tiny", 544);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->head, "abc");
  EXPECT_EQ(t->body, "");
  auto g = store_->get_split("no/such/key", 10);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kNotFound);
  EXPECT_NE(g.status().message().find("no/such/key"), std::string::npos);
}

TEST_P(StoreConformance, MissingKeyIsNotFoundAndNamesTheKey) {
  auto g = store_->get("no/such/key");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kNotFound);
  EXPECT_NE(g.status().message().find("no/such/key"), std::string::npos);
  auto h = store_->head("no/such/key");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->del("no/such/key").ok());
}

TEST_P(StoreConformance, HeadReportsSizeAndMtime) {
  int64_t before = now_ns();
  put("h/obj", std::string(1234, 'x'));
  auto h = store_->head("h/obj");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->key, "h/obj");
  EXPECT_EQ(h->size, 1234u);
  // File systems may round timestamps down to their tick: allow a generous second.
  EXPECT_GE(h->mtime_ns, before - 1'000'000'000);
  EXPECT_LE(h->mtime_ns, now_ns() + 1'000'000'000);
}

TEST_P(StoreConformance, OverwriteReplacesTheObject) {
  put("o", "first version");
  put("o", "v2");
  EXPECT_EQ(*store_->get("o"), "v2");
  EXPECT_EQ(store_->head("o")->size, 2u);
  auto l = store_->list("");
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].size, 2u);
}

TEST_P(StoreConformance, DeleteRemovesOnlyThatKey) {
  put("a/b/c", "1");
  put("a/b/d", "2");
  ASSERT_TRUE(store_->del("a/b/c").ok());
  EXPECT_EQ(store_->get("a/b/c").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->del("a/b/c").ok());
  EXPECT_EQ(list_keys("a/"), std::vector<std::string>{"a/b/d"});
  ASSERT_TRUE(store_->del("a/b/d").ok());
  EXPECT_TRUE(list_keys("").empty());
  put("a/b/e", "3");  // the emptied path is usable again
  EXPECT_EQ(*store_->get("a/b/e"), "3");
}

// Keys chosen so that byte order differs from a naive directory walk: '-' < '.' < '/' < '0'.
const std::vector<std::string> kTrickyKeys = {"b",   "a0",  "a/c/d", "a.x", "ab",
                                              "a-1", "a/b", "a/c/e", "c/z"};

// s3rver 3.7.1 is such a naive walk ("a/b" before "a-1"), unlike S3 itself.
constexpr const char* kS3rverOrder = "s3rver lists in directory-walk order, not S3's byte order";

TEST_P(StoreConformance, ListIsSortedByBytes) {
  if (GetParam() == "s3+http") GTEST_SKIP() << kS3rverOrder;
  for (const auto& k : kTrickyKeys) put(k, "v" + k);
  std::vector<std::string> want = kTrickyKeys;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(list_keys(""), want);
  auto l = store_->list("");
  ASSERT_TRUE(l.ok());
  for (const auto& info : *l) EXPECT_EQ(info.size, info.key.size() + 1) << info.key;
}

TEST_P(StoreConformance, ListMatchesAReferenceForPrefixStartAfterAndLimit) {
  if (GetParam() == "s3+http") GTEST_SKIP() << kS3rverOrder;
  for (const auto& k : kTrickyKeys) put(k, "v");
  std::set<std::string> all(kTrickyKeys.begin(), kTrickyKeys.end());
  const std::vector<std::string> prefixes = {"", "a", "a/", "a/c", "a/c/", "a.", "b", "c/", "zz"};
  const std::vector<std::string> starts = {"", "a", "a-1", "a/", "a/b", "a/c", "a/c/d", "ab", "zz"};
  for (const auto& prefix : prefixes) {
    for (const auto& start : starts) {
      for (size_t limit : {0, 1, 2, 3, 100}) {
        std::vector<std::string> want;
        for (const auto& k : all) {
          if (k.starts_with(prefix) && k > start && (limit == 0 || want.size() < limit)) {
            want.push_back(k);
          }
        }
        EXPECT_EQ(list_keys(prefix, start, limit), want)
            << "prefix='" << prefix << "' start_after='" << start << "' limit=" << limit;
      }
    }
  }
}

TEST_P(StoreConformance, PagingWithStartAfterVisitsEveryKeyOnce) {
  std::vector<std::string> want;
  for (int i = 0; i < 120; i++) {
    std::string key = "vol/chunks/" + std::to_string(i % 7) + "/" + std::to_string(i);
    put(key, "x");
    want.push_back(key);
  }
  put("other/key", "x");
  std::sort(want.begin(), want.end());
  std::vector<std::string> got;
  std::string after;
  while (true) {
    auto page = list_keys("vol/", after, 11);
    ASSERT_LE(page.size(), 11u);
    if (page.empty()) break;
    got.insert(got.end(), page.begin(), page.end());
    after = page.back();
  }
  EXPECT_EQ(got, want);
}

TEST_P(StoreConformance, ConcurrentPutsAreAtomic) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::string whole(64 * 1024, static_cast<char>('A' + t));
      for (int i = 0; i < kPerThread; i++) {
        std::string key =
            "t" + std::to_string(t) + "/d" + std::to_string(i % 5) + "/" + std::to_string(i);
        if (!store_->put(key, key).ok()) failures++;
        if (!store_->put("shared/obj", whole).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(list_keys("t").size(), size_t(kThreads * kPerThread));
  auto shared = store_->get("shared/obj");
  ASSERT_TRUE(shared.ok());
  ASSERT_EQ(shared->size(), 64u * 1024);
  // Whether racing PUTs of one key leave one of them whole is the server's doing on S3
  // (real S3 guarantees it). s3rver 3.7.1 does not: it writes an object in place
  // (fs.createWriteStream on the object's path, lib/stores/filesystem.js putObject), so
  // racing PUTs interleave now and then (a CI run saw 65040 of 65536 bytes from one).
  if (GetParam() == "s3+http") return;
  EXPECT_EQ(std::count(shared->begin(), shared->end(), (*shared)[0]), 64 * 1024)
      << "object mixes the bytes of two puts";
}

TEST_P(StoreConformance, PutsSurviveConcurrentDeletesInTheSameDirectory) {
  if (GetParam() == "s3+http") {
    // S3 has no directories to race on; s3rver 3.7.1 emulates them and crashes (unhandled
    // ENOENT) when a put races a delete that removes one.
    GTEST_SKIP() << "s3rver cannot take this race";
  }
  std::atomic<bool> stop{false};
  std::atomic<int> churn_failures{0};
  std::thread churn([&] {
    while (!stop) {
      if (!store_->put("race/dir/churn", "x").ok()) churn_failures++;
      if (!store_->del("race/dir/churn").ok()) churn_failures++;
    }
  });
  for (int i = 0; i < 300; i++) {
    std::string key = "race/dir/k" + std::to_string(i);
    Status put = store_->put(key, "v");
    EXPECT_TRUE(put.ok()) << put.ToString();
    EXPECT_TRUE(store_->del(key).ok());
  }
  stop = true;
  churn.join();
  EXPECT_EQ(churn_failures.load(), 0);
  EXPECT_TRUE(list_keys("race/").empty());
}

TEST_P(StoreConformance, InvalidKeysAreRejectedByEveryOperation) {
  const std::string bad[] = {
      "", "/abs", "a//b", "a/", "..", "a/../b", "./a", "a/.", std::string("a\0b", 3)};
  for (const auto& key : bad) {
    EXPECT_EQ(store_->put(key, "x").code(), Code::kInvalid) << "'" << key << "'";
    EXPECT_EQ(store_->get(key).status().code(), Code::kInvalid) << "'" << key << "'";
    EXPECT_EQ(store_->head(key).status().code(), Code::kInvalid) << "'" << key << "'";
    EXPECT_EQ(store_->del(key).code(), Code::kInvalid) << "'" << key << "'";
  }
  EXPECT_TRUE(list_keys("").empty());
  for (const std::string key : {"a..b", ".hidden", "x/.y", "dots.../z"}) {
    put(key, key);
    EXPECT_EQ(*store_->get(key), key);
  }
}

TEST_P(StoreConformance, DescribeNamesTheBackend) {
  EXPECT_TRUE(store_->describe().starts_with(GetParam() + "://")) << store_->describe();
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance, ::testing::Values("file", "mem", "s3+http"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '+', '_');
                           return name;
                         });

}  // namespace
}  // namespace sluice::object
