// `sluice warmup`: fill, evict or check the block cache of a running mount for files and
// whole trees. The command walks the paths on the mount, then hands the inode numbers to
// the mount process over its control socket (cli/control.h), which does the work with
// its own cache and store (vfs/warmup.cc) and streams progress back.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/control.h"

namespace sluice::cli {

namespace {

struct WarmupArgs {
  std::vector<std::string> paths;
  std::string list_file;
  int threads = 16;
  bool evict = false, check = false;
};

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

// Regular files under `path` (itself if it is one), by inode number; symlinks are not
// followed. Inodes are deduplicated (hard links).
Status collect(const std::string& path, dev_t dev, std::set<uint64_t>& inodes) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno_error(errno, "cannot access " + path);
  if (st.st_dev != dev) return Status(Code::kInvalid, path + " is not in the same mount");
  if (S_ISREG(st.st_mode)) {
    inodes.insert(st.st_ino);
    return Status::OK();
  }
  if (!S_ISDIR(st.st_mode)) return Status::OK();
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(
      path, std::filesystem::directory_options::none, ec);
  if (ec) return Status(Code::kIO, "cannot read directory " + path + ": " + ec.message());
  for (; it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return Status(Code::kIO, "walking " + path + ": " + ec.message());
    if (g_interrupted) return Status(Code::kInterrupted, "interrupted");
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == dev) {
      inodes.insert(st.st_ino);
    }
  }
  return Status::OK();
}

std::string rate(uint64_t bytes, double secs) {
  return secs > 0 ? format_size(static_cast<uint64_t>(bytes / secs)) + "/s" : "-";
}

Status run_warmup(WarmupArgs& a) {
  if (!a.list_file.empty()) {
    std::ifstream f;
    std::istream* in = &std::cin;
    if (a.list_file != "-") {
      f.open(a.list_file);
      if (!f) return errno_error(errno, "cannot read " + a.list_file);
      in = &f;
    }
    for (std::string line; std::getline(*in, line);) {
      if (!line.empty()) a.paths.push_back(line);
    }
  }
  if (a.paths.empty()) return Status(Code::kInvalid, "no paths given (PATH... or -f LIST)");
  if (a.evict && a.check) return Status(Code::kInvalid, "--evict and --check exclude each other");

  struct sigaction sa {};
  sa.sa_handler = on_sigint;  // no SA_RESTART: a blocked read returns EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  ASSIGN_OR_RETURN(auto client, ControlClient::connect(a.paths[0]));
  struct stat root {};
  if (::stat(a.paths[0].c_str(), &root) != 0) return errno_error(errno, "cannot access " + a.paths[0]);
  std::set<uint64_t> inodes;
  for (const std::string& p : a.paths) RETURN_IF_ERROR(collect(p, root.st_dev, inodes));

  const char* mode = a.evict ? "evict" : a.check ? "check" : "fill";
  nlohmann::json req = {{"cmd", "warmup"}, {"mode", mode}, {"threads", a.threads},
                        {"inodes", std::vector<uint64_t>(inodes.begin(), inodes.end())}};
  RETURN_IF_ERROR(client->send(req));

  const bool tty = isatty(STDERR_FILENO) != 0;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  nlohmann::json last;
  std::string final_error;
  for (;;) {
    auto r = client->receive(&g_interrupted);
    if (!r.ok()) {
      if (tty) fprintf(stderr, "\r\033[K");
      if (r.status().code() == Code::kInterrupted) {
        uint64_t done = last.is_object() ? last.value("bytes", uint64_t{0}) : 0;
        uint64_t total = last.is_object() ? last.value("total_bytes", uint64_t{0}) : 0;
        fprintf(stderr, "sluice: warmup interrupted after %s of %s\n", format_size(done).c_str(),
                format_size(total).c_str());
        client.reset();  // closing the socket stops the work in the mount
        std::exit(130);
      }
      return r.status();
    }
    const nlohmann::json& msg = *r;
    if (msg.contains("progress")) last = msg["progress"];
    if (msg.value("done", false)) {
      if (msg.contains("error") && msg["error"].is_string()) final_error = msg["error"];
      break;
    }
    if (tty && last.is_object()) {
      const uint64_t bytes = last.value("bytes", uint64_t{0}), total = last.value("total_bytes", uint64_t{0});
      const double secs = elapsed();
      const int pct = total ? static_cast<int>(100.0 * bytes / total) : 0;
      const int bar = pct * 30 / 100;
      std::string eta = "-";
      if (bytes > 0 && total > bytes) {
        eta = fmt::format("{:.0f}s", secs * static_cast<double>(total - bytes) / bytes);
      }
      fprintf(stderr, "\r\033[K%s [%s%s] %3d%% %s/%s, %llu/%llu files, %s, ETA %s", mode,
              std::string(bar, '#').c_str(), std::string(30 - bar, '.').c_str(), pct,
              format_size(bytes).c_str(), format_size(total).c_str(),
              static_cast<unsigned long long>(last.value("files", uint64_t{0})),
              static_cast<unsigned long long>(last.value("total_files", uint64_t{0})),
              rate(bytes, secs).c_str(), eta.c_str());
    }
    if (msg.contains("error") && !msg.contains("progress")) {
      return Status(Code::kInvalid, msg["error"].get<std::string>());
    }
  }
  if (tty) fprintf(stderr, "\r\033[K");
  const double secs = elapsed();
  const uint64_t files = last.value("total_files", uint64_t{0});
  const uint64_t total = last.value("total_bytes", uint64_t{0});
  const uint64_t errors = last.value("errors", uint64_t{0});
  if (a.check) {
    const uint64_t cached = last.value("cached_bytes", uint64_t{0});
    printf("%s of %s cached (%.1f%%) in %llu files\n", format_size(cached).c_str(),
           format_size(total).c_str(), total ? 100.0 * cached / total : 100.0,
           static_cast<unsigned long long>(files));
  } else {
    printf("%s %llu files, %s in %.1f s (%s), %llu errors\n", a.evict ? "evicted" : "warmed up",
           static_cast<unsigned long long>(files), format_size(total).c_str(), secs,
           rate(total, secs).c_str(), static_cast<unsigned long long>(errors));
  }
  fflush(stdout);
  if (!final_error.empty()) {
    return Status(Code::kIO, fmt::format("{} of the blocks failed; the first: {}", errors,
                                         final_error));
  }
  return Status::OK();
}

}  // namespace

