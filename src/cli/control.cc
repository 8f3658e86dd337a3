// The control socket: server loop in the mount process, client for the commands.
#include "cli/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "cli/cli.h"
#include "common/hash.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace sluice::cli {

namespace {

std::string runtime_dir() {
  if (getuid() == 0) return "/run/sluice";
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x == '/') {
    return std::string(x) + "/sluice";
  }
  return "/tmp/sluice-" + std::to_string(getuid());
}

// Writes all of s; false when the peer is gone.
bool write_all(int fd, const std::string& s) {
  for (size_t done = 0; done < s.size();) {
    ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool send_line(int fd, const nlohmann::json& j) { return write_all(fd, j.dump() + "\n"); }

// Reads up to the next '\n' into line, keeping what follows in buf. False on EOF or
// error, or when a signal interrupts the wait and *stop is set.
bool read_line(int fd, std::string& buf, std::string& line,
               const std::atomic<bool>* stop = nullptr) {
  for (;;) {
    if (size_t nl = buf.find('\n'); nl != std::string::npos) {
      line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      return true;
    }
    char tmp[65536];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) {
      if (stop != nullptr && stop->load()) return false;
      continue;
    }
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
  }
}

nlohmann::json progress_json(const vfs::WarmupProgress& p) {
  return {{"total_files", p.total_files.load()}, {"total_bytes", p.total_bytes.load()},
          {"total_blocks", p.total_blocks.load()}, {"files", p.files.load()},
          {"blocks", p.blocks.load()},           {"bytes", p.bytes.load()},
          {"cached_bytes", p.cached_bytes.load()}, {"errors", p.errors.load()}};
}

}  // namespace

std::string control_socket_path(const std::string& mountpoint) {
  return fmt::format("{}/ctl-{:016x}.sock", runtime_dir(), checksum64(mountpoint));
}

ControlServer::ControlServer(vfs::Vfs& vfs, std::string volume)
    : vfs_(vfs), volume_(std::move(volume)) {}

ControlServer::~ControlServer() { stop(); }

Status ControlServer::start(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return errno_error(errno, "cannot create the control socket directory " + dir);
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status(Code::kInvalid, "control socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error(errno, "socket");
  ::unlink(path.c_str());  // a stale socket of a mount that died
  // Created 0600: only the owner (and root) may connect.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc != 0 || ::listen(fd, 16) != 0) {
    Status st = errno_error(errno, "cannot listen on control socket " + path);
    ::close(fd);
    return st;
  }
  if (::pipe2(wake_, O_CLOEXEC) != 0) {
    ::close(fd);
    return errno_error(errno, "pipe");
  }
  listen_fd_ = fd;
  path_ = path;
  acceptor_ = std::thread([this] { accept_loop(); });
  return Status::OK();
}

void ControlServer::stop() {
  if (stopping_.exchange(true)) return;
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::pair<int, std::thread>> conns;
  {
    std::lock_guard lk(mu_);
    conns.swap(conns_);
  }
  for (auto& [fd, t] : conns) ::shutdown(fd, SHUT_RDWR);  // wakes serve(), cancels warmup
  for (auto& [fd, t] : conns) {
    if (t.joinable()) t.join();
    ::close(fd);
  }
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
  }
  for (int& f : wake_) {
    if (f >= 0) ::close(f);
    f = -1;
  }
  listen_fd_ = -1;
}

void ControlServer::accept_loop() {
  while (!stopping_.load()) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LOG_WARN("control socket: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lk(mu_);
    if (stopping_.load()) {
      ::close(fd);
      return;
    }
    conns_.emplace_back(fd, std::thread([this, fd] { serve(fd); }));
  }
}

