// HttpClient on libcurl easy handles, pooled for keep-alive reuse.
#include "object/http_client.h"

#include <curl/curl.h>
#include <sys/socket.h>

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
// With lowat_of, the socket of the transfer's connection, whose receive low-water mark is
// raised while a long body arrives (see kRecvLowat).
struct BodySink {
  CURL* handle;
  HttpResponse* resp;
  size_t split = 0;
  const curl_socket_t* lowat_of = nullptr;  // the connection's socket, when a mark may be set
  bool sized = false;
  curl_off_t left = -1;                  // body bytes still to come, when announced
  curl_socket_t sock = CURL_SOCKET_BAD;  // the socket whose mark is raised, if any
};

// A body is received in pieces of kRecvLowat bytes: the kernel wakes the receiving
// thread once that much has arrived (SO_RCVLOWAT, honoured by TCP's poll and wakeups)
// instead of at every segment the server flushes. Each wakeup costs a context switch and
// a poll: in a cold model load through the benchmark's proxy, the mark halved the mount's
// context switches and cut its CPU by a sixth (docs/benchmarks.md). The mark never
// exceeds the body bytes still to come, so a wait always ends: it falls back to 1 byte
// for the last piece, before the connection can be reused.
constexpr curl_off_t kRecvLowat = 256 << 10;

void set_lowat(curl_socket_t sock, int bytes) {
  setsockopt(sock, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes);  // best effort
}

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
    if (len > 0) sink->left = len;
    if (sink->lowat_of != nullptr && *sink->lowat_of != CURL_SOCKET_BAD &&
        sink->left >= 2 * kRecvLowat) {
      sink->sock = *sink->lowat_of;
      set_lowat(sink->sock, static_cast<int>(kRecvLowat));
    }
  }
  if (sink->left > 0)
    sink->left -= static_cast<curl_off_t>(std::min<size_t>(in.size(), sink->left));
  if (sink->sock != CURL_SOCKET_BAD && sink->left < kRecvLowat) {
    set_lowat(sink->sock, 1);
    sink->sock = CURL_SOCKET_BAD;
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

// A pooled easy handle. It keeps one connection at most (CURLOPT_MAXCONNECTS 1), so the
// socket curl last opened for it and has not closed is the one a transfer on it uses:
// curl's API names no socket during a transfer (CURLINFO_ACTIVESOCKET answers only for
// CURLOPT_CONNECT_ONLY), and the low-water mark must be set on the right one.
struct HttpClient::Handle {
  CURL* curl = nullptr;
  curl_socket_t sock = CURL_SOCKET_BAD;
};

namespace {

int on_socket_open(void* user, curl_socket_t sock, curlsocktype purpose) {
  if (purpose == CURLSOCKTYPE_IPCXN) static_cast<HttpClient::Handle*>(user)->sock = sock;
  return CURL_SOCKOPT_OK;
}

// curl keeps this callback with each connection, so it runs for a cached connection
// closed later too (the Handle outlives its curl handle's connections).
int on_socket_close(void* user, curl_socket_t sock) {
  auto* h = static_cast<HttpClient::Handle*>(user);
  if (h->sock == sock) h->sock = CURL_SOCKET_BAD;
  return ::close(sock);
}

}  // namespace

HttpClient::~HttpClient() {
  for (Handle* h : idle_) {
    curl_easy_cleanup(h->curl);
    delete h;
  }
}

HttpClient::Handle* HttpClient::acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      Handle* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  CURL* c = curl_easy_init();
  return c == nullptr ? nullptr : new Handle{c};
}

void HttpClient::release(Handle* handle) {
  curl_easy_reset(handle->curl);
  {
    std::lock_guard lock(mu_);
    if (idle_.size() < options_.max_idle_handles) {
      idle_.push_back(handle);
      return;
    }
  }
  curl_easy_cleanup(handle->curl);
  delete handle;
}

Result<HttpResponse> HttpClient::perform(const HttpRequest& req, const std::string& endpoint) {
  Handle* handle = acquire();
  if (handle == nullptr) return Status(Code::kInternal, "curl_easy_init failed");
  struct Release {
    HttpClient* client;
    Handle* handle;
    ~Release() { client->release(handle); }
  } release_on_exit{this, handle};
  CURL* h = handle->curl;

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
  curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 1L);
  curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, on_socket_open);
  curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, handle);
  curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_socket_close);
  curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, handle);
  // The mark only over plain HTTP: through TLS, OpenSSL may already hold bytes it read
  // from the socket, so fewer than the body's remaining bytes may be still to come there.
  const bool lowat = req.url.starts_with("http://");
  BodySink sink{h, &resp, req.body_split};
  // Read when the first body bytes arrive: by then the connection is made or reused.
  if (lowat) sink.lowat_of = &handle->sock;
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

  // Reads as large as the low-water mark, so one wakeup takes one piece in one recv.
  if (lowat) curl_easy_setopt(h, CURLOPT_BUFFERSIZE, static_cast<long>(kRecvLowat));

  CURLcode rc = curl_easy_perform(h);
  // Cut short with the mark raised: lowered, if the connection lives on for another request.
  if (sink.sock != CURL_SOCKET_BAD && sink.sock == handle->sock) set_lowat(sink.sock, 1);
  if (rc != CURLE_OK) return transport_error(rc, error, endpoint);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

}  // namespace sluice::object
