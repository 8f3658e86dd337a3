// sluice objbench: measures an object store as Sluice uses it — PUT, GET, HEAD, LIST and
// DELETE of small objects and of block-sized objects, from several threads — and prints
// throughput and latency per operation.
//
// Everything is written under a fresh prefix "__sluice_objbench_<random>/" and deleted at
// the end, also after a failure or Ctrl-C (SIGINT/SIGTERM stop the workers after their
// current request, then the prefix is cleaned up). The first failed request ends the
// benchmark with its error. On a terminal, stderr shows a progress line.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "cli/cli.h"
#include "common/clock.h"
#include "object/store.h"

namespace sluice::cli {

namespace {

struct ObjbenchArgs {
  std::string url;
  std::string block_size = "4M", small_size = "128K";
  int count = 100;
  int threads = 4;
  bool json = false;
};

volatile sig_atomic_t g_interrupted = 0;

void on_signal(int) { g_interrupted = 1; }

// SIGINT and SIGTERM set g_interrupted while an instance lives.
class SignalGuard {
 public:
  SignalGuard() {
    g_interrupted = 0;
    struct sigaction sa = {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

 private:
  struct sigaction old_int_ = {}, old_term_ = {};
};

// One line of the result table.
struct Row {
  std::string op;
  uint64_t object_size = 0;  // bytes moved per request; 0 for head, list, delete
  size_t objects = 0;
  double seconds = 0;
  std::vector<int64_t> latency_ns;  // sorted

  double ops_per_s() const { return seconds > 0 ? static_cast<double>(objects) / seconds : 0; }
  double mib_per_s() const {
    return ops_per_s() * static_cast<double>(object_size) / (1024.0 * 1024.0);
  }
  double avg_ms() const {
    double sum = 0;
    for (int64_t v : latency_ns) sum += static_cast<double>(v);
    return latency_ns.empty() ? 0 : sum / static_cast<double>(latency_ns.size()) / 1e6;
  }
  double percentile_ms(double q) const {
    if (latency_ns.empty()) return 0;
    auto i = static_cast<size_t>(std::ceil(q * static_cast<double>(latency_ns.size())));
    return static_cast<double>(latency_ns[std::clamp<size_t>(i, 1, latency_ns.size()) - 1]) / 1e6;
  }
};

class Bench {
 public:
  Bench(std::shared_ptr<object::Store> store, const ObjbenchArgs& a, std::string prefix)
      : store_(std::move(store)), a_(a), prefix_(std::move(prefix)),
        progress_(isatty(STDERR_FILENO) != 0) {}

  // Runs fn(0..n-1) on the worker threads and times each call. Stops at the first error
  // or on interrupt.
  Result<Row> phase(const std::string& op, uint64_t object_size, size_t n,
                    const std::function<Status(size_t)>& fn);

  std::string key(const char* kind, size_t i) const {
    return fmt::format("{}{}/{:08}", prefix_, kind, i);
  }
  object::Store& store() { return *store_; }
  const std::string& prefix() const { return prefix_; }

  // Deletes whatever is left under the prefix; returns how many objects it removed.
  Result<size_t> cleanup();

 private:
  std::shared_ptr<object::Store> store_;
  const ObjbenchArgs& a_;
  const std::string prefix_;
  const bool progress_;
};

Result<Row> Bench::phase(const std::string& op, uint64_t object_size, size_t n,
                         const std::function<Status(size_t)>& fn) {
  Row row{op, object_size, n, 0, std::vector<int64_t>(n)};
  std::atomic<size_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::mutex mu;  // guards first_error, running
  std::condition_variable cv;
  Status first_error;
  int running = a_.threads;
  auto worker = [&] {
    while (!failed && !g_interrupted) {
      const size_t i = next++;
      if (i >= n) break;
      const int64_t t0 = mono_ns();
      Status st = fn(i);
      row.latency_ns[i] = mono_ns() - t0;
      if (!st.ok()) {
        std::lock_guard lk(mu);
        if (first_error.ok()) first_error = st;
        failed = true;
        break;
      }
      done++;
    }
    std::lock_guard lk(mu);
    if (--running == 0) cv.notify_all();
  };
  const int64_t start = mono_ns();
  std::vector<std::thread> threads;
  for (int t = 0; t < a_.threads; t++) threads.emplace_back(worker);
  {
    std::unique_lock lk(mu);
    while (!cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return running == 0; })) {
      if (progress_) fprintf(stderr, "\r%-8s %s %zu/%zu", op.c_str(),
                             object_size ? format_size(object_size).c_str() : "", done.load(), n);
    }
  }
  row.seconds = static_cast<double>(mono_ns() - start) / 1e9;
  for (std::thread& t : threads) t.join();
  if (progress_) fprintf(stderr, "\r\033[K");
  if (!first_error.ok()) return first_error;
  if (g_interrupted) return Status(Code::kInterrupted, "interrupted");
  std::sort(row.latency_ns.begin(), row.latency_ns.end());
  return row;
}

Result<size_t> Bench::cleanup() {
  ASSIGN_OR_RETURN(auto left, store_->list(prefix_, "", 0));
  for (const object::ObjectInfo& o : left) RETURN_IF_ERROR(store_->del(o.key));
  return left.size();
}

std::string random_bytes(size_t n) {
  std::mt19937_64 rng{std::random_device{}()};
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

Status expect_size(const std::string& key, uint64_t got, uint64_t want) {
  if (got == want) return Status::OK();
  return Status(Code::kCorruption,
                fmt::format("{} has {} bytes, {} were written", key, got, want));
}

// The benchmark proper: every phase in order, the rows of the table.
Result<std::vector<Row>> run_phases(Bench& b, uint64_t small, uint64_t block, size_t count) {
  const std::string small_data = random_bytes(small), block_data = random_bytes(block);
  object::Store& s = b.store();
  std::vector<Row> rows;
  auto add = [&](Result<Row> r) -> Status {
    if (!r.ok()) return r.status();
    rows.push_back(std::move(r).value());
    return Status::OK();
  };
  auto with_key = [](const std::string& op, const std::string& key, Status st) {
    if (st.ok()) return st;
    return Status(st.code(), op + " " + key + ": " + st.message());
  };
  for (const auto& [kind, data] : {std::pair<const char*, const std::string*>{"small", &small_data},
                                   {"block", &block_data}}) {
    RETURN_IF_ERROR(add(b.phase("put", data->size(), count, [&, kind = kind, data = data](size_t i) {
      return with_key("put", b.key(kind, i), s.put(b.key(kind, i), *data));
    })));
    RETURN_IF_ERROR(add(b.phase("get", data->size(), count, [&, kind = kind, data = data](size_t i) {
      const std::string k = b.key(kind, i);
      auto r = s.get(k);
      return with_key("get", k, r.ok() ? expect_size(k, r->size(), data->size()) : r.status());
    })));
  }
  RETURN_IF_ERROR(add(b.phase("head", 0, 2 * count, [&](size_t i) {
    const std::string k = i < count ? b.key("small", i) : b.key("block", i - count);
    auto r = s.head(k);
    return with_key("head", k, r.ok() ? expect_size(k, r->size, i < count ? small : block)
                                      : r.status());
  })));
  const size_t lists = std::max<size_t>(1, count / 10);
  RETURN_IF_ERROR(add(b.phase("list", 0, lists, [&](size_t) {
    const std::string p = b.prefix() + "small/";
    auto r = s.list(p, "", 1000);
    if (!r.ok()) return with_key("list", p, r.status());
    if (r->size() == std::min<size_t>(count, 1000)) return Status::OK();
    return Status(Code::kIO, fmt::format("list {}: {} objects, {} were written", p, r->size(),
                                         count));
  })));
  RETURN_IF_ERROR(add(b.phase("delete", 0, 2 * count, [&](size_t i) {
    const std::string k = i < count ? b.key("small", i) : b.key("block", i - count);
    return with_key("delete", k, s.del(k));
  })));
  return rows;
}

void print_table(const std::vector<Row>& rows) {
  printf("%-9s %-9s %8s %10s %10s %9s %9s %9s\n", "OPERATION", "SIZE", "OBJECTS", "MiB/s",
         "ops/s", "avg ms", "p50 ms", "p99 ms");
  for (const Row& r : rows) {
    std::string size = r.object_size ? format_size(r.object_size) : "-";
    std::string mib = r.object_size ? fmt::format("{:.1f}", r.mib_per_s()) : "-";
    printf("%-9s %-9s %8zu %10s %10.1f %9.2f %9.2f %9.2f\n", r.op.c_str(), size.c_str(),
           r.objects, mib.c_str(), r.ops_per_s(), r.avg_ms(), r.percentile_ms(0.5),
           r.percentile_ms(0.99));
  }
}

void print_json(const std::string& storage, const std::string& prefix, int threads,
                const std::vector<Row>& rows) {
  nlohmann::json out = {{"storage", storage}, {"prefix", prefix}, {"threads", threads}};
  out["results"] = nlohmann::json::array();
  for (const Row& r : rows) {
    out["results"].push_back({{"operation", r.op},
                              {"object_size", r.object_size},
                              {"objects", r.objects},
                              {"seconds", r.seconds},
                              {"mib_per_s", r.mib_per_s()},
                              {"ops_per_s", r.ops_per_s()},
                              {"avg_ms", r.avg_ms()},
                              {"p50_ms", r.percentile_ms(0.5)},
                              {"p99_ms", r.percentile_ms(0.99)}});
  }
  printf("%s\n", out.dump(2).c_str());
}

Status run_objbench(const ObjbenchArgs& a) {
  ASSIGN_OR_RETURN(uint64_t block, parse_size(a.block_size, "--block-size"));
  ASSIGN_OR_RETURN(uint64_t small, parse_size(a.small_size, "--small-size"));
  if (block == 0 || small == 0 || block > (1ull << 30) || small > (1ull << 30)) {
    return Status(Code::kInvalid, "--block-size and --small-size must be between 1 byte and 1G");
  }
  const std::string url = absolute_url(a.url);
  ASSIGN_OR_RETURN(auto store, object::open_store(url));
  std::mt19937_64 rng{std::random_device{}()};
  const std::string prefix = fmt::format("__sluice_objbench_{:08x}/", rng() & 0xffffffffu);
  const std::string where = redact_url(store->describe());
  if (!a.json) {
    printf("objbench %s: %d objects of %s and of %s, %d threads, under %s\n", where.c_str(),
           a.count, format_size(small).c_str(), format_size(block).c_str(), a.threads,
           prefix.c_str());
    fflush(stdout);
  }
  Bench bench(store, a, prefix);
  Result<std::vector<Row>> rows = Status(Code::kInternal, "not run");
  {
    SignalGuard guard;
    rows = run_phases(bench, small, block, static_cast<size_t>(a.count));
  }
  auto removed = bench.cleanup();
  if (!removed.ok()) {
    return Status(removed.status().code(),
                  (rows.ok() ? std::string() : rows.status().message() + "; ") +
                      "cleaning up " + prefix + " failed: " + removed.status().message());
  }
  if (!rows.ok()) {
    return Status(rows.status().code(), fmt::format("objbench: {} (removed the {} objects it "
                                                    "had written under {})",
                                                    rows.status().message(), *removed, prefix));
  }
  if (a.json) {
    print_json(where, prefix, a.threads, *rows);
  } else {
    print_table(*rows);
  }
  return Status::OK();
}

}  // namespace

Command add_objbench(CLI::App& app) {
  auto a = std::make_shared<ObjbenchArgs>();
  CLI::App* sub = add_command(
      app, "objbench", "Measure an object store's throughput and latency",
      "Measure the object store at STORAGE_URL as a mount would use it: PUT and GET of "
      "--count small objects and --count block-sized objects, HEAD of each, LIST of the "
      "small ones (one request per 10 objects) and DELETE of all, each phase spread over "
      "--threads threads. Prints one row per operation: objects, MiB/s, requests per "
      "second and the average, median and 99th percentile latency.\n\n"
      "Objects are written under a fresh prefix __sluice_objbench_<random>/ and removed at "
      "the end, also after a failure or Ctrl-C. The first failed request ends the run with "
      "its error (exit code 1). Sizes take an optional binary unit suffix: K, M, G.",
      "  sluice objbench file:///data/objects\n"
      "  sluice objbench s3://s3.example.com/models --threads 16 --count 200\n"
      "  sluice objbench file:///tmp/o --block-size 1M --small-size 4K --json");
  sub->add_option("STORAGE_URL", a->url, "Object store URL, as given to 'sluice format --storage'")
      ->required();
  sub->add_option("--block-size", a->block_size, "Size of the large objects (a data block)")
      ->capture_default_str();
  sub->add_option("--small-size", a->small_size, "Size of the small objects")
      ->capture_default_str();
  sub->add_option("--count", a->count, "Objects of each size")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  sub->add_option("--threads", a->threads, "Concurrent requests")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  sub->add_flag("--json", a->json, "Print JSON instead of a table");
  return {sub, [a] { return run_objbench(*a); }};
}

}  // namespace sluice::cli
