// common/metrics: a process-wide registry of named counters and gauges.
//
// The mount process exports it two ways: in the Prometheus text format over HTTP
// (`sluice mount --metrics ADDR`, see cli/metrics_http.cc) and as a JSON snapshot over the
// control socket, which `sluice stats` turns into per-second rates (cli/control.h).
//
// Names follow Prometheus conventions (`sluice_object_get_bytes_total`); a name may carry
// labels (`sluice_meta_txn_total{kind="read"}`), and samples that share the part before
// '{' share one HELP/TYPE header. Counters are cheap atomics owned by the registry;
// layers that already keep their own statistics (vfs, cache, kv) add a collector that
// reads them at scrape time instead.
//
// Thread-safe: counters may be bumped and collectors added or removed from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::metrics {

enum class Kind { kCounter, kGauge };

struct Sample {
  std::string name;  // with labels, if any
  std::string help;
  Kind kind = Kind::kCounter;
  double value = 0;
};

class Counter {
 public:
  void add(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Appends samples to `out`; called at every scrape, so it must be quick and must not
// call back into the registry.
using Collector = std::function<void(std::vector<Sample>& out)>;

class Registry {
 public:
  // The process-wide registry.
  static Registry& global();

  // The counter named `name`, created on first use; the reference stays valid for the
  // registry's lifetime.
  Counter& counter(const std::string& name, const std::string& help);

  // Keeps a collector registered while the returned handle lives.
  class Handle {
   public:
    Handle() = default;
    Handle(Registry* r, uint64_t id) : r_(r), id_(id) {}
    Handle(Handle&& o) noexcept : r_(o.r_), id_(o.id_) { o.r_ = nullptr; }
    Handle& operator=(Handle&& o) noexcept;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }
    void reset();

   private:
    Registry* r_ = nullptr;
    uint64_t id_ = 0;
  };
  [[nodiscard]] Handle add_collector(Collector c);

  // Every counter and every collector's samples, sorted by name.
  std::vector<Sample> collect() const;

 private:
  void remove_collector(uint64_t id);

  mutable std::mutex mu_;  // guards the maps; collectors run with it held
  std::map<std::string, std::pair<std::string, std::unique_ptr<Counter>>> counters_;
  std::map<uint64_t, Collector> collectors_;
  uint64_t next_id_ = 1;
};

// The metric family of a sample name: the part before '{'.
std::string base_name(const std::string& name);

// The Prometheus text exposition format (version 0.0.4) of `samples`.
std::string prometheus_text(const std::vector<Sample>& samples);

}  // namespace sluice::metrics
