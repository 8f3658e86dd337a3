// cli/control: the control socket between a running mount and the commands that drive it
// (`sluice stats`, `sluice warmup`).
//
// The mount process listens on a Unix socket whose path is derived from its mount point
// (control_socket_path), so a command given any path inside a mount finds it through
// the mount table alone. The socket is created mode 0600 in a directory only its owner
// can enter: only the user who mounted (and root) can drive the mount.
//
// Protocol: the client sends one JSON object on one line; the server answers with one
// or more JSON lines. Requests:
//   {"cmd":"stats"}  ->  {"pid":N,"volume":"...","samples":{"name":value,...}}
//   {"cmd":"warmup","mode":"fill"|"evict"|"check","threads":N,"inodes":[...]}
//     -> {"progress":{...}} lines about 4 times a second, then
//        {"done":true,"error":"" or a message,"progress":{...}}
//   Closing the connection cancels a warmup in progress.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "vfs/vfs.h"

namespace sluice::cli {

// The socket path for the mount at `mountpoint` (absolute, resolved): under /run/sluice
// for root, else $XDG_RUNTIME_DIR/sluice or /tmp/sluice-UID.
std::string control_socket_path(const std::string& mountpoint);

// Serves control requests for one mount. Thread-safe; stop() (or the destructor) closes
// the socket, cancels running requests and joins every thread.
class ControlServer {
 public:
  ControlServer(vfs::Vfs& vfs, std::string volume);
  ~ControlServer();
  // Binds the socket (replacing a stale one) and starts accepting.
  Status start(const std::string& path);
  void stop();

 private:
  void accept_loop();
  void serve(int fd);
  void warmup(int fd, const nlohmann::json& req);

  vfs::Vfs& vfs_;
  const std::string volume_;
  std::string path_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe that wakes the accept loop on stop()
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;  // guards conns_
  std::vector<std::pair<int, std::thread>> conns_;
};

// The client side: a connection to the mount that holds `path` (any path inside a Sluice
// mount). Errors are one line: not inside a Sluice mount, or the mount has no control
// socket (an older or foreign mount process).
class ControlClient {
 public:
  static Result<std::unique_ptr<ControlClient>> connect(const std::string& path);
  ~ControlClient();
  const std::string& mountpoint() const { return mountpoint_; }

  Status send(const nlohmann::json& req);
  // The next answer line; kIO when the mount closed the connection. kInterrupted when a
  // signal interrupts the wait and *stop is set (a SIGINT handler installed without
  // SA_RESTART sets it).
  Result<nlohmann::json> receive(const std::atomic<bool>* stop = nullptr);
  // send() then receive().
  Result<nlohmann::json> call(const nlohmann::json& req);

 private:
  ControlClient(int fd, std::string mountpoint) : fd_(fd), mountpoint_(std::move(mountpoint)) {}
  int fd_;
  std::string mountpoint_;
  std::string buf_;
};

}  // namespace sluice::cli
