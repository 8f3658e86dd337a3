// AWS Signature Version 4 for S3 requests, header-based ("Authorization: AWS4-HMAC-SHA256 ...").
//
// Written by hand on OpenSSL (SHA-256, HMAC-SHA256) because no C++ AWS SDK is packaged in
// Debian. Follows the S3 signing spec: the canonical URI encodes each path byte except
// unreserved characters and '/' exactly once (S3 does not double-encode), the canonical
// query sorts encoded names, every header given to sign() is signed, and the payload hash
// is either the hex SHA-256 of the body or UNSIGNED-PAYLOAD. Tested against the examples
// AWS publishes ("Examples: Signature Calculations", AKIAIOSFODNN7EXAMPLE).
// All functions are pure and thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::object::sigv4 {

using Params = std::vector<std::pair<std::string, std::string>>;

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // temporary credentials only; sent as x-amz-security-token
};

inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string sha256_hex(std::string_view data);
// Raw (binary) HMAC-SHA256 of data under key.
std::string hmac_sha256(std::string_view key, std::string_view data);
// Base64 of the MD5 digest, the Content-MD5 header value (DeleteObjects requires it).
std::string md5_base64(std::string_view data);

// Percent-encoding as SigV4 wants it: A-Z a-z 0-9 - _ . ~ stay, every other byte becomes
// %XX with upper-case hex; '/' stays too when keep_slash (object paths).
std::string uri_encode(std::string_view s, bool keep_slash);
// "name=value&..." with names and values encoded, sorted by name then value. The same
// string serves as the canonical query and as the query sent on the wire.
std::string canonical_query(const Params& params);

struct Request {
  std::string method;        // GET, PUT, ...
  std::string path;          // decoded, starting with '/': "/bucket/key with spaces"
  Params query;              // decoded names and values
  Params headers;            // must include host; names in any case
  std::string payload_hash;  // sha256_hex(body) or kUnsignedPayload
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;      // hex
  std::string authorization;  // the Authorization header value
};

// Adds x-amz-date, x-amz-content-sha256 and (with a session token) x-amz-security-token to
// req.headers unless present, then signs all of req.headers. amz_date is "YYYYMMDDTHHMMSSZ".
Signature sign(Request& req, const Credentials& creds, std::string_view region,
               std::string_view amz_date, std::string_view service = "s3");

// The x-amz-date form of a time point (UTC).
std::string amz_date(std::chrono::system_clock::time_point t);

}  // namespace sluice::object::sigv4
