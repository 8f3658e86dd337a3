// fuse: the session — mount options, INIT negotiation, the multithreaded loop, signals
// and unmount.
//
// Readiness: the INIT handler only records that the kernel connected; a helper thread
// then stats the mountpoint (answered by the loop once INIT is replied), applies the
// read-ahead size, sets the vfs's page store (notify_store) and calls on_mounted.
// Teardown order: loop exits -> page store stopped (requests served meanwhile if a store
// is under way: it may wait on a read of the kernel's) -> signal handlers removed ->
// unmount -> session destroyed (closing /dev/fuse aborts anything still waiting on the
// kernel) -> helper joined.
#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "fuse/adapter.h"

namespace sluice::fuse {

namespace {

constexpr unsigned kMaxRequest = 1u << 20;  // 1 MiB reads and writes

// libfuse's own messages go to our log; the last error explains a failed mount.
std::mutex g_log_mu;
std::string g_last_error;

void log_sink(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  std::string msg(buf);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (msg.rfind("fuse: ", 0) == 0) msg.erase(0, 6);
  if (level <= FUSE_LOG_ERR) {
    LOG_ERROR("libfuse: {}", msg);
    std::lock_guard<std::mutex> g(g_log_mu);
    g_last_error = msg;
  } else if (level <= FUSE_LOG_INFO) {
    LOG_INFO("libfuse: {}", msg);
  } else {
    spdlog::debug("libfuse: {}", msg);  // request traces (FuseOptions::debug)
  }
}

std::string last_error(const char* fallback) {
  std::lock_guard<std::mutex> g(g_log_mu);
  return g_last_error.empty() ? fallback : g_last_error;
}

// fuse_opt splits -o lists at commas; a backslash escapes ',' and '\'.
std::string escape_opt(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// libfuse splices a message from files (reads served from disk-cache files, page-cache
// stores from them) only through a pipe that holds the whole message, and grows its
// pipe for one as far as the process may: for a 1 MiB read's reply, more than the
// default fs.pipe-max-size (1 MiB) that a process without CAP_SYS_RESOURCE may have.
// The probe finds how far a pipe grows here (2 MiB, else fs.pipe-max-size); replies
// that do not fit are read by op_read itself (a failed read of a cache file is then
// retried verified, not failed), and page-cache stores go in pieces that fit.
size_t probe_splice_pipe() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return 0;
  const size_t want = 2 * kMaxRequest;  // a 1 MiB reply and its header, rounded up
  int got = fcntl(p[0], F_SETPIPE_SZ, static_cast<int>(want));
  const int err = errno;
  if (got < 0) {
    std::ifstream f("/proc/sys/fs/pipe-max-size");
    long max = 0;
    if (f >> max && max > 0) got = fcntl(p[0], F_SETPIPE_SZ, static_cast<int>(max));
  }
  close(p[0]);
  close(p[1]);
  const size_t size = got > 0 ? static_cast<size_t>(got) : 0;
  if (size < want) {
    LOG_INFO(
        "fuse: pipes grow to {} KiB, not {} ({}): reads from disk-cache files that a "
        "pipe cannot hold are copied, not spliced; raise fs.pipe-max-size to {} to "
        "splice them all",
        size >> 10, want >> 10, std::strerror(err), want);
  }
  return size;
}

// The largest piece of a page-cache store from a file that the adapter's pipe holds
// (Adapter::fits_pipe): 1 MiB, halved until it fits; 0 when none of 64 KiB does.
uint64_t store_piece(const Adapter& a) {
  for (uint64_t piece = kMaxRequest; piece >= (64 << 10); piece /= 2) {
    if (a.fits_pipe(piece, 1, 2)) return piece;
  }
  return 0;
}

// Pushes one buffer (bytes in memory, or a range of a file) into the kernel's page cache
// of inode `ino` at `off` (notify_store); libfuse splices a file's bytes where it can.
bool notify_store(fuse_session* se, Ino ino, uint64_t off, const fuse_buf& b) {
  fuse_bufvec bv = FUSE_BUFVEC_INIT(b.size);
  bv.buf[0] = b;
  return fuse_lowlevel_notify_store(se, ino, static_cast<off_t>(off), &bv,
                                    fuse_buf_copy_flags(0)) == 0;
}

void op_init(void* userdata, fuse_conn_info* conn) {
  Adapter& a = *static_cast<Adapter*>(userdata);
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_ASYNC_READ);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  want(FUSE_CAP_SPLICE_WRITE);
  want(FUSE_CAP_SPLICE_MOVE);
  want(FUSE_CAP_FLOCK_LOCKS);
  want(FUSE_CAP_POSIX_LOCKS);
  want(FUSE_CAP_DONT_MASK);  // meta applies the caller's umask
  // The kernel clears suid/sgid itself (by a setattr) and truncates by setattr after an
  // open, so that meta sees each as the attribute change it is. Requests reach us in
  // memory: splicing them in would only add a copy.
  conn->want &= ~(FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_SPLICE_READ);
  // Passthrough (passthrough.cc adds it to the INIT reply): the kernel takes it only
  // without the writeback cache, and registering a backing file needs CAP_SYS_ADMIN, so
  // a mount not run as root does not ask for it.
  if (!a.opts.passthrough || a.opts.writeback || geteuid() != 0) a.init_unique = 0;
  if (a.opts.passthrough && a.opts.writeback) {
    LOG_WARN("fuse: passthrough off: the kernel does not take it with --writeback");
  } else if (a.opts.passthrough && geteuid() != 0) {
    LOG_WARN("fuse: passthrough off: it needs a mount run as root (CAP_SYS_ADMIN)");
  }
  if (a.opts.writeback) {
    want(FUSE_CAP_WRITEBACK_CACHE);
  } else {
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  }
  // libfuse sized its buffers for max_write already; never ask for more than they hold.
  conn->max_write = std::min(conn->max_write, kMaxRequest);
  if (a.opts.max_readahead > 0) {
    conn->max_readahead = std::min(conn->max_readahead, a.opts.max_readahead);
  }
  LOG_INFO("fuse: protocol 7.{}, max_write {}, max_readahead {}, capabilities {:#x}",
           conn->proto_minor, conn->max_write, conn->max_readahead, conn->want);
  a.splice_pipe = (conn->want & FUSE_CAP_SPLICE_WRITE) != 0 ? probe_splice_pipe() : 0;
  if (a.on_init) a.on_init();
}

// The kernel can only lower read-ahead in INIT; raising it past its default goes through
// the mount's backing device info (root only).
void apply_readahead(const FuseOptions& o, dev_t dev) {
  if (o.max_readahead == 0) return;
  std::string path = fmt::format("/sys/class/bdi/{}:{}/read_ahead_kb", major(dev), minor(dev));
  std::ofstream f(path);
  f << (o.max_readahead + 1023) / 1024 << "\n";
  f.close();
  if (!f && geteuid() != 0) {
    LOG_INFO("fuse: read-ahead stays at the kernel default: {} needs root", path);
  } else if (!f) {
    LOG_WARN("fuse: cannot set read-ahead through {}", path);
  }
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops = {};
  ops.init = op_init;
  add_entry_ops(ops);
  add_file_ops(ops);
  add_dir_ops(ops);
  add_xattr_ops(ops);
  return ops;
}

sigset_t exit_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

// Serves the session's requests on a thread of its own while `wait` runs (the loop has
// ended), then stops that thread.
void serve_while(fuse_session* se, const std::function<void()>& wait) {
  fuse_session_reset(se);
  auto serve = [](void* arg) -> void* {
    auto* s = static_cast<fuse_session*>(arg);
    fuse_buf buf{};
    while (!fuse_session_exited(s)) {
      const int r = fuse_session_receive_buf(s, &buf);  // cancelled here, in read(2)
      if (r == -EINTR) continue;
      if (r <= 0) break;
      int old = 0;
      pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
      fuse_session_process_buf(s, &buf);
      pthread_setcancelstate(old, nullptr);
    }
    std::free(buf.mem);
    return nullptr;
  };
  pthread_t t;
  const bool started = pthread_create(&t, nullptr, serve, se) == 0;
  wait();
  fuse_session_exit(se);
  if (started) {
    pthread_cancel(t);
    pthread_join(t, nullptr);
  }
}

}  // namespace

