// `sluice stats`: a live view of a running mount's activity, one line per interval (like
// vmstat), from the counters its control socket serves (cli/control.h). --json prints
// the raw counters once.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/control.h"

namespace sluice::cli {

namespace {

struct StatsArgs {
  std::string path;
  double interval = 1;
  int count = 0;
  bool json = false;
};

Result<nlohmann::json> snapshot(ControlClient& c) {
  ASSIGN_OR_RETURN(nlohmann::json j, c.call({{"cmd", "stats"}}));
  if (!j.contains("samples") || !j["samples"].is_object()) {
    return Status(Code::kIO, "malformed stats answer from the mount process");
  }
  return j;
}

double value(const nlohmann::json& s, const char* name) {
  auto it = s.find(name);
  return it != s.end() && it->is_number() ? it->get<double>() : 0;
}

Status run_stats(const StatsArgs& a) {
  ASSIGN_OR_RETURN(auto client, ControlClient::connect(a.path));
  ASSIGN_OR_RETURN(nlohmann::json prev, snapshot(*client));
  if (a.json) {
    printf("%s\n", prev.dump(2).c_str());
    return Status::OK();
  }
  const char* header =
      "------usage------ -------fuse------ -------------cache------------- "
      "------------object------------ ---meta--\n"
      "  rss    buffer   read   write       hit%  hits  miss   bytes      "
      "  get   get/s    put   put/s     txn/s\n";
  auto mib = [](double b) { return fmt::format("{:.0f}M", b / 1048576); };
  auto rate_mb = [](double b, double s) { return fmt::format("{:.1f}M", b / 1048576 / s); };
  auto prev_t = std::chrono::steady_clock::now();
  for (int row = 0; a.count == 0 || row < a.count; row++) {
    if (row % 20 == 0) fputs(header, stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(a.interval));
    ASSIGN_OR_RETURN(nlohmann::json cur, snapshot(*client));
    const auto now = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(now - prev_t).count();
    prev_t = now;
    const nlohmann::json& c = cur["samples"];
    const nlohmann::json& p = prev["samples"];
    auto d = [&](const char* n) { return value(c, n) - value(p, n); };
    const double hits = d("sluice_cache_hits_total"), miss = d("sluice_cache_misses_total");
    const std::string hit_pct =
        hits + miss > 0 ? fmt::format("{:.1f}", 100 * hits / (hits + miss)) : "-";
    const double txn = d("sluice_meta_txn_total{kind=\"read\"}") +
                       d("sluice_meta_txn_total{kind=\"write\"}");
    fmt::print("{:>6} {:>8} {:>7} {:>7}   {:>7} {:>5.0f} {:>5.0f} {:>7}   {:>6.0f} {:>7} {:>6.0f} "
               "{:>7}   {:>7.0f}\n",
               mib(value(c, "sluice_process_resident_bytes")),
               mib(value(c, "sluice_buffered_bytes")),
               rate_mb(d("sluice_read_bytes_total"), secs),
               rate_mb(d("sluice_write_bytes_total"), secs), hit_pct, hits / secs,
               miss / secs, mib(value(c, "sluice_cache_bytes")),
               d("sluice_object_get_total") / secs,
               rate_mb(d("sluice_object_get_bytes_total"), secs),
               d("sluice_object_put_total") / secs,
               rate_mb(d("sluice_object_put_bytes_total"), secs), txn / secs);
    fflush(stdout);
    prev = std::move(cur);
  }
  return Status::OK();
}

}  // namespace

Command add_stats(CLI::App& app) {
  auto a = std::make_shared<StatsArgs>();
  CLI::App* sub = add_command(
      app, "stats", "Show live statistics of a mount",
      "Print one line per interval with what the mount at MOUNTPOINT (or the mount holding "
      "any path inside it) did in that interval: the mount process's resident memory and "
      "buffered writes; bytes per second read and written through the file system; block "
      "cache hit ratio, hits and misses per second and the bytes it holds; object store "
      "GETs and PUTs per second with their bandwidth; metadata transactions per second. "
      "A header repeats every 20 lines. --json prints every counter once, by its "
      "Prometheus name (the same counters --metrics serves).\n\n"
      "Columns: rss, buffer (MiB); read, write (MiB/s); hit% (of block reads served by the "
      "cache), hits, miss (blocks/s), bytes (MiB cached in memory); get, put (requests/s), "
      "get/s, put/s (MiB/s); txn/s.",
      "  sluice stats /mnt/models\n"
      "  sluice stats /mnt/models --interval 5 --count 12\n"
      "  sluice stats /mnt/models --json");
  sub->add_option("MOUNTPOINT", a->path, "A Sluice mount point, or any path inside one")->required();
  sub->add_option("-i,--interval", a->interval, "Seconds between lines")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  sub->add_option("-c,--count", a->count, "Lines to print, then exit (0: until interrupted)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_flag("--json", a->json, "Print all counters once as JSON and exit");
  return {sub, [a] { return run_stats(*a); }};
}

}  // namespace sluice::cli
