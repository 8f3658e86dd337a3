// HttpClient against a keep-alive loopback server that sends bodies in small, paced
// pieces, as an object store behind a slow link does: every body arrives whole, whatever
// its size against the receive low-water mark, and the next request reuses the connection
// without stalling; a body cut short fails the request and the next one connects again.
#include "object/http_client.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "canned_http_server.h"

namespace sluice::object {
namespace {

// The body of GET /N: N bytes of a pattern that depends on N.
std::string body_of(size_t n) {
  std::string b(n, '\0');
  for (size_t i = 0; i < n; i++) b[i] = static_cast<char>((i * 7 + n) & 0xff);
  return b;
}

// Serves GET /N with N bytes (the header announces them), in pieces of kPiece bytes a
// millisecond apart, on keep-alive connections, one connection at a time. With
// cut_at > 0, a body stops after cut_at bytes and the connection is closed.
class PacedServer {
 public:
  static constexpr size_t kPiece = (64 << 10) + 7;  // odd, so pieces straddle any mark

  explicit PacedServer(size_t cut_at = 0) : cut_at_(cut_at) {
    fd_ = testing::listen_on_loopback(&port_);
    if (fd_ >= 0) thread_ = std::thread([this] { serve(); });
  }

  ~PacedServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }

  std::string url(size_t n) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(n);
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_; }

 private:
  void serve() {
    for (int conn; (conn = testing::accept_until(fd_, stop_)) >= 0; ::close(conn)) {
      connections_++;
      while (!stop_ && answer(conn)) {
      }
    }
  }

  // One request on conn; false when the connection is done.
  bool answer(int conn) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      pollfd p{conn, POLLIN, 0};
      if (stop_) return false;
      if (::poll(&p, 1, 20) <= 0) continue;
      ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
    }
    const size_t slash = in.find('/');
    const size_t n = std::stoul(in.substr(slash + 1));
    const std::string body = body_of(n);
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n";
    if (!send_all(conn, head)) return false;
    const size_t end = cut_at_ > 0 ? std::min(cut_at_, n) : n;
    for (size_t at = 0; at < end; at += kPiece) {
      if (!send_all(conn, std::string_view(body).substr(at, std::min(kPiece, end - at)))) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return end == n;
  }

  static bool send_all(int conn, std::string_view s) {
    for (size_t done = 0; done < s.size();) {
      ssize_t w = ::send(conn, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (w <= 0) return false;
      done += static_cast<size_t>(w);
    }
    return true;
  }

  const size_t cut_at_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

HttpOptions quick_abort() {
  HttpOptions o;
  o.low_speed_time_s = 3;  // a receiver waiting for bytes that never come fails in 3 s
  return o;
}

Result<HttpResponse> get(HttpClient& client, const PacedServer& server, size_t n) {
  HttpRequest req;
  req.method = "GET";
  req.url = server.url(n);
  return client.perform(req, server.endpoint());
}

TEST(HttpClientTest, PacedBodiesOfEverySizeArriveWholeOnOneConnection) {
  PacedServer server;
  HttpClient client(quick_abort());
  // Around the low-water mark (256 KiB) and twice it, where it is raised and lowered;
  // small replies after large ones must not wait for a mark left raised.
  const std::vector<size_t> sizes = {
      (600 << 10) + 1, 10, (1 << 20) + 123, 512 << 10, (512 << 10) - 1, 300 << 10, 0, 3,
      (4 << 20) + 5,   1};
  for (size_t n : sizes) {
    SCOPED_TRACE("body of " + std::to_string(n) + " bytes");
    auto r = get(client, server, n);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body.size(), n);
    EXPECT_TRUE(r->body == body_of(n));
  }
  EXPECT_EQ(server.connections(), 1);  // every request after the first reused it
}

TEST(HttpClientTest, ABodyCutShortFailsAndTheNextRequestConnectsAgain) {
  PacedServer server(/*cut_at=*/300 << 10);
  HttpClient client(quick_abort());
  auto r = get(client, server, 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  // Under the cut: whole, on a new connection.
  auto small = get(client, server, 100 << 10);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_TRUE(small->body == body_of(100 << 10));
  EXPECT_EQ(server.connections(), 2);
}

}  // namespace
}  // namespace sluice::object