FuseServer::FuseServer(vfs::Vfs& vfs, FuseOptions opts)
    : adapter_(std::make_unique<Adapter>(vfs, std::move(opts))) {}

FuseServer::~FuseServer() = default;

std::map<uint64_t, uint64_t> FuseServer::lookup_counts() const { return adapter_->lookup_counts(); }

Status FuseServer::run(const std::function<void()>& on_mounted) {
  const FuseOptions& o = adapter_->opts;
  fuse_set_log_func(log_sink);

  std::string mount_opts = "fsname=" + escape_opt(o.fsname) + ",subtype=" + escape_opt(o.subtype);
  if (o.allow_other) mount_opts += ",allow_other";
  if (o.read_only) mount_opts += ",ro";
  std::vector<std::string> words = {"sluice", "-o", mount_opts};
  if (o.debug) words.push_back("-d");
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  fuse_lowlevel_ops ops = make_ops();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, adapter_.get());
  fuse_opt_free_args(&args);
  if (se == nullptr) {
    return Status(Code::kInvalid, "cannot start a FUSE session: " + last_error("bad options"));
  }
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return Status(Code::kInternal, "cannot install the FUSE signal handlers");
  }
  if (fuse_session_mount(se, o.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return Status(Code::kIO, "cannot mount at " + o.mountpoint + ": " +
                                 last_error("mount failed (see the log)"));
  }

  if (o.passthrough) {
    adapter_->dev_fd = fuse_session_fd(se);
    if (fuse_session_custom_io(se, passthrough_io(), adapter_->dev_fd) != 0) {
      LOG_WARN("fuse: passthrough off: libfuse took no custom transport");
    }
  }

  std::mutex mu;
  std::condition_variable cv;
  bool connected = false, finished = false;
  adapter_->on_init = [&] {
    std::lock_guard<std::mutex> g(mu);
    connected = true;
    cv.notify_all();
  };

  // Helper and loop workers must not take the exit signals: only this thread waits in
  // the loop where a signal ends it.
  sigset_t sigs = exit_signals(), old;
  pthread_sigmask(SIG_BLOCK, &sigs, &old);
  std::thread ready([&] {
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return connected || finished; });
      if (finished) return;
    }
    struct stat st;
    if (::stat(o.mountpoint.c_str(), &st) != 0) return;  // the session is going away
    apply_readahead(o, st.st_dev);
    {
      // Blocks the vfs fetches for a file loaded whole go to the kernel's page cache
      // (unset once the loop ends, under mu: never set after that).
      std::lock_guard<std::mutex> g(mu);
      if (finished) return;
      // Bytes of disk-cache files are spliced from them, in pieces the pipe holds.
      vfs::Vfs::PageStoreFile from_file;
      if (const uint64_t piece = store_piece(*adapter_); piece > 0) {
        from_file = [se, piece](Ino ino, uint64_t off, int fd, uint64_t fd_off, uint64_t len) {
          for (uint64_t done = 0; done < len; done += piece) {
            fuse_buf b{};
            b.size = std::min(piece, len - done);
            b.flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
            b.fd = fd;
            b.pos = static_cast<off_t>(fd_off + done);
            if (!notify_store(se, ino, off + done, b)) return false;
          }
          return true;
        };
      }
      adapter_->vfs.set_page_store(
          [se](Ino ino, uint64_t off, std::string_view data) {
            fuse_buf b{};
            b.size = data.size();
            b.mem = const_cast<char*>(data.data());
            return notify_store(se, ino, off, b);
          },
          std::move(from_file));
    }
    LOG_INFO("fuse: serving {} at {}", o.fsname, o.mountpoint);
    if (on_mounted) on_mounted();
  });
  pthread_sigmask(SIG_UNBLOCK, &sigs, nullptr);

  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(std::max(1, o.max_threads)));
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  int res = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);

  {
    std::lock_guard<std::mutex> g(mu);
    finished = true;
    cv.notify_all();
  }
  // A page-cache store under way may wait in the kernel on a page locked for a read
  // that no worker takes any more: serve requests until it is done.
  if (!adapter_->vfs.stop_page_store(/*wait=*/false)) {
    serve_while(se, [this] { adapter_->vfs.stop_page_store(/*wait=*/true); });
  }
  fuse_remove_signal_handlers(se);
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  ready.join();
  adapter_->on_init = nullptr;
  LOG_INFO("fuse: unmounted {}", o.mountpoint);

  // A positive result is the signal that ended the loop: a clean unmount.
  if (res < 0) {
    return Status::FromErrno(-res, "FUSE loop failed: " + std::string(strerror(-res)));
  }
  return Status::OK();
}

Status run_fuse(vfs::Vfs& vfs, const FuseOptions& opts, const std::function<void()>& on_mounted) {
  return FuseServer(vfs, opts).run(on_mounted);
}

}  // namespace sluice::fuse
