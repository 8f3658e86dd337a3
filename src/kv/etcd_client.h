// EtcdClient: calls etcd's v3 JSON gateway (POST /v3/kv/range, /v3/kv/txn, ...) on one of
// several cluster members, for the etcd:// metadata engine.
//
// Why the JSON gateway and not gRPC: Debian ships etcd 3.4 and libgrpc++ but not etcd's
// .proto files, so the gRPC route means hand-copying a subset of rpc.proto/kv.proto and
// running protoc in the build. The gateway speaks the same API (same messages, JSON with
// base64 bytes and int64 as strings) over HTTP/1.1, which libcurl (already a dependency)
// does with keep-alive connections; the extra JSON encoding costs little next to a raft
// round trip. The HTTP plumbing is hand-written here (a few lines over libcurl) because the
// kv layer cannot depend on the object layer's HttpClient.
//
// Failover: calls go to the member that answered last. A connection failure, a timeout, or
// an etcd answer meaning "this member cannot serve now" (gRPC Unavailable, DeadlineExceeded,
// ResourceExhausted: no leader, leader changed, request timed out, too many requests) moves
// on to the next member; when every member failed the call is kUnavailable, which the
// transaction driver retries with backoff. Each request is bounded by short timeouts
// (connect 1 s, whole request 2.5 s) so that a dead member costs little.
//
// Thread-safe: any number of threads may call() at once (a pool of curl handles).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::kv {

std::string base64_encode(std::string_view in);
Result<std::string> base64_decode(std::string_view in);

// An int64 field of an etcd JSON answer (the gateway writes them as strings, and leaves
// out zeros); 0 when absent.
int64_t json_int(const nlohmann::json& j, const char* field);

struct EtcdClientOptions {
  long connect_timeout_ms = 1000;
  long request_timeout_ms = 2500;
};

class EtcdClient {
 public:
  // endpoints: "host:port" of each member (plain HTTP).
  EtcdClient(std::vector<std::string> endpoints, EtcdClientOptions options = {});
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // POSTs body to /v3/<path> and returns the parsed answer. Errors are one line naming
  // etcd: kUnavailable when no member could serve it (see the failover rules above),
  // kConflict for gRPC OutOfRange (a revision compacted, or not yet applied on the member
  // that answered), kAccess for authentication failures, kIO for any other etcd error.
  Result<nlohmann::json> call(const std::string& path, const nlohmann::json& body);

 private:
  void* acquire();
  void release(void* handle);
  // One request to one member. `failover` is set when the next member should be tried.
  Result<nlohmann::json> call_one(const std::string& endpoint, const std::string& path,
                                  const std::string& body, bool& failover);

  const std::vector<std::string> endpoints_;
  const EtcdClientOptions options_;
  std::atomic<size_t> preferred_{0};  // index of the member that answered last
  std::mutex mu_;
  std::vector<void*> idle_;  // CURL* handles, guarded by mu_
};

}  // namespace sluice::kv
