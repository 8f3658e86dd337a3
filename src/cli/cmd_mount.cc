// sluice mount: checks everything that can be checked up front (the volume opens, the
// mountpoint is an empty directory that is not mounted yet, the log is writable), then
// serves the mount (open the volume, start the vfs session, run the FUSE loop, then
// flush and close the session) in the foreground or in a background child.
//
// Background protocol: the parent forks; the child starts a new session, points stdio at
// /dev/null, logs to the log file and serves the mount. Over a pipe it writes "OK\n"
// once the mount serves requests, or one error line if it failed first. The parent exits
// 0 only after "OK"; otherwise it prints the error.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>

#include "cli/cli.h"
#include "cli/control.h"
#include "cli/encryption.h"
#include "cli/mount_metrics.h"
#include "common/clock.h"
#include "common/logging.h"
#include "fuse/fuse_server.h"
#include "kv/engine.h"
#include "meta/meta.h"
#include "object/fault_store.h"
#include "object/store.h"
#include "object/store_options.h"
#include "vfs/vfs.h"

namespace sluice::cli {

namespace {

constexpr int kReadyTimeoutMs = 120'000;

struct MountArgs {
  // As given on the command line.
  std::string meta_url;
  std::string mountpoint;
  bool foreground = false;
  std::string log_file;
  std::string log_level = "info";
  double entry_timeout = 1, attr_timeout = 1, dir_entry_timeout = 1;
  std::string buffer_size = "300M", cache_size = "100G", max_readahead = "1M";
  std::string cache_dir;  // ':'-separated; empty: the default for this user
  double free_space_ratio = 0.1;
  std::string verify_cache_checksum = "once";  // VfsOptions::cache_verify
  bool allow_other = false, read_only = false, writeback = false, nonempty = false;
  bool passthrough = false;
  int max_threads = 16;
  std::string upload_limit = "0", download_limit = "0";
  int max_uploads = 20, io_retries = 10;
  int prefetch = 16;  // blocks fetched in parallel ahead of a stream (VfsOptions::readahead_blocks)
  std::string tensor_prefetch = "256M";
  uint64_t tensor_prefetch_bytes = 0;
  int get_parts = 4;  // VfsOptions::block_get_parts
  std::string inject_faults;  // testing: a FaultStore spec
  std::string metrics_addr;   // --metrics: serve Prometheus metrics here
  std::string rsa_key;        // PEM path of an encrypted volume's RSA key

