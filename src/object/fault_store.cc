// Fault injection over any store; the spec format is in fault_store.h.
#include "object/fault_store.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>
#include <utility>

namespace sluice::object {

namespace {

constexpr const char* kKnownKeys =
    "error_rate, put_error_rate, get_error_rate, head_error_rate, del_error_rate, "
    "list_error_rate, latency, jitter, bandwidth, truncate_rate, seed, down_file";

// Splits "12.5ms" into its number and its unit; false unless the number is a finite,
// non-negative decimal.
bool split_number(const std::string& v, double& number, std::string& unit) {
  if (v.empty() || !(isdigit(static_cast<unsigned char>(v[0])) || v[0] == '.')) return false;
  char* end = nullptr;
  number = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || !std::isfinite(number) || number < 0) return false;
  unit = end;
  return true;
}

bool parse_rate(const std::string& v, double& out) {
  std::string unit;
  return split_number(v, out, unit) && unit.empty() && out <= 1;
}

bool parse_duration(const std::string& v, int64_t& out) {
  double n = 0;
  std::string unit;
  if (!split_number(v, n, unit)) return false;
  double scale = 0;
  if (unit == "ns") scale = 1;
  if (unit == "us") scale = 1e3;
  if (unit == "ms") scale = 1e6;
  if (unit == "s") scale = 1e9;
  if (scale == 0 || n * scale > 3.6e12) return false;  // at most an hour
  out = static_cast<int64_t>(n * scale);
  return true;
}

bool parse_bytes(const std::string& v, uint64_t& out) {
  double n = 0;
  std::string unit;
  if (!split_number(v, n, unit)) return false;
  static const std::string kUnits = "KMG";
  double scale = 1;
  if (!unit.empty()) {
    size_t p = unit.size() == 1 ? kUnits.find(static_cast<char>(toupper(unit[0]))) : std::string::npos;
    if (p == std::string::npos) return false;
    scale = std::pow(1024.0, static_cast<double>(p + 1));
  }
  if (n * scale >= 1e18) return false;
  out = static_cast<uint64_t>(n * scale);
  return true;
}

bool parse_seed(const std::string& v, uint64_t& out) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 19) {
    return false;
  }
  out = std::stoull(v);
  return true;
}

Status injected(StoreOp op, const std::string& key) {
  return Status(Code::kUnavailable,
                std::string("injected fault (") + store_op_name(op) + " " + key + ")");
}

}  // namespace

const char* store_op_name(StoreOp op) {
  static const char* kNames[kStoreOps] = {"put", "get", "head", "del", "list"};
  return kNames[static_cast<size_t>(op)];
}

Result<FaultSpec> FaultSpec::parse(const std::string& spec) {
  FaultSpec f;
  size_t start = 0;
  while (start < spec.size()) {
    size_t comma = spec.find(',', start);
    std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos
                                                                      : comma - start);
    start = comma == std::string::npos ? spec.size() : comma + 1;
    size_t eq = item.find('=');
    std::string key = item.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    auto bad = [&](const std::string& why) {
      return Status(Code::kInvalid, "invalid fault spec '" + spec + "': " + why);
    };
    if (eq == std::string::npos || key.empty()) return bad("expected key=value, got '" + item + "'");
    bool ok = true;
    bool known = true;
    if (key == "error_rate") {
      double r = 0;
      ok = parse_rate(value, r);
      f.error_rate.fill(r);
    } else if (key.size() > 11 && key.ends_with("_error_rate")) {
      std::string op = key.substr(0, key.size() - 11);
      known = false;
      for (size_t i = 0; i < kStoreOps; i++) {
        if (op == store_op_name(static_cast<StoreOp>(i))) {
          known = true;
          ok = parse_rate(value, f.error_rate[i]);
        }
      }
    } else if (key == "latency") {
      ok = parse_duration(value, f.latency_ns);
    } else if (key == "jitter") {
      ok = parse_duration(value, f.jitter_ns);
    } else if (key == "bandwidth") {
      ok = parse_bytes(value, f.bandwidth);
    } else if (key == "truncate_rate") {
      ok = parse_rate(value, f.truncate_rate);
    } else if (key == "seed") {
      ok = parse_seed(value, f.seed);
    } else if (key == "down_file") {
      ok = !value.empty();
      f.down_file = value;
    } else {
      known = false;
    }
    if (!known) return bad("unknown key '" + key + "' (known: " + kKnownKeys + ")");
    if (!ok) {
      return bad("bad value '" + value + "' for " + key +
                 " (rates are 0..1, durations like 5ms, sizes like 1M, seeds integers)");
    }
  }
  return f;
}