Command add_warmup(CLI::App& app) {
  auto a = std::make_shared<WarmupArgs>();
  CLI::App* sub = add_command(
      app, "warmup", "Fill, check or evict the cache of a mount for files and trees",
      "Load the data of the given files, and of every file under the given directories, "
      "into the block cache of the running mount that holds them, so that the first "
      "reads are served from the cache: run it before traffic moves to a new model. "
      "The mount process does the work (with its own cache directories, object store "
      "credentials and bandwidth limits); this command walks the paths, sends the list "
      "and shows progress: a progress bar on a terminal (bytes, files, rate, ETA), one "
      "summary line otherwise. Ctrl-C stops the work in the mount and exits with 130.\n\n"
      "--check reports how much of the data is cached, without loading anything; "
      "--evict drops the files' blocks from every cache tier (e.g. an old model "
      "version). Without a disk cache (--cache-dir) the memory cache is what gets "
      "filled, and it may be smaller than the data. On a mount with --passthrough, "
      "filling writes each file into its whole copy in the disk cache instead of "
      "block files; the kernel then reads the file from the copy directly, any mount "
      "of that cache directory serves reads from it, --check counts it as cached and "
      "--evict drops it.",
      "  sluice warmup /mnt/models/llama-3-8b\n"
      "  sluice warmup -p 32 /mnt/models/llama-3-8b/*.safetensors\n"
      "  find /mnt/models/new -name '*.json' | sluice warmup -f -\n"
      "  sluice warmup --check /mnt/models/llama-3-8b\n"
      "  sluice warmup --evict /mnt/models/llama-2-7b");
  sub->add_option("PATH", a->paths, "Files or directories inside one Sluice mount");
  sub->add_option("-f,--file", a->list_file, "Read more paths from this file, one a line ('-': stdin)");
  sub->add_option("-p,--threads", a->threads, "Blocks worked on in parallel")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  sub->add_flag("--evict", a->evict, "Drop the data from the cache instead of loading it");
  sub->add_flag("--check", a->check, "Only report what fraction of the data is cached");
  return {sub, [a] { return run_warmup(*a); }};
}

}  // namespace sluice::cli