  // Resolved by the checks before anything is served.
  std::string abs_meta_url;   // local paths made absolute
  std::string abs_mountpoint;  // realpath
  uint64_t buffer_bytes = 0, cache_bytes = 0, readahead_bytes = 0;
  std::vector<std::string> cache_dirs;  // absolute, each with the volume UUID appended
  object::StoreOptions store_opts;
  std::shared_ptr<const object::BlockCipher> cipher;  // unlocked data key, if encrypted
};

std::string hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

// Blocks (4 MiB by default) are allocated and freed at the rate data flows. Above glibc's
// mmap threshold each one is a fresh mmap: page faults and kernel zeroing on every block,
// about a quarter of the mount's CPU on warm reads (measured with perf). A fixed
// threshold above the largest block (16 MiB; glibc allows up to 32 MiB) keeps them in the
// heap, where freed blocks are reused; the trim threshold stops the heap from handing
// memory back and faulting it in again between bursts. The bounds on cached and
// buffered bytes still hold.
//
// One arena for all threads: with an arena per thread (glibc's default, up to 8 per
// core), a block is allocated in its fetching thread's arena and freed in another
// thread's, memory freed into one arena is reused only by the threads allocating from
// it, and each arena's heap grows to its own peak (why secondary arenas' pages still
// fault in again under the trim threshold was not traced into glibc). Measured, cold 1 GiB loads
// through the benchmark's proxy (docs/benchmarks.md, twelfth session): page faults 60,000-64,000
// -> 46,000, mount CPU 2.40-2.63 -> 2.10-2.15 s, peak RSS 252-271 -> 196-197 MiB; shuffled loads,
// with the most threads at work, ran faster too, so the one arena's lock shows no contention. A
// user's MALLOC_ARENA_MAX or glibc.malloc.arena_max tunable wins.
void tune_malloc_for_blocks() {
  if (mallopt(M_MMAP_THRESHOLD, 32 << 20) == 0) LOG_WARN("mount: mallopt failed");
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr &&
      (tunables == nullptr || std::strstr(tunables, "arena_max") == nullptr)) {
    mallopt(M_ARENA_MAX, 1);
  }
}

// Opens the volume, starts the vfs session and serves the mount until it is unmounted
// or the process gets SIGTERM/SIGINT/SIGHUP; then flushes and closes the session.
// ready() is called once, when the mount serves requests.
Status serve_mount(const MountArgs& a, const std::function<void()>& ready) {
  tune_malloc_for_blocks();
  // Every thread started from here on (vfs pools, libfuse workers) inherits a mask without
  // the exit signals; the FUSE loop's thread takes them back (see FuseServer::run).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  ASSIGN_OR_RETURN(auto engine, kv::open_engine(a.abs_meta_url, false));
  ASSIGN_OR_RETURN(std::unique_ptr<meta::Meta> opened, meta::Meta::open(engine));
  std::shared_ptr<meta::Meta> meta = std::move(opened);
  const meta::Format fmt = meta->format();
  ASSIGN_OR_RETURN(auto store, object::open_store_for_mount(fmt.storage, a.store_opts));
  if (!a.inject_faults.empty()) LOG_WARN("injecting object store faults: {}", a.inject_faults);

  vfs::VfsOptions vo;
  vo.cache_dirs = a.cache_dirs;
  vo.cache_size = a.cache_bytes;
  vo.free_space_ratio = a.free_space_ratio;
  vo.cache_verify = a.verify_cache_checksum == "full"   ? cache::CacheVerify::kFull
                    : a.verify_cache_checksum == "none" ? cache::CacheVerify::kNone
                                                        : cache::CacheVerify::kOnce;
  vo.set_memory_budget(a.buffer_bytes);
  LOG_INFO("memory: {} MiB write buffers, {} MiB memory cache, {} MiB disk write queue; "
           "disk cache: {}", vo.buffer_size >> 20, vo.memory_cache_size >> 20,
           vo.disk_write_queue >> 20,
           vo.disk_cache_enabled()
               ? fmt::format("{} GiB in {}", double(vo.cache_size) / double(1ull << 30),
                             fmt::join(vo.cache_dirs, ", "))
               : std::string("off"));
  vo.read_only = a.read_only;
  vo.readahead_blocks = a.prefetch;
  vo.download_threads = std::max(vo.download_threads, a.prefetch);
  vo.tensor_prefetch_bytes = a.tensor_prefetch_bytes;
  vo.block_get_parts = a.get_parts;
  vo.cipher = a.cipher;
  vo.file_copies = a.passthrough && vo.disk_cache_enabled();
  if (a.passthrough && !vo.disk_cache_enabled()) {
    LOG_WARN("--passthrough needs the disk cache (--cache-dir, --cache-size): left off");
  }
  vfs::Vfs vfs(meta, store, vo);

  meta::SessionInfo info;
  info.hostname = hostname();
  info.pid = static_cast<uint32_t>(getpid());
  info.mountpoint = a.abs_mountpoint;
  info.version = SLUICE_VERSION;
  info.started_ns = now_ns();
  RETURN_IF_ERROR(vfs.start(info));
  LOG_INFO("volume '{}' (metadata {}, storage {}): session {} on {} pid {}", fmt.name,
           redact_url(a.abs_meta_url), redact_url(fmt.storage), meta->session_id(),
           info.hostname, info.pid);

  // Statistics for `sluice stats` (the control socket) and --metrics.
  metrics::Registry::Handle exported = register_mount_metrics(vfs);
  MetricsServer metrics_server;
  if (!a.metrics_addr.empty()) {
    if (Status st = metrics_server.start(a.metrics_addr); !st.ok()) {
      (void)vfs.stop();
      return st;
    }
    LOG_INFO("serving metrics on http://{}/metrics", a.metrics_addr);
  }
  ControlServer control(vfs, fmt.name);
  if (Status st = control.start(control_socket_path(a.abs_mountpoint)); !st.ok()) {
    LOG_WARN("no control socket, so 'sluice stats' and 'sluice warmup' cannot reach this "
             "mount: {}", st.message());
  }

  fuse::FuseOptions fo;
  fo.mountpoint = a.abs_mountpoint;
  fo.entry_timeout = a.entry_timeout;
  fo.attr_timeout = a.attr_timeout;
  fo.dir_entry_timeout = a.dir_entry_timeout;
  fo.allow_other = a.allow_other;
  fo.read_only = a.read_only;
  fo.max_threads = a.max_threads;
  fo.max_readahead = static_cast<uint32_t>(std::min<uint64_t>(a.readahead_bytes, UINT32_MAX));
  fo.fsname = kSourcePrefix + redact_url(a.abs_meta_url);
  fo.writeback = a.writeback;
  fo.passthrough = vo.file_copies;
  fo.debug = a.log_level == "debug";
  Status served = fuse::run_fuse(vfs, fo, ready);

  control.stop();
  metrics_server.stop();
  Status stopped = vfs.stop();
  const vfs::VfsStats& st = vfs.stats();
  LOG_INFO(
      "read path: object_gets {} object_get_bytes {} prefetch_issued {} prefetch_hits {} "
      "prefetch_wasted {} prefetch_over_budget {} tensor_prefetches {} "
      "safetensors_parsed {} ranged_gets {} ranged_get_bytes {} parted_fetches {} "
      "part_gets {} page_store_bytes {} page_store_dropped {} read_file_bytes {} "
      "copies_made {} copy_bytes {} copy_opens {} copy_read_bytes {}",
      st.object_gets.load(), st.object_get_bytes.load(), st.prefetch_issued.load(),
      st.prefetch_hits.load(), st.prefetch_wasted.load(), st.prefetch_over_budget.load(),
      st.tensor_prefetches.load(), st.safetensors_parsed.load(), st.ranged_gets.load(),
      st.ranged_get_bytes.load(), st.parted_fetches.load(), st.part_gets.load(),
      st.page_store_bytes.load(), st.page_store_dropped.load(), st.read_file_bytes.load(),
      st.copies_made.load(), st.copy_bytes.load(), st.copy_opens.load(), st.copy_read_bytes.load());
  const cache::CacheStats cs = vfs.block_cache().stats();
  LOG_INFO(
      "block cache: hits {} misses {} shared {} evictions {} disk_hits {} disk_misses {} "
      "disk_written_blocks {} disk_dropped {} disk_requeued {} disk_corrupt {} "
      "disk_file_opens {} disk_remembered {}",
      cs.hits, cs.misses, cs.shared, cs.evictions, cs.disk_hits, cs.disk_misses,
      cs.disk_written_blocks, cs.disk_dropped, cs.disk_requeued, cs.disk_corrupt,
      cs.disk_file_opens, cs.disk_remembered);
  if (!served.ok()) return served;
  if (!stopped.ok()) {
    return Status(stopped.code(), "unmounted, but closing the session failed: " +
                                      stopped.message());
  }
  LOG_INFO("volume '{}' closed", fmt.name);
  return Status::OK();
}

// The volume opens and its store answers. Everything is closed again before a fork.
Result<meta::Format> check_volume(const std::string& url) {
  ASSIGN_OR_RETURN(auto engine, kv::open_engine(url, false));
  ASSIGN_OR_RETURN(auto m, meta::Meta::open(engine));
  meta::Format fmt = m->format();
  ASSIGN_OR_RETURN(auto store, object::open_store(fmt.storage));
  auto head = store->head(fmt.name + "/sluice_format.json");
  if (!head.ok() && !head.status().is(Code::kNotFound)) {
    return Status(head.status().code(), "cannot reach storage " + redact_url(fmt.storage) +
                                            ": " + head.status().message());
  }
  return fmt;
}

bool dir_is_empty(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return false;
  bool empty = true;
  while (dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") {
      empty = false;
      break;
    }
  }
  closedir(d);
  return empty;
}

