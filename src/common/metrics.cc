// The metrics registry and its Prometheus text rendering.
#include "common/metrics.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace sluice::metrics {

std::string base_name(const std::string& name) { return name.substr(0, name.find('{')); }

Registry& Registry::global() {
  static Registry r;
  return r;
}

Counter& Registry::counter(const std::string& name, const std::string& help) {
  std::lock_guard lk(mu_);
  auto& slot = counters_[name];
  if (!slot.second) slot = {help, std::make_unique<Counter>()};
  return *slot.second;
}

Registry::Handle& Registry::Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    r_ = o.r_;
    id_ = o.id_;
    o.r_ = nullptr;
  }
  return *this;
}

void Registry::Handle::reset() {
  if (r_ != nullptr) r_->remove_collector(id_);
  r_ = nullptr;
}

Registry::Handle Registry::add_collector(Collector c) {
  std::lock_guard lk(mu_);
  uint64_t id = next_id_++;
  collectors_.emplace(id, std::move(c));
  return Handle(this, id);
}

void Registry::remove_collector(uint64_t id) {
  std::lock_guard lk(mu_);
  collectors_.erase(id);
}

std::vector<Sample> Registry::collect() const {
  std::vector<Sample> out;
  {
    std::lock_guard lk(mu_);
    for (const auto& [name, slot] : counters_) {
      out.push_back({name, slot.first, Kind::kCounter, static_cast<double>(slot.second->value())});
    }
    for (const auto& [id, c] : collectors_) c(out);
  }
  // By family first, so that the samples of one family stay together.
  std::stable_sort(out.begin(), out.end(), [](const Sample& a, const Sample& b) {
    return std::make_pair(base_name(a.name), a.name) < std::make_pair(base_name(b.name), b.name);
  });
  return out;
}

namespace {

// HELP text escapes backslash and newline (exposition format 0.0.4).
std::string escape_help(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.0f}", v);
  return fmt::format("{}", v);
}

}  // namespace

std::string prometheus_text(const std::vector<Sample>& samples) {
  std::string out;
  std::string last;
  for (const Sample& s : samples) {
    std::string base = base_name(s.name);
    if (base != last) {
      out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", base, escape_help(s.help), base,
                         s.kind == Kind::kCounter ? "counter" : "gauge");
      last = base;
    }
    out += s.name + " " + format_value(s.value) + "\n";
  }
  return out;
}

}  // namespace sluice::metrics
