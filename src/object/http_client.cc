// HttpClient on libcurl easy handles, pooled for keep-alive reuse.
#include "object/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace sluice::object {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The body's destination; the first chunk reserves the whole announced length, so a
// 4 MiB block is not copied again and again as the string grows.
// With a split, the first `split` bytes go to head instead.
struct BodySink {
  CURL* handle;
  HttpResponse* resp;
  size_t split = 0;
  bool sized = false;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  std::string_view in(data, size * n);
  if (!sink->sized) {
    sink->sized = true;
    curl_off_t len = -1;
    constexpr curl_off_t kMaxReserve = 1ll << 30;  // a wrong header costs no more than this
    if (curl_easy_getinfo(sink->handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len) == CURLE_OK &&
        len > 0 && len <= kMaxReserve && static_cast<size_t>(len) > sink->split) {
      sink->resp->body.reserve(static_cast<size_t>(len) - sink->split);
    }
  }
  if (sink->resp->head.size() < sink->split) {
    const size_t take = std::min(in.size(), sink->split - sink->resp->head.size());
    sink->resp->head.append(in.substr(0, take));
    in.remove_prefix(take);
  }
  sink->resp->body.append(in);
  return size * n;
}

// Collects "Name: value" lines; a new status line (after a 100 Continue) starts over.
size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::vector<std::pair<std::string, std::string>>*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    headers->clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  headers->emplace_back(std::move(name), std::string(value));
  return size * n;
}

Status transport_error(CURLcode rc, const char* detail, const std::string& endpoint) {
  std::string why = detail[0] != '\0' ? detail : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
      return Status(Code::kUnavailable, "cannot reach " + endpoint + ": " + why);
    case CURLE_OPERATION_TIMEDOUT:
      return Status(Code::kTimeout, "request to " + endpoint + " timed out: " + why);
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
      return Status(Code::kUnavailable, "connection to " + endpoint + " failed: " + why);
    default:
      return Status(Code::kIO, "request to " + endpoint + " failed: " + why);
  }
}

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

HttpClient::HttpClient(HttpOptions options) : options_(options) { global_init(); }

HttpClient::~HttpClient() {
  for (void* h : idle_) curl_easy_cleanup(h);
}

void* HttpClient::acquire() {
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

void HttpClient::release(void* handle) {
  curl_easy_reset(handle);
  std::lock_guard lock(mu_);
  if (idle_.size() < options_.max_idle_handles) {
    idle_.push_back(handle);
    return;
  }
  curl_easy_cleanup(handle);
}

Result<HttpResponse> HttpClient::perform(const HttpRequest& req, const std::string& endpoint) {
  CURL* h = acquire();
  if (h == nullptr) return Status(Code::kInternal, "curl_easy_init failed");
  struct Release {
    HttpClient* client;
    CURL* handle;
    ~Release() { client->release(handle); }
  } release_on_exit{this, h};

  curl_slist* headers = nullptr;
  auto add = [&](const std::string& line) {
    if (curl_slist* next = curl_slist_append(headers, line.c_str()); next != nullptr) {
      headers = next;
    }
  };
  for (const auto& [k, v] : req.headers) add(k + ": " + v);
  add("Expect:");  // no 100-continue round trip before bodies
  std::unique_ptr<curl_slist, SlistDeleter> free_headers(headers);

  HttpResponse resp;
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, options_.connect_timeout_s);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_bytes);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, options_.low_speed_time_s);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  BodySink sink{h, &resp, req.body_split};
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp.headers);
  if (req.method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (req.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT" || req.method == "POST") {
    // POSTFIELDS sends the body from memory without a copy, with a Content-Length.
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.empty() ? "" : req.body.data());
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) return transport_error(rc, error, endpoint);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

}  // namespace sluice::object