// Returns the resolved mountpoint.
Result<std::string> check_mountpoint(const std::string& mp, bool nonempty) {
  struct stat st;
  if (::stat(mp.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return Status(Code::kNotFound, "mountpoint " + mp + " does not exist");
    if (err == ENOTCONN) {
      return Status(Code::kBusy, "mountpoint " + mp + " is a dead mount (transport endpoint "
                                 "is not connected): run 'sluice umount " + mp + "' first");
    }
    return errno_error(err, "cannot access mountpoint " + mp);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status(Code::kNotDir, "mountpoint " + mp + " is not a directory");
  }
  char buf[PATH_MAX];
  if (realpath(mp.c_str(), buf) == nullptr) return errno_error(errno, "cannot resolve " + mp);
  std::string path = buf;
  struct stat parent;
  bool other_dev = path != "/" && ::stat((path + "/..").c_str(), &parent) == 0 &&
                   parent.st_dev != st.st_dev;
  auto mounted = find_mount_at(path);
  if (mounted || other_dev) {
    std::string what = mounted && mounted->is_sluice()
                           ? " (by Sluice, " + mounted->source + ")"
                           : mounted ? " (" + mounted->fstype + ")" : "";
    return Status(Code::kBusy, path + " is already a mount point" + what +
                                   "; unmount it first");
  }
  if (!nonempty && !dir_is_empty(path)) {
    return Status(Code::kNotEmpty, "mountpoint " + path +
                                       " is not empty (use --nonempty to mount over its contents)");
  }
  return path;
}

std::string default_log_file() {
  if (geteuid() == 0) return "/var/log/sluice.log";
  return home_dir() + "/.sluice/sluice.log";
}

// Creates the log's directory (one level, for ~/.sluice) and checks the file appends.
Result<std::string> prepare_log(const std::string& given) {
  std::string file = given.empty() ? default_log_file() : given;
  if (file[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) != nullptr) file = std::string(cwd) + "/" + file;
  }
  std::string dir = file.substr(0, file.rfind('/'));
  if (!dir.empty()) ::mkdir(dir.c_str(), 0755);
  int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno_error(errno, "cannot write the log file " + file);
  ::close(fd);
  return file;
}