FaultStore::FaultStore(std::shared_ptr<Store> inner, FaultSpec spec, std::string text)
    : StoreWrapper(std::move(inner)), text_(std::move(text)), spec_(std::move(spec)),
      rng_(spec_.seed) {}

std::string FaultStore::describe() const {
  return inner_->describe() + " (fault injection" + (text_.empty() ? "" : ": " + text_) + ")";
}

void FaultStore::set_error_rate(double rate) {
  std::lock_guard lk(mu_);
  spec_.error_rate.fill(rate);
}

bool FaultStore::chance(double p) {
  if (p <= 0) return false;
  std::lock_guard lk(mu_);
  return std::uniform_real_distribution<double>(0, 1)(rng_) < p;
}

uint64_t FaultStore::uniform(uint64_t n) {
  std::lock_guard lk(mu_);
  return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_);
}

Status FaultStore::before(StoreOp op, const std::string& key) {
  int64_t delay = spec_.latency_ns;
  if (spec_.jitter_ns > 0) delay += static_cast<int64_t>(uniform(static_cast<uint64_t>(spec_.jitter_ns)));
  if (delay > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(delay));
  double rate;
  {
    std::lock_guard lk(mu_);
    rate = spec_.error_rate[static_cast<size_t>(op)];
  }
  bool fail = chance(rate) || (!spec_.down_file.empty() && access(spec_.down_file.c_str(), F_OK) == 0);
  if (!fail) return Status::OK();
  errors_++;
  return injected(op, key);
}

void FaultStore::slow_body(size_t bytes) const {
  if (spec_.bandwidth == 0 || bytes == 0) return;
  const double secs = static_cast<double>(bytes) / static_cast<double>(spec_.bandwidth);
  std::this_thread::sleep_for(std::chrono::duration<double>(secs));
}

Status FaultStore::put(const std::string& key, std::string_view data) {
  Status st = before(StoreOp::kPut, key);
  slow_body(data.size());
  if (!st.ok() && chance(0.5)) (void)inner_->put(key, data);  // the response was lost
  if (!st.ok()) return st;
  return inner_->put(key, data);
}

Result<std::string> FaultStore::get(const std::string& key, uint64_t off, int64_t len) {
  RETURN_IF_ERROR(before(StoreOp::kGet, key));
  auto r = inner_->get(key, off, len);
  if (!r.ok()) return r;
  slow_body(r->size());
  if (!r->empty() && chance(spec_.truncate_rate)) {
    r->resize(uniform(r->size()));
    truncations_++;
  }
  return r;
}

Result<ObjectInfo> FaultStore::head(const std::string& key) {
  RETURN_IF_ERROR(before(StoreOp::kHead, key));
  return inner_->head(key);
}

Status FaultStore::del(const std::string& key) {
  RETURN_IF_ERROR(before(StoreOp::kDel, key));
  return inner_->del(key);
}

Result<std::vector<ObjectInfo>> FaultStore::list(const std::string& prefix,
                                                 const std::string& start_after, size_t limit) {
  RETURN_IF_ERROR(before(StoreOp::kList, prefix));
  return inner_->list(prefix, start_after, limit);
}

}  // namespace sluice::object
