// mem://NAME engine: an ordered map with optimistic, serializable transactions.
//
// Every committed write stamps its key with a commit sequence number; a delete leaves a
// tombstone carrying its sequence, so a deleted key still conflicts. A transaction
// remembers the sequence it started at, buffers its writes, and records the keys it read
// (misses included) and the key ranges its scans covered. Each read fails with kConflict
// as soon as it meets a key stamped after the start, so a closure only ever sees the
// snapshot it started from; commit repeats that check for everything read, then applies
// the buffer. Tombstones older than every running transaction are pruned now and then.
#include "kv/mem_engine.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace sluice::kv {

namespace {

constexpr size_t kMinPruneTombstones = 4096;

struct Entry {
  std::optional<std::string> value;  // nullopt: a tombstone
  uint64_t seq = 0;                  // the commit that last wrote this key
};

// The data of one NAME, shared by every engine opened with it.
struct Store {
  std::mutex mu;  // guards everything below
  std::map<std::string, Entry, std::less<>> data;
  uint64_t seq = 0;                // the last commit's sequence
  std::multiset<uint64_t> active;  // start sequences of running transactions
  size_t tombstones = 0;
  size_t prune_at = kMinPruneTombstones;

  // Drops tombstones that no running transaction can conflict with.
  void maybe_prune() {
    if (tombstones < prune_at) return;
    uint64_t horizon = active.empty() ? seq : *active.begin();
    for (auto it = data.begin(); it != data.end();) {
      if (!it->second.value && it->second.seq <= horizon) {
        it = data.erase(it);
        tombstones--;
      } else {
        ++it;
      }
    }
    prune_at = std::max(kMinPruneTombstones, 2 * tombstones);
  }
};

std::shared_ptr<Store> store_named(const std::string& name) {
  if (name.empty()) return std::make_shared<Store>();
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<Store>> registry;
  std::lock_guard<std::mutex> g(mu);
  std::erase_if(registry, [](const auto& kv) { return kv.second.expired(); });
  auto& slot = registry[name];
  auto s = slot.lock();
  if (!s) {
    s = std::make_shared<Store>();
    slot = s;
  }
  return s;
}

Status conflict(std::string_view what) {
  return Status(Code::kConflict,
                "mem engine: " + std::string(what) + " changed since the transaction started");
}

class MemTxn final : public Txn {
 public:
  MemTxn(Store& s, uint64_t start, bool read_only) : s_(s), start_(start), read_only_(read_only) {}

  Result<std::optional<std::string>> get(std::string_view key) override {
    if (auto w = writes_.find(key); w != writes_.end()) return w->second;
    std::lock_guard<std::mutex> g(s_.mu);
    reads_.emplace(key);
    auto it = s_.data.find(key);
    if (it == s_.data.end()) return std::optional<std::string>();
    if (it->second.seq > start_) return conflict("a key read");
    return it->second.value;
  }

  // Merges the store with the write buffer (buffered puts and deletes win). The range
  // recorded for validation ends just after the last key returned when `limit` cut the
  // scan short, so later keys do not cause conflicts.
  Result<std::vector<KeyValue>> scan(std::string_view begin, std::string_view end,
                                     size_t limit) override {
    std::vector<KeyValue> out;
    if (!end.empty() && end <= begin) return out;
    auto in_range = [&](const std::string& k) { return end.empty() || k < end; };
    std::lock_guard<std::mutex> g(s_.mu);
    auto it = s_.data.lower_bound(begin);
    auto w = writes_.lower_bound(begin);
    while (limit == 0 || out.size() < limit) {
      bool has_s = it != s_.data.end() && in_range(it->first);
      bool has_w = w != writes_.end() && in_range(w->first);
      if (!has_s && !has_w) break;
      if (has_s && it->second.seq > start_) return conflict("a scanned range");
      if (has_w && (!has_s || w->first <= it->first)) {
        if (has_s && w->first == it->first) ++it;
        if (w->second) out.push_back({w->first, *w->second});
        ++w;
      } else {
        if (it->second.value) out.push_back({it->first, *it->second.value});
        ++it;
      }
    }
    std::string range_end(end);
    if (limit != 0 && out.size() == limit) range_end = out.back().key + '\0';
    ranges_.emplace_back(std::string(begin), std::move(range_end));
    return out;
  }

  Status put(std::string_view key, std::string_view value) override {
    if (read_only_) return Status(Code::kReadOnly, "put in a read-only transaction");
    writes_.insert_or_assign(std::string(key), std::string(value));
    return Status::OK();
  }

  Status del(std::string_view key) override {
    if (read_only_) return Status(Code::kReadOnly, "delete in a read-only transaction");
    writes_.insert_or_assign(std::string(key), std::nullopt);
    return Status::OK();
  }