// The background child: never returns.
[[noreturn]] void child_main(const MountArgs& a, const std::string& log_file, int report_fd) {
  setsid();
  int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO) ::close(null);
  }
  // Hold no descriptor of the caller's (a pipe it reads to EOF would never close).
  if (report_fd > 3) close_range(3, static_cast<unsigned>(report_fd) - 1, 0);
  close_range(static_cast<unsigned>(report_fd) + 1, ~0U, 0);
  if (chdir("/") != 0) _exit(1);

  init_logging(a.log_level, log_file);
  LOG_INFO("sluice {} mounting {} at {} (pid {})", SLUICE_VERSION, redact_url(a.abs_meta_url),
           a.abs_mountpoint, getpid());
  std::atomic<bool> reported{false};
  Status st = serve_mount(a, [&] {
    (void)!write(report_fd, "OK\n", 3);
    ::close(report_fd);
    reported = true;
  });
  if (!st.ok()) {
    LOG_ERROR("mount failed: {}", st.ToString());
    if (!reported) {
      std::string line = st.message() + "\n";
      (void)!write(report_fd, line.data(), line.size());
    }
  }
  spdlog::shutdown();
  _exit(st.ok() ? 0 : 1);
}

// Reads the child's report: "OK", an error line, or nothing (it died).
std::string read_report(int fd, pid_t child) {
  std::string got;
  char buf[512];
  pollfd p{fd, POLLIN, 0};
  while (got.find('\n') == std::string::npos) {
    int r = poll(&p, 1, kReadyTimeoutMs);
    if (r == 0) {
      return fmt::format("the mount process (pid {}) did not become ready within {} s", child,
                         kReadyTimeoutMs / 1000);
    }
    if (r < 0 && errno == EINTR) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got.substr(0, got.find('\n'));
}

Status run_background(const MountArgs& a, const meta::Format& fmt, const std::string& log_file) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return errno_error(errno, "pipe");
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return errno_error(errno, "fork");
  if (pid == 0) {
    ::close(fds[0]);
    child_main(a, log_file, fds[1]);
  }
  ::close(fds[1]);
  std::string report = read_report(fds[0], pid);
  ::close(fds[0]);
  if (report == "OK") {
    printf("mounted volume '%s' at %s (pid %d, log %s)\n", fmt.name.c_str(),
           a.abs_mountpoint.c_str(), pid, log_file.c_str());
    return Status::OK();
  }
  if (report.empty()) {
    int status = 0;
    waitpid(pid, &status, 0);
    return Status(Code::kIO, fmt::format("the mount process exited before the mount was ready "
                                         "(status {}); see {}", status, log_file));
  }
  waitpid(pid, nullptr, WNOHANG);
  return Status(Code::kIO, report);
}

