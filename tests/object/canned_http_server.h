// CannedHttpServer: a loopback HTTP server on a thread that answers each request with the
// next canned reply (the last one repeats) and records what it was sent, so that tests
// can count retries exactly and look at the requests a client made. One connection at a
// time; every reply closes its connection.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::testing {

// A TCP socket listening on 127.0.0.1 at a free port, its port in *port; -1 (and a test
// failure) if there is none.
inline int listen_on_loopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot listen on loopback";
    if (fd >= 0) ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// The next connection on the listening fd, or -1 once *stop is set (polled every 20 ms).
inline int accept_until(int fd, const std::atomic<bool>& stop) {
  while (!stop) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    int conn = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn >= 0) return conn;
  }
  return -1;
}

class CannedHttpServer {
 public:
  struct Reply {
    int status = 200;
    std::string body;
  };

  explicit CannedHttpServer(std::vector<Reply> replies) : replies_(std::move(replies)) {
    fd_ = listen_on_loopback(&port_);
    if (fd_ >= 0) thread_ = std::thread([this] { serve(); });
  }

  ~CannedHttpServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }

  int port() const { return port_; }
  // The request line, headers and body of every request so far.
  std::vector<std::string> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void serve() {
    for (int conn; (conn = accept_until(fd_, stop_)) >= 0; ::close(conn)) answer(conn);
  }

  void answer(int conn) {
    std::string in;
    char buf[65536];
    size_t head_end;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
    }
    size_t want = head_end + 4;
    std::string lower = in.substr(0, head_end);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (size_t cl = lower.find("\r\ncontent-length:"); cl != std::string::npos) {
      want += std::stoul(lower.substr(cl + 17));
    }
    while (in.size() < want) {
      ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
    }
    Reply reply;
    {
      std::lock_guard lock(mu_);
      reply = replies_[std::min(requests_.size(), replies_.size() - 1)];
      requests_.push_back(in);
    }
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) +
                      " Canned\r\nContent-Length: " + std::to_string(reply.body.size()) +
                      "\r\nConnection: close\r\n\r\n";
    if (!in.starts_with("HEAD ")) out += reply.body;
    for (size_t done = 0; done < out.size();) {
      ssize_t n = ::send(conn, out.data() + done, out.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }

  const std::vector<Reply> replies_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::string> requests_;  // guarded by mu_
};

}  // namespace sluice::testing