void ControlServer::serve(int fd) {
  std::string buf, line;
  while (read_line(fd, buf, line)) {
    nlohmann::json req = nlohmann::json::parse(line, nullptr, false);
    if (req.is_discarded() || !req.is_object() || !req.contains("cmd") ||
        !req["cmd"].is_string()) {
      if (!send_line(fd, {{"error", "malformed request"}})) return;
      continue;
    }
    const std::string cmd = req["cmd"];
    if (cmd == "stats") {
      nlohmann::json samples = nlohmann::json::object();
      for (const metrics::Sample& s : metrics::Registry::global().collect()) {
        samples[s.name] = s.value;
      }
      if (!send_line(fd, {{"pid", getpid()}, {"volume", volume_}, {"samples", samples}})) return;
    } else if (cmd == "warmup") {
      warmup(fd, req);
    } else {
      if (!send_line(fd, {{"error", "unknown command '" + cmd + "'"}})) return;
    }
  }
}

void ControlServer::warmup(int fd, const nlohmann::json& req) {
  const std::string mode_name = req.value("mode", "fill");
  vfs::WarmupMode mode = vfs::WarmupMode::kFill;
  if (mode_name == "evict") {
    mode = vfs::WarmupMode::kEvict;
  } else if (mode_name == "check") {
    mode = vfs::WarmupMode::kCheck;
  } else if (mode_name != "fill") {
    (void)send_line(fd, {{"done", true}, {"error", "unknown warmup mode '" + mode_name + "'"}});
    return;
  }
  std::vector<vfs::Ino> inodes;
  if (req.contains("inodes") && req["inodes"].is_array()) {
    for (const auto& v : req["inodes"]) {
      if (v.is_number_unsigned()) inodes.push_back(v.get<vfs::Ino>());
    }
  }
  const int threads = req.value("threads", 16);
  vfs::WarmupProgress progress;
  std::atomic<bool> cancel{false}, done{false};
  Status result;
  std::thread worker([&] {
    result = vfs_.warmup(inodes, mode, threads, progress, cancel);
    done = true;
  });
  // Progress lines while it runs; a closed connection cancels.
  while (!done.load()) {
    pollfd p{fd, POLLRDHUP, 0};
    if (::poll(&p, 1, 250) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
      cancel = true;
      break;
    }
    if (!done.load() && !send_line(fd, {{"progress", progress_json(progress)}})) {
      cancel = true;
      break;
    }
  }
  worker.join();
  if (cancel.load()) {
    LOG_INFO("warmup ({}) cancelled by the client after {} of {} bytes", mode_name,
             progress.bytes.load(), progress.total_bytes.load());
    return;
  }
  (void)send_line(fd, {{"done", true},
                       {"error", result.ok() ? "" : result.message()},
                       {"progress", progress_json(progress)}});
}

Result<std::unique_ptr<ControlClient>> ControlClient::connect(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error(errno, "cannot access " + path);
  std::optional<MountEntry> m = find_mount_of(st.st_dev);
  if (!m || !m->is_sluice()) {
    return Status(Code::kInvalid, path + " is not inside a Sluice mount");
  }
  const std::string sock = control_socket_path(m->mount_point);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (sock.size() >= sizeof(addr.sun_path)) {
    return Status(Code::kInvalid, "control socket path too long: " + sock);
  }
  std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error(errno, "socket");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    return Status(e == EACCES ? Code::kAccess : Code::kUnavailable,
                  fmt::format("cannot reach the mount process of {} at {}: {}", m->mount_point,
                              sock, std::strerror(e)));
  }
  return std::unique_ptr<ControlClient>(new ControlClient(fd, m->mount_point));
}

ControlClient::~ControlClient() { ::close(fd_); }

Status ControlClient::send(const nlohmann::json& req) {
  if (!send_line(fd_, req)) return errno_error(errno, "writing to the mount's control socket");
  return Status::OK();
}

Result<nlohmann::json> ControlClient::receive(const std::atomic<bool>* stop) {
  std::string line;
  if (!read_line(fd_, buf_, line, stop)) {
    if (stop != nullptr && stop->load()) return Status(Code::kInterrupted, "interrupted");
    return Status(Code::kIO, "the mount process of " + mountpoint_ + " closed the connection");
  }
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) return Status(Code::kIO, "malformed answer from the mount process");
  return j;
}

Result<nlohmann::json> ControlClient::call(const nlohmann::json& req) {
  RETURN_IF_ERROR(send(req));
  return receive();
}

}  // namespace sluice::cli