// The cache directories of --cache-dir (or the default one), made absolute, each with
// the volume UUID appended so that several volumes can share a directory.
Result<std::vector<std::string>> resolve_cache_dirs(const std::string& spec,
                                                    const std::string& uuid) {
  std::vector<std::string> dirs;
  std::string list = spec;
  if (list.empty()) {
    const char* home = getenv("HOME");
    list = geteuid() == 0 || home == nullptr ? "/var/cache/sluice"
                                             : std::string(home) + "/.cache/sluice";
  }
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(':', start);
    if (end == std::string::npos) end = list.size();
    std::string d = list.substr(start, end - start);
    start = end + 1;
    if (d.empty()) continue;
    if (d[0] != '/') {
      char cwd[PATH_MAX];
      if (getcwd(cwd, sizeof cwd) == nullptr) return errno_error(errno, "getcwd");
      d = std::string(cwd) + "/" + d;
    }
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    dirs.push_back(d + "/" + uuid);
  }
  if (dirs.empty()) return Status(Code::kInvalid, "--cache-dir names no directory");
  return dirs;
}

Status run_mount(MountArgs& a) {
  ASSIGN_OR_RETURN(a.buffer_bytes, parse_size(a.buffer_size, "--buffer-size"));
  ASSIGN_OR_RETURN(a.cache_bytes, parse_size(a.cache_size, "--cache-size"));
  ASSIGN_OR_RETURN(a.readahead_bytes, parse_size(a.max_readahead, "--max-readahead"));
  ASSIGN_OR_RETURN(a.tensor_prefetch_bytes, parse_size(a.tensor_prefetch, "--tensor-prefetch"));
  ASSIGN_OR_RETURN(a.store_opts.limits.upload_rate, parse_size(a.upload_limit, "--upload-limit"));
  ASSIGN_OR_RETURN(a.store_opts.limits.download_rate,
                   parse_size(a.download_limit, "--download-limit"));
  a.store_opts.limits.max_uploads = a.max_uploads;
  a.store_opts.retry.retries = a.io_retries;
  RETURN_IF_ERROR(object::FaultSpec::parse(a.inject_faults).status());
  a.store_opts.fault_spec = a.inject_faults;
  a.abs_meta_url = absolute_url(a.meta_url);
  ASSIGN_OR_RETURN(meta::Format fmt, check_volume(a.abs_meta_url));
  ASSIGN_OR_RETURN(a.cipher, volume_cipher(fmt, a.rsa_key));
  ASSIGN_OR_RETURN(a.abs_mountpoint, check_mountpoint(a.mountpoint, a.nonempty));
  if (a.cache_bytes > 0) {
    ASSIGN_OR_RETURN(a.cache_dirs, resolve_cache_dirs(a.cache_dir, fmt.uuid));
  }
  if (a.foreground) {
    std::string log_file;
    if (!a.log_file.empty()) {
      ASSIGN_OR_RETURN(log_file, prepare_log(a.log_file));
    }
    init_logging(a.log_level, log_file);
    return serve_mount(a, [&] {
      LOG_INFO("volume '{}' is mounted at {}", fmt.name, a.abs_mountpoint);
    });
  }
  ASSIGN_OR_RETURN(std::string log_file, prepare_log(a.log_file));
  return run_background(a, fmt, log_file);
}

}  // namespace

