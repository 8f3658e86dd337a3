// S3Store behaviour beyond the conformance suite: retries counted exactly against a canned
// HTTP server (5xx and 429 retried, other 4xx not), the requests it sends (path, Range,
// signature, pagination), and the errors a user sees for a wrong key, a missing bucket
// and an unreachable endpoint, against s3rver where it can tell.
#include "object/s3_store.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "canned_http_server.h"
#include "object/store_options.h"
#include "servers/s3_server.h"

namespace sluice::object {
namespace {

using testing::CannedHttpServer;

S3Options canned_options(int port) {
  S3Options o;
  o.https = false;
  o.host = "127.0.0.1";
  o.port = port;
  o.bucket = "bkt";
  o.credentials = {"AKID", "SECRET", ""};
  o.backoff_ms = 1;
  return o;
}

std::string s3_error(const std::string& code, const std::string& message) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code + "</Code><Message>" +
         message + "</Message><RequestId>1</RequestId></Error>";
}

TEST(S3Retry, ServerErrorsAreRetriedUntilSuccess) {
  CannedHttpServer server({{500, s3_error("InternalError", "oops")},
                           {503, s3_error("SlowDown", "Please reduce your request rate.")},
                           {429, ""},
                           {200, ""}});
  S3Store store(canned_options(server.port()));
  Status st = store.put("a/b", "data");
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(server.requests().size(), 4u);
}

TEST(S3Retry, GivesUpAfterMaxAttemptsWithTheLastError) {
  CannedHttpServer server({{503, s3_error("SlowDown", "Please reduce your request rate.")}});
  S3Store store(canned_options(server.port()));
  auto r = store.get("k", 0, -1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(server.requests().size(), 5u);
  EXPECT_NE(r.status().message().find("SlowDown"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("after 5 attempts"), std::string::npos);
}

TEST(S3Retry, MountRetriesAreNotMultipliedByTheStoresOwnAttempts) {
  CannedHttpServer server({{503, s3_error("SlowDown", "Please reduce your request rate.")}});
  StoreOptions opts;
  opts.retry.retries = 3;
  opts.retry.initial_backoff_ns = 1'000'000;
  auto store = open_store_for_mount("s3+http://127.0.0.1:" + std::to_string(server.port()) +
                                        "/bkt?access_key=AKID&secret_key=SECRET",
                                    opts);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto r = (*store)->get("k", 0, -1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(server.requests().size(), 4u);  // the first try and 3 retries, each sent once
}

TEST(S3Retry, AttemptsOptionSetsTheStoresOwnRetries) {
  CannedHttpServer server({{503, s3_error("SlowDown", "Please reduce your request rate.")}});
  auto store = open_store("s3+http://127.0.0.1:" + std::to_string(server.port()) +
                          "/bkt?access_key=AKID&secret_key=SECRET&attempts=2");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_FALSE((*store)->get("k", 0, -1).ok());
  EXPECT_EQ(server.requests().size(), 2u);
  auto bad = open_store("s3+http://127.0.0.1:1/bkt?access_key=A&secret_key=S&attempts=0");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("attempts must be a number from 1 to 100"),
            std::string::npos)
      << bad.status().message();
}

TEST(S3Retry, ForbiddenIsNotRetriedAndSaysAccessDenied) {
  // A wrong secret: s3rver does not check signatures, so the AWS answer is canned here.
  CannedHttpServer server({{403, s3_error("SignatureDoesNotMatch",
                                          "The request signature we calculated does not match")}});
  S3Store store(canned_options(server.port()));
  Status st = store.put("k", "v");
  EXPECT_EQ(st.code(), Code::kAccess);
  EXPECT_EQ(server.requests().size(), 1u);
  const std::string want =
      "access denied to s3+http://127.0.0.1:" + std::to_string(server.port()) + "/bkt";
  EXPECT_TRUE(st.message().starts_with(want)) << st.message();
  EXPECT_NE(st.message().find("check the access key and secret"), std::string::npos);
  EXPECT_NE(st.message().find("SignatureDoesNotMatch"), std::string::npos);
  EXPECT_EQ(store.head("k").status().code(), Code::kAccess);  // HEAD has no body to read
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(S3Retry, OtherClientErrorsAreNotRetried) {
  CannedHttpServer server({{400, s3_error("InvalidArgument", "bad thing")}, {200, ""}});
  S3Store store(canned_options(server.port()));
  Status st = store.del("k");
  EXPECT_EQ(st.code(), Code::kIO);
  EXPECT_EQ(server.requests().size(), 1u);
  EXPECT_NE(st.message().find("HTTP 400 InvalidArgument: bad thing"), std::string::npos)
      << st.message();
}

TEST(S3Retry, UnreachableEndpointIsRetriedThenReported) {
  int port = testing::free_loopback_port();  // nothing listens there
  S3Options o = canned_options(port);
  o.max_attempts = 2;
  S3Store store(o);
  Status st = store.put("k", "v");
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_TRUE(st.message().starts_with("cannot reach 127.0.0.1:" + std::to_string(port) + ": "))
      << st.message();
  EXPECT_NE(st.message().find("after 2 attempts"), std::string::npos);
}

TEST(S3Requests, GetSendsASignedRangeRequestToTheEncodedPath) {
  CannedHttpServer server({{206, "0123456789"}});
  S3Options o = canned_options(server.port());
  o.prefix = "pre/";
  S3Store store(o);
  auto r = store.get("dir/k x+y", 5, 10);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "0123456789");
  ASSERT_EQ(server.requests().size(), 1u);
  const std::string req = server.requests()[0];
  EXPECT_TRUE(req.starts_with("GET /bkt/pre/dir/k%20x%2By HTTP/1.1\r\n")) << req;
  EXPECT_NE(req.find("\r\nrange: bytes=5-14\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos)
      << req;
  EXPECT_NE(req.find("\r\nauthorization: AWS4-HMAC-SHA256 Credential=AKID/"), std::string::npos);
  EXPECT_NE(req.find("/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;"
                     "x-amz-date,Signature="),
            std::string::npos)
      << req;
}

TEST(S3Requests, PutOverHttpSignsTheBodyHash) {
  CannedHttpServer server({{200, ""}});
  S3Store store(canned_options(server.port()));
  ASSERT_TRUE(store.put("k", "Welcome to Amazon S3.").ok());
  const std::string req = server.requests()[0];
  EXPECT_TRUE(req.starts_with("PUT /bkt/k HTTP/1.1\r\n")) << req;
  EXPECT_NE(req.find("x-amz-content-sha256: "
                     "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\r\n"),
            std::string::npos)
      << req;
  EXPECT_TRUE(req.ends_with("\r\n\r\nWelcome to Amazon S3."));
}

TEST(S3Requests, ListFollowsContinuationTokensAndDecodesEntities) {
  auto page = [](const std::string& keys, const std::string& next) {
    std::string xml = "<?xml version=\"1.0\"?><ListBucketResult><Name>bkt</Name>";
    xml += next.empty() ? "<IsTruncated>false</IsTruncated>"
                        : "<IsTruncated>true</IsTruncated><NextContinuationToken>" + next +
                              "</NextContinuationToken>";
    return xml + keys + "</ListBucketResult>";
  };
  auto item = [](const std::string& key, int size) {
    return "<Contents><Key>" + key +
           "</Key><LastModified>2013-05-24T00:00:01.500Z"
           "</LastModified><ETag>&quot;x&quot;</ETag><Size>" +
           std::to_string(size) + "</Size></Contents>";
  };
  CannedHttpServer server(
      {{200, page(item("p/a&amp;b", 1) + item("p/c&lt;&#233;&#x41;", 22), "tok/&amp;1")},
       {200, page(item("p/z", 3), "")}});
  S3Options o = canned_options(server.port());
  o.prefix = "p/";
  S3Store store(o);
  auto r = store.list("", "a", 0);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].key, "a&b");
  EXPECT_EQ((*r)[1].key,
            "c<\xc3\xa9"
            "A");
  EXPECT_EQ((*r)[1].size, 22u);
  EXPECT_EQ((*r)[1].mtime_ns, 1369353601'500'000'000);
  EXPECT_EQ((*r)[2].key, "z");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_TRUE(
      reqs[0].starts_with("GET /bkt?list-type=2&max-keys=1000&prefix=p%2F&"
                          "start-after=p%2Fa HTTP/1.1"))
      << reqs[0];
  EXPECT_TRUE(
      reqs[1].starts_with("GET /bkt?continuation-token=tok%2F%261&list-type=2&"
                          "max-keys=1000&prefix=p%2F HTTP/1.1"))
      << reqs[1];
}

TEST(S3Requests, RangePastTheEndReadsEmpty) {
  CannedHttpServer server({{416, s3_error("InvalidRange",
                                          "The requested range is not "
                                          "satisfiable")}});
  S3Store store(canned_options(server.port()));
  auto r = store.get("k", 100, 5);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "");
  EXPECT_EQ(server.requests().size(), 1u);
}

// Against s3rver: what a user sees.

TEST(S3Errors, WrongAccessKeyIsAccessDenied) {
  SLUICE_S3RVER_OR_SKIP(s3);
  std::string url = s3->url(std::string(testing::kS3Bucket));
  url.replace(url.find("access_key=S3RVER"), 17, "access_key=NOBODY");
  auto store = open_store(url);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Status st = (*store)->put("k", "v");
  EXPECT_EQ(st.code(), Code::kAccess);
  EXPECT_TRUE(st.message().starts_with(
      "access denied to s3+http://127.0.0.1:" + std::to_string(s3->port()) + "/sluice-test"))
      << st.message();
  EXPECT_NE(st.message().find("InvalidAccessKeyId"), std::string::npos) << st.message();
}

TEST(S3Errors, MissingBucketSaysSoAndCreateMakesIt) {
  SLUICE_S3RVER_OR_SKIP(s3);
  static int seq = 0;
  std::string bucket = "fresh-bucket-" + std::to_string(seq++);
  auto store = open_store(s3->url(bucket + "/vol"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Status st = (*store)->put("k", "v");
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), "bucket " + bucket + " does not exist at s3+http://127.0.0.1:" +
                              std::to_string(s3->port()) + " (sluice format creates it)");
  ASSERT_TRUE((*store)->create().ok());
  Status again = (*store)->create();
  EXPECT_TRUE(again.ok()) << again.ToString();
  ASSERT_TRUE((*store)->put("k", "v").ok());
  EXPECT_EQ(*(*store)->get("k"), "v");
}

TEST(S3Errors, UnreachableEndpointThroughOpenStore) {
  int port = testing::free_loopback_port();
  auto store =
      open_store("s3+http://127.0.0.1:" + std::to_string(port) + "/b?access_key=a&secret_key=s");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto r = (*store)->list("", "", 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_TRUE(r.status().message().starts_with("cannot reach 127.0.0.1:" + std::to_string(port)))
      << r.status().message();
}

TEST(S3Server, SpecialKeysRoundTripAndDeleteManyRemovesThem) {
  SLUICE_S3RVER_OR_SKIP(s3);
  auto opened = open_store(s3->url(std::string(testing::kS3Bucket) + "/special"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto* store = dynamic_cast<S3Store*>(opened->get());
  ASSERT_NE(store, nullptr);
  std::vector<std::string> keys = {"sp ace/x", "a&b<c>'\"", "plus+eq=semi;", "utf8-\xc3\xa9",
                                   "pct%41q?h#"};
  for (const auto& k : keys) ASSERT_TRUE(store->put(k, "v:" + k).ok()) << k;
  for (const auto& k : keys) {
    auto got = store->get(k, 0, -1);
    ASSERT_TRUE(got.ok()) << k << ": " << got.status().ToString();
    EXPECT_EQ(*got, "v:" + k);
  }
  auto listed = store->list("", "", 0);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  std::vector<std::string> got, want = keys;
  for (const auto& info : *listed) got.push_back(info.key);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  keys.push_back("never/written");
  Status st = store->del_many(keys);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(store->list("", "", 0)->empty());
}

TEST(S3Server, ListPagesPastAThousandKeys) {
  SLUICE_S3RVER_OR_SKIP(s3);
  auto store = open_store(s3->url(std::string(testing::kS3Bucket) + "/many"));
  ASSERT_TRUE(store.ok());
  std::vector<std::string> keys;
  for (int i = 0; i < 1005; i++) keys.push_back("k" + std::to_string(10000 + i));
  for (const auto& k : keys) ASSERT_TRUE((*store)->put(k, "").ok());
  auto all = (*store)->list("", "", 0);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->size(), 1005u);
  EXPECT_EQ(all->back().key, keys.back());
  auto some = (*store)->list("", "k10002", 1002);
  ASSERT_TRUE(some.ok());
  ASSERT_EQ(some->size(), 1002u);
  EXPECT_EQ(some->front().key, "k10003");
  EXPECT_TRUE(dynamic_cast<S3Store*>(store->get())->del_many(keys).ok());
}

}  // namespace
}  // namespace sluice::object
