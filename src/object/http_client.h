// HttpClient: blocking HTTP/1.1 requests on libcurl, for the S3 store.
//
// A pool of curl easy handles is shared by all threads: a request borrows an idle handle
// (curl_easy_reset keeps its live connections), so consecutive requests to one endpoint
// reuse keep-alive connections instead of connecting again. Connect timeout and a
// low-speed abort (a transfer slower than low_speed_bytes per second for low_speed_time_s
// seconds fails) bound every request without capping the size of a body.
//
// Bodies over plain HTTP are received in large pieces: each handle keeps at most one
// connection, whose socket it knows, and raises that socket's receive low-water mark
// (SO_RCVLOWAT) while a long body arrives, so the kernel wakes the thread less often.
//
// perform() reports transport failures only, as one-line statuses naming the endpoint:
// kUnavailable "cannot reach HOST:PORT: <curl error>" when no connection could be made,
// kUnavailable for connections that broke, kTimeout for stalls. Every HTTP status,
// 4xx and 5xx included, is a successful perform() with that status. Thread-safe.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sluice::object {

struct HttpRequest {
  std::string method;  // GET, HEAD, PUT, POST, DELETE
  std::string url;     // scheme://host[:port]/path?query, already encoded
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view body;  // sent for PUT and POST; must outlive perform()
  // > 0: the first body_split bytes of the response body go to HttpResponse::head and
  // only the rest to HttpResponse::body, so a caller keeps the rest without copying it.
  size_t body_split = 0;
};

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::string head;  // the body's first HttpRequest::body_split bytes, when split

  // The value of the first header with this lower-case name, or "".
  std::string header(std::string_view name) const;
};

struct HttpOptions {
  long connect_timeout_s = 10;
  long low_speed_bytes = 1024;
  long low_speed_time_s = 30;
  size_t max_idle_handles = 64;
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // endpoint ("host:port") names the server in error messages.
  Result<HttpResponse> perform(const HttpRequest& req, const std::string& endpoint);

  struct Handle;  // internal: a pooled curl easy handle and the socket of its connection

 private:
  Handle* acquire();
  void release(Handle* handle);

  const HttpOptions options_;
  std::mutex mu_;
  std::vector<Handle*> idle_;  // guarded by mu_
};

}  // namespace sluice::object