Command add_mount(CLI::App& app) {
  auto a = std::make_shared<MountArgs>();
  CLI::App* sub = add_command(
      app, "mount", "Mount a volume",
      "Mount the volume whose metadata is at META_URL on MOUNTPOINT. The object store is "
      "the one recorded at format time. Before anything starts, mount checks that the "
      "volume opens, that MOUNTPOINT is an existing, empty directory and that nothing is "
      "mounted there yet; each failure is one line on stderr and exit code 1.\n\n"
      "By default the mount runs in the background: the command returns once the mount "
      "serves requests (exit 0) or reports why it could not (exit 1), and the mount "
      "process logs to --log. With --foreground it logs to stderr (or --log) and runs "
      "until unmounted or interrupted (SIGINT, SIGTERM and SIGHUP unmount cleanly).\n\n"
      "The mount shows in /proc/mounts as type fuse.sluice with source sluice:META_URL "
      "(any password removed). Unmount with 'sluice umount MOUNTPOINT'; buffered writes "
      "are flushed before the mount process exits.\n\n"
      "An encrypted volume (sluice format --encrypt-rsa-key) mounts only with the RSA key "
      "it was formatted with: --encrypt-rsa-key PEM, with the PEM's passphrase in "
      "$SLUICE_RSA_PASSPHRASE. A missing, unreadable or different key, or a wrong "
      "passphrase, fails the mount before it starts; so does a key given for a volume "
      "that is not encrypted.\n\n"
      "Sizes take an optional binary unit suffix: K, M, G, T.",
      "  sluice mount sqlite3:///var/lib/sluice/models.db /mnt/models\n"
      "  sluice mount sqlite3://models.db /mnt/models --foreground --log-level debug\n"
      "  sluice mount sqlite3://models.db /mnt/models --cache-dir /nvme/cache --cache-size 200G");
  sub->add_option("META_URL", a->meta_url, "Metadata engine URL of a formatted volume")
      ->required();
  sub->add_option("MOUNTPOINT", a->mountpoint, "Existing empty directory to mount on")
      ->required();
  sub->add_flag("-f,--foreground", a->foreground,
                "Run in the foreground, logging to stderr unless --log is given");
  sub->add_option("--log", a->log_file,
                  "Log file (default: /var/log/sluice.log as root, else ~/.sluice/sluice.log "
                  "in the background; stderr in the foreground)");
  sub->add_option("--log-level", a->log_level,
                  "Log verbosity: debug (also traces every FUSE request), info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  sub->add_option("--entry-timeout", a->entry_timeout,
                  "Seconds the kernel caches a file name -> inode lookup")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--dir-entry-timeout", a->dir_entry_timeout,
                  "Seconds the kernel caches a directory name -> inode lookup")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--attr-timeout", a->attr_timeout,
                  "Seconds the kernel caches attributes (size, mode, times)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--buffer-size", a->buffer_size,
                  "Memory for data: write buffers, the memory block cache and blocks queued "
                  "for the disk cache (with a disk cache 5/8, 1/4 and 1/8 of it; without, "
                  "half for writes, half for the cache). Writers wait when their share is full")
      ->capture_default_str();
  sub->add_option("--cache-dir", a->cache_dir,
                  "Directories for the disk block cache, separated by ':' (blocks are spread "
                  "over them; each gets a subdirectory named after the volume UUID). "
                  "Default: /var/cache/sluice as root, else ~/.cache/sluice");
  sub->add_option("--cache-size", a->cache_size,
                  "Disk space for cached data blocks over all --cache-dir directories; "
                  "least recently used blocks are evicted beyond it. 0 disables the disk "
                  "cache")
      ->capture_default_str();
  sub->add_option("--free-space-ratio", a->free_space_ratio,
                  "Keep at least this fraction of each cache directory's file system free, "
                  "evicting cached blocks to do so")
      ->check(CLI::Range(0.0, 0.99))
      ->capture_default_str();
  sub->add_option("--verify-cache-checksum", a->verify_cache_checksum,
                  "When reads from the disk cache check a block's checksum: 'full' on every "
                  "read; 'once' the first time this mount reads a cached file (or when it "
                  "wrote it, or when the mount before verified or wrote it, closed cleanly, "
                  "and the file is unchanged since), after which reads take the bytes "
                  "straight from the file (spliced where pipes allow, see docs/cache.md); "
                  "'none' never (only the file's size and trailer are checked). A file "
                  "that fails the check is removed and the block fetched from the store")
      ->check(CLI::IsMember({"full", "once", "none"}))
      ->capture_default_str();
  sub->add_option("--max-readahead", a->max_readahead,
                  "Kernel read-ahead per file: each page fault or read of a file asks "
                  "for this much around it, in requests of up to 1 MiB (raising it past "
                  "the kernel's 128K needs root); 0 keeps the kernel default")
      ->capture_default_str();
  sub->add_option("--prefetch", a->prefetch,
                  "Blocks fetched in parallel ahead of a sequential reader (the window grows "
                  "1, 2, 4, ... up to this); 0 disables readahead")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  sub->add_option("--tensor-prefetch", a->tensor_prefetch,
                  "In a safetensors file, a read inside a tensor prefetches up to this much "
                  "of the rest of the tensor; 0 disables it")
      ->capture_default_str();
  sub->add_option("--get-parts", a->get_parts,
                  "A block a reader is waiting for (a random read, or the rest of the "
                  "tensor a loader is in) is fetched as this many ranged GETs in parallel, "
                  "each at least 512K, so one connection's bandwidth does not bound the "
                  "wait; readahead of sequential streams keeps one GET per block. Volumes "
                  "with compression or encryption always use one. 1 disables it")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  sub->add_option("--max-threads", a->max_threads, "Most threads serving FUSE requests")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  sub->add_flag("--allow-other", a->allow_other,
                "Let users other than the one who mounts access the mount (for non-root "
                "users this needs user_allow_other in /etc/fuse.conf)");
  sub->add_flag("--read-only", a->read_only, "Mount read-only");
  sub->add_flag("--writeback", a->writeback,
                "Let the kernel buffer writes (write-back cache): faster small writes, but "
                "close() no longer means the data reached Sluice");
  sub->add_flag("--passthrough", a->passthrough,
                "Let the kernel read files that `sluice warmup` copied whole to the disk "
                "cache straight from those copies (FUSE passthrough): mmap loads at local-disk "
                "speed. Warmup then fills the disk cache with those copies instead of blocks. "
                "Needs Linux 6.9 or later, root (CAP_SYS_ADMIN), --cache-dir and no "
                "--writeback");
  sub->add_flag("--nonempty", a->nonempty, "Allow mounting over a non-empty directory");
  sub->add_option("--upload-limit", a->upload_limit,
                  "Most bytes per second uploaded to the object store, e.g. 100M (100 MiB/s); "
                  "0 = unlimited")
      ->capture_default_str();
  sub->add_option("--download-limit", a->download_limit,
                  "Most bytes per second downloaded from the object store; 0 = unlimited")
      ->capture_default_str();
  sub->add_option("--max-uploads", a->max_uploads, "Most object uploads in flight at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  sub->add_option("--io-retries", a->io_retries,
                  "Retries of a failed object store request (with exponential backoff, at "
                  "most 60 s in all) before the file operation fails with EIO")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  sub->add_option("--metrics", a->metrics_addr,
                  "Serve metrics in the Prometheus text format at http://ADDR/metrics; ADDR "
                  "is HOST:PORT, e.g. 127.0.0.1:9567 (off by default)");
  sub->add_option("--encrypt-rsa-key", a->rsa_key,
                  "RSA private key (PEM) of an encrypted volume; its passphrase, if any, in "
                  "$SLUICE_RSA_PASSPHRASE");
  // Testing only, so not in --help: see docs/object-store.md.
  sub->add_option("--inject-faults", a->inject_faults, "Object store fault injection spec")
      ->envname("SLUICE_INJECT_FAULTS")
      ->group("");
  return {sub, [a] { return run_mount(*a); }};
}

}  // namespace sluice::cli
