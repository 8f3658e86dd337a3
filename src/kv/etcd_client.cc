// EtcdClient: etcd's v3 JSON gateway over libcurl, with failover across members.
#include "kv/etcd_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>

namespace sluice::kv {

namespace {

constexpr size_t kMaxIdleHandles = 32;

// gRPC status codes that etcd returns in the gateway's "code" field.
constexpr int kGrpcDeadlineExceeded = 4;
constexpr int kGrpcPermissionDenied = 7;
constexpr int kGrpcResourceExhausted = 8;
constexpr int kGrpcOutOfRange = 11;
constexpr int kGrpcUnavailable = 14;
constexpr int kGrpcUnauthenticated = 16;

size_t append_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return Status(Code::kIO, "etcd: malformed base64 in answer");
  std::string out(3 * (in.size() / 4) + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return Status(Code::kIO, "etcd: malformed base64 in answer");
  // EVP_DecodeBlock counts the bytes that '=' padding stands for; drop them.
  size_t len = static_cast<size_t>(n);
  if (!in.empty() && in.back() == '=') len--;
  if (in.size() >= 2 && in[in.size() - 2] == '=') len--;
  out.resize(len);
  return out;
}

int64_t json_int(const nlohmann::json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return 0;
  if (it->is_string()) return std::stoll(it->get<std::string>());
  if (it->is_number()) return it->get<int64_t>();
  return 0;
}

EtcdClient::EtcdClient(std::vector<std::string> endpoints, EtcdClientOptions options)
    : endpoints_(std::move(endpoints)), options_(options) {
  static CurlGlobal global;
}

EtcdClient::~EtcdClient() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* EtcdClient::acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void EtcdClient::release(void* handle) {
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdleHandles) {
    idle_.push_back(handle);
  } else {
    curl_easy_cleanup(static_cast<CURL*>(handle));
  }
}

Result<nlohmann::json> EtcdClient::call(const std::string& path, const nlohmann::json& body) {
  const std::string text = body.dump();
  const size_t n = endpoints_.size();
  const size_t first = preferred_.load(std::memory_order_relaxed);
  Status last;
  for (size_t i = 0; i < n; i++) {
    const size_t idx = (first + i) % n;
    bool failover = false;
    auto r = call_one(endpoints_[idx], path, text, failover);
    if (r.ok() || !failover) {
      if (r.ok() && idx != first) preferred_.store(idx, std::memory_order_relaxed);
      return r;
    }
    last = r.status();
  }
  // Start the next call on another member, in case this one keeps failing slowly.
  preferred_.store((first + 1) % n, std::memory_order_relaxed);
  return Status(Code::kUnavailable, last.message());
}

Result<nlohmann::json> EtcdClient::call_one(const std::string& endpoint,
                                            const std::string& path, const std::string& body,
                                            bool& failover) {
  CURL* c = static_cast<CURL*>(acquire());
  if (c == nullptr) return Status(Code::kInternal, "etcd: curl_easy_init failed");
  curl_easy_reset(c);
  const std::string url = "http://" + endpoint + "/v3/" + path;
  std::string answer;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  // No "Expect: 100-continue" round trip before larger bodies.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, options_.request_timeout_ms);
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    // The connection may be half-used; do not keep this handle's connections.
    curl_easy_cleanup(c);
    failover = true;
    return Status(Code::kUnavailable, "cannot reach etcd member " + endpoint + ": " +
                                          curl_easy_strerror(rc));
  }
  release(c);
  nlohmann::json j = nlohmann::json::parse(answer, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    failover = status >= 500;
    return Status(failover ? Code::kUnavailable : Code::kIO,
                  "etcd member " + endpoint + ": HTTP " + std::to_string(status) +
                      " with a malformed answer");
  }
  if (status == 200 && !j.contains("error")) return j;
  const int code = static_cast<int>(json_int(j, "code"));
  std::string msg = j.value("message", j.value("error", std::string("HTTP error")));
  msg = "etcd member " + endpoint + ": " + msg;
  switch (code) {
    case kGrpcUnavailable:
    case kGrpcDeadlineExceeded:
    case kGrpcResourceExhausted:
      failover = true;
      return Status(Code::kUnavailable, msg);
    case kGrpcOutOfRange:
      return Status(Code::kConflict, msg);
    case kGrpcUnauthenticated:
    case kGrpcPermissionDenied:
      return Status(Code::kAccess, msg);
    default:
      if (status >= 500) {
        failover = true;
        return Status(Code::kUnavailable, msg);
      }
      return Status(Code::kIO, msg);
  }
}

}  // namespace sluice::kv
