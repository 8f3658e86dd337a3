// The mount's metrics collector and the Prometheus HTTP endpoint (cpp-httplib, Debian's
// libcpp-httplib-dev, header-only).
#include "cli/mount_metrics.h"

#include <unistd.h>

#include <fstream>
#include <thread>

#include <httplib.h>

#include "common/clock.h"

namespace sluice::cli {

namespace {

using metrics::Kind;
using metrics::Sample;

uint64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

metrics::Registry::Handle register_mount_metrics(vfs::Vfs& vfs) {
  const int64_t started = now_ns();
  return metrics::Registry::global().add_collector([&vfs, started](std::vector<Sample>& out) {
    auto c = [&out](const char* name, const char* help, uint64_t v) {
      out.push_back({name, help, Kind::kCounter, static_cast<double>(v)});
    };
    auto g = [&out](const char* name, const char* help, double v) {
      out.push_back({name, help, Kind::kGauge, v});
    };
    const vfs::VfsStats& s = vfs.stats();
    c("sluice_read_total", "read() calls served", s.read_ops.load());
    c("sluice_read_bytes_total", "bytes returned by read()", s.read_bytes.load());
    c("sluice_write_total", "write() calls served", s.write_ops.load());
    c("sluice_write_bytes_total", "bytes accepted by write()", s.write_bytes.load());
    c("sluice_object_get_total", "object store GET requests", s.object_gets.load());
    c("sluice_object_get_bytes_total", "bytes fetched from the object store",
      s.object_get_bytes.load());
    c("sluice_object_put_total", "object store PUT requests", s.object_puts.load());
    c("sluice_object_put_bytes_total", "bytes uploaded to the object store",
      s.object_put_bytes.load());
    c("sluice_object_errors_total", "object store requests that failed or returned bad data",
      s.object_errors.load());
    c("sluice_prefetch_issued_total", "blocks a prefetch fetched from the object store",
      s.prefetch_issued.load());
    c("sluice_prefetch_hits_total", "reads served by a prefetched block", s.prefetch_hits.load());
    c("sluice_prefetch_wasted_total", "prefetched blocks evicted unread (approximate)",
      s.prefetch_wasted.load());
    c("sluice_prefetch_over_budget_total", "prefetches skipped because the budget was full",
      s.prefetch_over_budget.load());
    c("sluice_tensor_prefetches_total", "reads that prefetched the rest of a safetensors tensor",
      s.tensor_prefetches.load());
    c("sluice_safetensors_parsed_total", "safetensors headers parsed", s.safetensors_parsed.load());
    c("sluice_ranged_get_total",
      "object store GETs of part of a block (a header and sub-block table, or sub-blocks)",
      s.ranged_gets.load());
    c("sluice_ranged_get_bytes_total", "bytes fetched by ranged GETs", s.ranged_get_bytes.load());
    c("sluice_parted_fetches_total",
      "fetches of a block or of its sub-blocks made as parallel ranged GETs (--get-parts)",
      s.parted_fetches.load());
    c("sluice_part_gets_total", "ranged GETs of those blocks", s.part_gets.load());
    c("sluice_page_store_bytes_total",
      "bytes of whole-file readahead pushed into the kernel's page cache (notify_store)",
      s.page_store_bytes.load());
    c("sluice_page_store_dropped_total",
      "page-cache stores dropped (queue full, file changed, refused by the kernel)",
      s.page_store_dropped.load());
    c("sluice_read_file_bytes_total",
      "read bytes answered with disk-cache files (spliced), not copies in memory",
      s.read_file_bytes.load());
    c("sluice_copies_made_total",
      "whole local copies of files made for passthrough (warmup, --passthrough)",
      s.copies_made.load());
    c("sluice_copy_bytes_total", "bytes of those copies", s.copy_bytes.load());
    c("sluice_copy_opens_total", "read-only opens that found a file's whole copy",
      s.copy_opens.load());
    c("sluice_copy_read_bytes_total", "bytes read through the mount from files' whole copies",
      s.copy_read_bytes.load());
    const cache::CacheStats cs = vfs.block_cache().stats();
    c("sluice_cache_hits_total", "block reads served by the block cache", cs.hits);
    c("sluice_cache_misses_total", "block reads the block cache had to load", cs.misses);
    c("sluice_cache_shared_total", "block misses that waited for a load already running",
      cs.shared);
    c("sluice_cache_evictions_total", "blocks evicted from the block cache", cs.evictions);
    g("sluice_cache_bytes", "bytes held by the block cache", static_cast<double>(cs.bytes));
    g("sluice_cache_blocks", "blocks held by the block cache", static_cast<double>(cs.blocks));
    c("sluice_disk_cache_hits_total", "block loads served by the disk cache", cs.disk_hits);
    c("sluice_disk_cache_misses_total", "block loads the disk cache did not have", cs.disk_misses);
    c("sluice_disk_cache_hit_bytes_total", "bytes read from the disk cache", cs.disk_hit_bytes);
    c("sluice_disk_cache_file_opens_total",
      "disk cache files used as they are, without a check (--verify-cache-checksum): for "
      "reads, and to read their pages ahead",
      cs.disk_file_opens);
    c("sluice_disk_cache_remembered_total",
      "disk cache files trusted without a checksum pass because the mount before this one "
      "verified them and closed cleanly, and they are unchanged since",
      cs.disk_remembered);
    c("sluice_disk_cache_written_bytes_total", "bytes written to the disk cache",
      cs.disk_written_bytes);
    c("sluice_disk_cache_evictions_total", "blocks evicted from the disk cache", cs.disk_evictions);
    c("sluice_disk_cache_errors_total{kind=\"write\"}", "disk cache failures (the cache is "
      "bypassed, reads go on)", cs.disk_write_errors);
    c("sluice_disk_cache_errors_total{kind=\"corrupt\"}", "disk cache failures (the cache is "
      "bypassed, reads go on)", cs.disk_corrupt);
    c("sluice_disk_cache_errors_total{kind=\"dir\"}", "disk cache failures (the cache is "
      "bypassed, reads go on)", cs.disk_dir_errors);
    c("sluice_disk_cache_skipped_total{reason=\"full\"}", "blocks not cached on disk",
      cs.disk_skipped_full);
    c("sluice_disk_cache_skipped_total{reason=\"queue\"}", "blocks not cached on disk",
      cs.disk_dropped);
    c("sluice_disk_cache_requeued_total",
      "blocks dropped from the full write queue, queued again when memory evicted them",
      cs.disk_requeued);
    g("sluice_disk_cache_bytes", "bytes held by the disk cache", static_cast<double>(cs.disk_bytes));
    g("sluice_disk_cache_blocks", "blocks held by the disk cache",
      static_cast<double>(cs.disk_blocks));
    g("sluice_disk_cache_pending_bytes", "bytes queued for writing to the disk cache",
      static_cast<double>(cs.disk_pending_bytes));
    g("sluice_buffered_bytes", "bytes of writes buffered and not yet committed",
      static_cast<double>(vfs.buffered_bytes()));
    const kv::EngineStats& e = vfs.meta().engine().stats();
    c("sluice_meta_txn_total{kind=\"write\"}", "metadata transactions", e.transactions.load());
    c("sluice_meta_txn_total{kind=\"read\"}", "metadata transactions", e.reads.load());
    c("sluice_meta_txn_retries_total", "metadata transaction attempts retried (conflicts, "
      "unavailable engine)", e.retries.load());
    c("sluice_meta_txn_errors_total", "metadata transactions that returned an error (not "
      "found included)", e.failures.load());
    g("sluice_process_resident_bytes", "resident memory of the mount process",
      static_cast<double>(resident_bytes()));
    g("sluice_uptime_seconds", "seconds since the mount started",
      static_cast<double>(now_ns() - started) / 1e9);
  });
}

struct MetricsServer::Impl {
  httplib::Server server;
  std::thread thread;
};

MetricsServer::MetricsServer() : impl_(std::make_unique<Impl>()) {}
MetricsServer::~MetricsServer() { stop(); }

Status MetricsServer::start(const std::string& addr) {
  const size_t colon = addr.rfind(':');
  std::string host = colon == std::string::npos ? "" : addr.substr(0, colon);
  const std::string port_text = colon == std::string::npos ? addr : addr.substr(colon + 1);
  if (host.empty()) host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
    return Status(Code::kInvalid, "invalid --metrics address '" + addr + "' (expected HOST:PORT)");
  }
  // cpp-httplib's default sets SO_REUSEPORT, which would let two mounts share a port
  // silently; SO_REUSEADDR alone still refuses a port in use.
  impl_->server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  impl_->server.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics::prometheus_text(metrics::Registry::global().collect()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  impl_->server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("Sluice metrics: /metrics\n", "text/plain");
  });
  if (port == 0) {
    port_ = impl_->server.bind_to_any_port(host);
  } else {
    port_ = impl_->server.bind_to_port(host, static_cast<int>(port)) ? static_cast<int>(port) : -1;
  }
  if (port_ <= 0) {
    return Status(Code::kInvalid, "cannot serve metrics on " + addr +
                                      ": the address is in use or not local");
  }
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  return Status::OK();
}

void MetricsServer::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace sluice::cli
