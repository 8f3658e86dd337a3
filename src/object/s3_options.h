// S3 storage URLs, credentials and request addressing.
//
//   s3://HOST[:PORT]/BUCKET[/PREFIX][?OPTIONS]       https (port 443 by default)
//   s3+http://HOST[:PORT]/BUCKET[/PREFIX][?OPTIONS]  plain http (port 80), for loopback
//
// Options: region=NAME (else $AWS_REGION, else us-east-1); style=path (the default:
// http://HOST/BUCKET/KEY) or style=virtual (http://BUCKET.HOST/KEY); access_key=,
// secret_key= and session_token= (credentials); attempts=N (requests tried per operation,
// default 5; a mount that retries in its own decorator sets 1, see store_options.cc).
//
// Credentials, first found wins: the URL options; the environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); the shared credentials file
// ($AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials), profile $AWS_PROFILE or
// "default". A storage URL is saved with the volume, so keys are better kept out of it.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "common/url.h"
#include "object/sigv4.h"

namespace sluice::object {

struct S3Options {
  bool https = true;
  std::string host;  // endpoint host name or address (IPv6 in brackets)
  int port = 0;      // 0: the scheme's default
  std::string bucket;
  std::string prefix;  // "" or ending in '/': prepended to every key
  bool virtual_style = false;
  std::string region = "us-east-1";
  sigv4::Credentials credentials;
  // Retries of 5xx, 429, timeouts and broken connections: attempts in all, and the
  // first backoff (doubling each time, with jitter, up to 5 s).
  int max_attempts = 5;
  int backoff_ms = 100;

  // "host:port" with the port always given, for error messages.
  std::string endpoint() const;
  // The URL the store was opened with, less its options: "s3://host/bucket/prefix".
  std::string location() const;
};

// Where a request for an object (or the bucket itself, with an empty key) goes.
struct S3Target {
  std::string base_url;  // "https://host[:port]"
  std::string host;      // the Host header
  std::string path;      // decoded path, starting with '/'
};
S3Target s3_target(const S3Options& o, std::string_view object_key);

// Parses an s3:// or s3+http:// URL and resolves region and credentials. Errors are one
// line, kInvalid, and never contain a secret.
Result<S3Options> parse_s3_url(const Url& url);

// The credentials lookup described above; kInvalid when none is found.
Result<sigv4::Credentials> resolve_s3_credentials(const Url& url);

}  // namespace sluice::object
