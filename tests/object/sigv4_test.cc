// SigV4 signing against the examples AWS publishes in the S3 API reference, "Examples:
// Signature Calculations" (Authenticating Requests: Using the Authorization Header):
// AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, examplebucket,
// us-east-1, 20130524T000000Z. Expected values are the published ones.
#include "object/sigv4.h"

#include <gtest/gtest.h>

namespace sluice::object::sigv4 {
namespace {

const Credentials kExample{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
constexpr const char* kDate = "20130524T000000Z";
constexpr const char* kHost = "examplebucket.s3.amazonaws.com";

std::string auth(const std::string& signed_headers, const std::string& signature) {
  return "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
         "SignedHeaders=" +
         signed_headers + ",Signature=" + signature;
}

TEST(SigV4, GetObjectWithRange) {
  Request req{"GET",
              "/test.txt",
              {},
              {{"Host", kHost}, {"Range", "bytes=0-9"}},
              std::string(kEmptyPayloadSha256)};
  Signature s = sign(req, kExample, "us-east-1", kDate);
  EXPECT_EQ(s.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            "\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s.authorization,
            auth("host;range;x-amz-content-sha256;x-amz-date",
                 "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));
}

TEST(SigV4, PutObjectEncodesTheKeyAndSignsEveryHeader) {
  const std::string body = "Welcome to Amazon S3.";
  EXPECT_EQ(sha256_hex(body), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  Request req{"PUT",
              "/test$file.text",
              {},
              {{"Host", kHost},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
              sha256_hex(body)};
  Signature s = sign(req, kExample, "us-east-1", kDate);
  EXPECT_NE(s.canonical_request.find("\n/test%24file.text\n"), std::string::npos);
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(s.authorization,
            auth("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                 "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"));
}

TEST(SigV4, GetBucketLifecycleHasAnEmptyQueryValue) {
  Request req{"GET", "/", {{"lifecycle", ""}}, {{"Host", kHost}}, std::string(kEmptyPayloadSha256)};
  Signature s = sign(req, kExample, "us-east-1", kDate);
  EXPECT_NE(s.canonical_request.find("GET\n/\nlifecycle=\n"), std::string::npos);
  EXPECT_EQ(s.string_to_sign.substr(s.string_to_sign.rfind('\n') + 1),
            "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
  EXPECT_EQ(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4, ListObjectsSortsTheQuery) {
  // Given out of order: the canonical query sorts by name.
  Request req{"GET",
              "/",
              {{"prefix", "J"}, {"max-keys", "2"}},
              {{"Host", kHost}},
              std::string(kEmptyPayloadSha256)};
  Signature s = sign(req, kExample, "us-east-1", kDate);
  EXPECT_NE(s.canonical_request.find("GET\n/\nmax-keys=2&prefix=J\n"), std::string::npos);
  EXPECT_EQ(s.string_to_sign.substr(s.string_to_sign.rfind('\n') + 1),
            "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
  EXPECT_EQ(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4, UriEncodingFollowsTheSpec) {
  EXPECT_EQ(uri_encode("AZaz09-_.~", false), "AZaz09-_.~");
  EXPECT_EQ(uri_encode("a b/c+d=e&f", false), "a%20b%2Fc%2Bd%3De%26f");
  EXPECT_EQ(uri_encode("a b/c", true), "a%20b/c");
  EXPECT_EQ(uri_encode("\xc3\xa9*", true), "%C3%A9%2A");
  EXPECT_EQ(canonical_query({{"b", "2"}, {"a", "x y"}, {"a", "/"}, {"c", ""}}),
            "a=%2F&a=x%20y&b=2&c=");
}

TEST(SigV4, SessionTokenIsSentAndSigned) {
  Credentials temp = kExample;
  temp.session_token = "token/with+chars";
  Request req{"GET", "/k", {}, {{"host", "h"}}, std::string(kUnsignedPayload)};
  Signature s = sign(req, temp, "eu-west-1", kDate);
  bool sent = false;
  for (const auto& [k, v] : req.headers)
    sent |= k == "x-amz-security-token" && v == temp.session_token;
  EXPECT_TRUE(sent);
  EXPECT_NE(s.authorization.find("/20130524/eu-west-1/s3/aws4_request,"), std::string::npos);
  EXPECT_NE(s.authorization.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
                                 "x-amz-security-token,"),
            std::string::npos);
  EXPECT_NE(s.canonical_request.find("x-amz-content-sha256:UNSIGNED-PAYLOAD\n"), std::string::npos);
  // The token is part of what is signed: another token, another signature.
  temp.session_token = "other";
  Request again{"GET", "/k", {}, {{"host", "h"}}, std::string(kUnsignedPayload)};
  EXPECT_NE(sign(again, temp, "eu-west-1", kDate).signature, s.signature);
}

TEST(SigV4, HeaderValuesAreTrimmedAndRepeatedNamesJoined) {
  Request req{"GET",
              "/",
              {},
              {{"Host", "h"}, {"X-Amz-Meta-A", "  one   two "}, {"x-amz-meta-a", "3"}},
              std::string(kEmptyPayloadSha256)};
  Signature s = sign(req, kExample, "us-east-1", kDate);
  EXPECT_NE(s.canonical_request.find("\nx-amz-meta-a:one two,3\n"), std::string::npos)
      << s.canonical_request;
  EXPECT_NE(s.authorization.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
                                 "x-amz-meta-a,"),
            std::string::npos);
}

TEST(SigV4, AmzDateAndMd5) {
  EXPECT_EQ(amz_date(std::chrono::system_clock::from_time_t(1369353600)), kDate);
  EXPECT_EQ(md5_base64(""), "1B2M2Y8AsgTpgAmY7PhCfg==");
  EXPECT_EQ(md5_base64("abc"), "kAFQmDzST7DWlj99KOF/cg==");
}

}  // namespace
}  // namespace sluice::object::sigv4