  // Called with s_.mu held: is everything this transaction read still unchanged?
  Status validate() const {
    for (const auto& k : reads_) {
      auto it = s_.data.find(k);
      if (it != s_.data.end() && it->second.seq > start_) return conflict("a key read");
    }
    for (const auto& [b, e] : ranges_) {
      for (auto it = s_.data.lower_bound(b); it != s_.data.end() && (e.empty() || it->first < e);
           ++it) {
        if (it->second.seq > start_) return conflict("a scanned range");
      }
    }
    return Status::OK();
  }

  // Called with s_.mu held, after validate().
  void apply() {
    if (writes_.empty()) return;
    uint64_t seq = ++s_.seq;
    for (auto& [k, v] : writes_) {
      auto it = s_.data.find(k);
      bool was_live = it != s_.data.end() && it->second.value;
      bool was_tomb = it != s_.data.end() && !it->second.value;
      if (v) {
        s_.data.insert_or_assign(k, Entry{std::move(v), seq});
        if (was_tomb) s_.tombstones--;
      } else if (was_live) {
        it->second = Entry{std::nullopt, seq};
        s_.tombstones++;
      }
    }
    s_.maybe_prune();
  }

 private:
  Store& s_;
  const uint64_t start_;
  const bool read_only_;
  std::map<std::string, std::optional<std::string>, std::less<>> writes_;
  std::set<std::string, std::less<>> reads_;
  std::vector<std::pair<std::string, std::string>> ranges_;  // [begin, end), "" = unbounded
};

class MemEngine final : public Engine {
 public:
  MemEngine(std::string name, std::shared_ptr<Store> store, MemFaults faults, uint64_t seed)
      : name_(std::move(name)), store_(std::move(store)), rng_(seed) {
    set_faults(faults);
  }

  void set_faults(MemFaults f) {
    conflict_rate_.store(f.conflict_rate);
    fail_rate_.store(f.fail_rate);
  }

  std::string describe() const override { return "mem://" + name_; }

 protected:
  Status attempt(const TxnFn& fn, bool read_only) override {
    Store& s = *store_;
    uint64_t start;
    {
      std::lock_guard<std::mutex> g(s.mu);
      start = s.seq;
      s.active.insert(start);
    }
    struct Unregister {
      Store& s;
      uint64_t start;
      ~Unregister() {
        std::lock_guard<std::mutex> g(s.mu);
        s.active.erase(s.active.find(start));
      }
    } unregister{s, start};

    MemTxn txn(s, start, read_only);
    RETURN_IF_ERROR(fn(txn));
    // Reads were checked against the start snapshot as they happened: a read-only
    // transaction has nothing left to do.
    if (read_only) return Status::OK();
    std::lock_guard<std::mutex> g(s.mu);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    if (coin(rng_) < conflict_rate_.load()) return Status(Code::kConflict, "injected conflict");
    if (coin(rng_) < fail_rate_.load()) return Status(Code::kIO, "injected commit failure");
    RETURN_IF_ERROR(txn.validate());
    txn.apply();
    return Status::OK();
  }

 private:
  const std::string name_;
  const std::shared_ptr<Store> store_;
  std::atomic<double> conflict_rate_{0};
  std::atomic<double> fail_rate_{0};
  std::mt19937_64 rng_;  // guarded by store_->mu
};

Result<double> parse_rate(const Url& url, const std::string& key) {
  std::string v = url.param(key, "0");
  char* endp = nullptr;
  double r = std::strtod(v.c_str(), &endp);
  if (v.empty() || *endp != '\0' || !(r >= 0 && r <= 1)) {
    return Status(Code::kInvalid, "mem option " + key + "='" + v + "': expected 0..1");
  }
  return r;
}

}  // namespace

Result<std::shared_ptr<Engine>> open_mem_engine(const Url& url) {
  for (const auto& [k, v] : url.query) {
    if (k != "conflict_rate" && k != "fail_rate" && k != "seed") {
      return Status(Code::kInvalid,
                    "unknown mem option '" + k + "' (supported: conflict_rate, fail_rate, seed)");
    }
  }
  MemFaults faults;
  ASSIGN_OR_RETURN(faults.conflict_rate, parse_rate(url, "conflict_rate"));
  ASSIGN_OR_RETURN(faults.fail_rate, parse_rate(url, "fail_rate"));
  uint64_t seed = std::random_device{}();
  if (std::string v = url.param("seed"); !v.empty()) {
    char* endp = nullptr;
    seed = std::strtoull(v.c_str(), &endp, 10);
    if (*endp != '\0') {
      return Status(Code::kInvalid, "mem option seed='" + v + "': expected an integer");
    }
  }
  return std::shared_ptr<Engine>(
      std::make_shared<MemEngine>(url.body, store_named(url.body), faults, seed));
}

bool set_mem_faults(Engine& engine, MemFaults faults) {
  auto* mem = dynamic_cast<MemEngine*>(&engine);
  if (mem == nullptr) return false;
  mem->set_faults(faults);
  return true;
}

}  // namespace sluice::kv
