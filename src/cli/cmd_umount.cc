// sluice umount: unmounts a Sluice mount and waits until its mount process has flushed
// buffered writes and exited (found through the volume's session list: same host and
// mountpoint). As root it calls umount2(2); other users go through fusermount3.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <thread>
#include <vector>

#include "cli/cli.h"
#include "kv/engine.h"
#include "meta/meta.h"

namespace sluice::cli {

namespace {

constexpr auto kExitWait = std::chrono::seconds(120);
constexpr auto kPoll = std::chrono::milliseconds(50);

struct UmountArgs {
  std::string mountpoint;
  bool force = false;
};

// Running, not a zombie waiting for its parent (or init) to reap it.
bool alive(pid_t pid) {
  if (kill(pid, 0) != 0 && errno != EPERM) return false;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');  // the command name may contain spaces
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

// The resolved path; a dead FUSE mount cannot be resolved (ENOTCONN), so then the path
// is only made absolute.
std::string resolve(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) != nullptr) return buf;
  std::string abs = path;
  if (abs.empty() || abs[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) != nullptr) abs = std::string(cwd) + "/" + abs;
  }
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  return abs;
}

// The pid of the live mount process serving `path` on this host, or 0 if unknown.
pid_t find_mount_process(const MountEntry& m, const std::string& path) {
  auto engine = kv::open_engine(m.meta_url(), false);
  if (!engine.ok()) return 0;
  auto meta = meta::Meta::open(*engine);
  if (!meta.ok()) return 0;
  auto sessions = (*meta)->list_sessions();
  if (!sessions.ok()) return 0;
  char host[HOST_NAME_MAX + 1] = {};
  gethostname(host, sizeof host - 1);
  pid_t best = 0;
  int64_t newest = INT64_MIN;
  for (const meta::SessionInfo& s : *sessions) {
    pid_t pid = static_cast<pid_t>(s.pid);
    if (s.hostname == host && s.mountpoint == path && s.started_ns > newest && alive(pid)) {
      best = pid;
      newest = s.started_ns;
    }
  }
  return best;
}

// fusermount3 -u [-z] PATH; its first line of output explains a failure.
Status fusermount(const std::string& path, bool lazy) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return errno_error(errno, "pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
  std::vector<std::string> words = {"fusermount3", "-u"};
  if (lazy) words.push_back("-z");
  words.push_back(path);
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int err = posix_spawnp(&pid, "fusermount3", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (err != 0) {
    ::close(fds[0]);
    return errno_error(err, "cannot run fusermount3");
  }
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::OK();
  std::string msg = out.substr(0, out.find('\n'));
  if (msg.find("busy") != std::string::npos) {
    return Status(Code::kBusy, path + " is busy: files are open there (close them, or use "
                                      "--force to detach it now)");
  }
  return Status(Code::kIO, "cannot unmount " + path + ": " +
                               (msg.empty() ? "fusermount3 failed" : msg));
}

Status unmount(const std::string& path, bool force) {
  if (geteuid() != 0) return fusermount(path, force);
  if (umount2(path.c_str(), force ? MNT_DETACH : 0) == 0) return Status::OK();
  int err = errno;
  if (err == EBUSY) {
    return Status(Code::kBusy, path + " is busy: files are open there (close them, or use "
                                      "--force to detach it now)");
  }
  return errno_error(err, "cannot unmount " + path);
}

Status run_umount(const UmountArgs& a) {
  std::string path = resolve(a.mountpoint);
  auto m = find_mount_at(path);
  if (!m) return Status(Code::kInvalid, path + " is not mounted");
  if (!m->is_sluice()) {
    return Status(Code::kInvalid, path + " is not a Sluice mount (it is " + m->fstype + ")");
  }
  pid_t pid = find_mount_process(*m, path);
  RETURN_IF_ERROR(unmount(path, a.force));

  // Detached (--force) mounts live on until their last file closes: do not wait for them.
  auto deadline = std::chrono::steady_clock::now() + kExitWait;
  while (!a.force && pid != 0 && alive(pid)) {
    waitpid(pid, nullptr, WNOHANG);  // reaps it if it happens to be our child
    if (std::chrono::steady_clock::now() > deadline) {
      return Status(Code::kTimeout,
                    fmt::format("unmounted {}, but its mount process (pid {}) is still "
                                "flushing after {} s", path, pid, kExitWait.count()));
    }
    std::this_thread::sleep_for(kPoll);
  }
  return Status::OK();
}

}  // namespace

Command add_umount(CLI::App& app) {
  auto a = std::make_shared<UmountArgs>();
  CLI::App* sub = add_command(
      app, "umount", "Unmount a volume",
      "Unmount the Sluice mount at MOUNTPOINT and wait (up to 120 s) until its mount "
      "process has flushed buffered writes, closed its session and exited. Fails, without "
      "unmounting, while files are open there unless --force is given. Root unmounts "
      "with umount2(2); other users need fusermount3.",
      "  sluice umount /mnt/models\n"
      "  sluice umount --force /mnt/models");
  sub->add_option("MOUNTPOINT", a->mountpoint, "Where the volume is mounted")->required();
  sub->add_flag("--force", a->force,
                "Detach the mount now even if files are open (lazy unmount); the mount "
                "process exits once the last of them is closed");
  return {sub, [a] { return run_umount(*a); }};
}

}  // namespace sluice::cli
