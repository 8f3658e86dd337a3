// s3:// and s3+http:// stores: objects in an S3-compatible bucket (AWS S3, Ceph RGW,
// MinIO, s3rver, ...). URL forms, options and credentials: s3_options.h.
//
// Each Store call is one request (list: one per page of 1,000 keys), signed with SigV4
// and sent over a shared keep-alive connection pool. Requests that fail with 5xx, 429
// (SlowDown), a timeout or a broken connection are retried with exponential backoff and
// jitter, up to S3Options::max_attempts in all; other 4xx fail at once. Errors are one
// line a user can act on: 403 is kAccess "access denied to s3://HOST/BUCKET ...",
// a missing bucket kNotFound "bucket B does not exist ... (sluice format creates it)",
// a dead endpoint kUnavailable "cannot reach HOST:PORT: ...". All methods are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/url.h"
#include "object/http_client.h"
#include "object/s3_options.h"
#include "object/store.h"

namespace sluice::object {

class S3Store : public Store {
 public:
  explicit S3Store(S3Options options, HttpOptions http = {});

  Status put(const std::string& key, std::string_view data) override;
  // Ranged GET (Range: bytes=a-b); a range starting at or past the end reads as "".
  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override;
  Result<SplitObject> get_split(const std::string& key, size_t head_len) override;
  Result<ObjectInfo> head(const std::string& key) override;
  Status del(const std::string& key) override;
  // ListObjectsV2, following continuation tokens until limit or the last page.
  Result<std::vector<ObjectInfo>> list(const std::string& prefix, const std::string& start_after,
                                       size_t limit) override;
  std::string describe() const override { return opts_.location(); }
  // Creates the bucket (PUT bucket, with the region's LocationConstraint). A bucket that
  // this account already owns is success.
  Status create() override;

  // Deletes keys with DeleteObjects, 1,000 per request; missing keys are success. The
  // first key the server refused fails the call.
  Status del_many(const std::vector<std::string>& keys);

 private:
  struct Call;
  // Sends the call, retrying as described above; returns the last response when it is
  // not worth retrying or attempts ran out, or the last transport error.
  Result<HttpResponse> send(const Call& call);
  // The Status for a non-2xx response to call; key names the object in messages.
  Status error_of(const Call& call, const HttpResponse& resp, const std::string& key) const;
  std::string full_key(const std::string& key) const { return opts_.prefix + key; }

  const S3Options opts_;
  HttpClient http_;
};

// Opens s3://... or s3+http://...; see s3_options.h.
Result<std::shared_ptr<Store>> open_s3_store(const Url& url);

}  // namespace sluice::object
