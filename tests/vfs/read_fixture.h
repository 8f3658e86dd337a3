// Helpers for read-path tests: a store decorator that counts GETs and the bytes they
// returned, per key, and can slow each GET down so that concurrent readers overlap; and a
// safetensors file builder.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "object/store.h"
#include "vfs/vfs_fixture.h"

namespace sluice::vfs::testing {

class CountingStore : public object::StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override {
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    auto r = StoreWrapper::get(key, off, len);
    std::lock_guard lk(mu_);
    gets_[key]++;
    if (r.ok()) bytes_[key] += r->size();
    return r;
  }
  std::map<std::string, int> gets() {
    std::lock_guard lk(mu_);
    return gets_;
  }
  // Bytes returned by GETs of key, and by all GETs.
  uint64_t bytes(const std::string& key) {
    std::lock_guard lk(mu_);
    auto it = bytes_.find(key);
    return it == bytes_.end() ? 0 : it->second;
  }
  uint64_t total_bytes() {
    std::lock_guard lk(mu_);
    uint64_t n = 0;
    for (const auto& [k, b] : bytes_) n += b;
    return n;
  }
  // The block indexes GET (keys end in "<slice>_<index>_<len>"), and how often each.
  std::map<uint32_t, int> block_gets() {
    std::map<uint32_t, int> out;
    for (const auto& [key, n] : gets()) out[block_index(key)] += n;
    return out;
  }
  static uint32_t block_index(const std::string& key) {
    const std::string last = key.substr(key.rfind('/') + 1);
    const size_t a = last.find('_'), b = last.rfind('_');
    return static_cast<uint32_t>(std::stoul(last.substr(a + 1, b - a - 1)));
  }
  int delay_ms = 0;

 private:
  std::mutex mu_;
  std::map<std::string, int> gets_;
  std::map<std::string, uint64_t> bytes_;
};

// A safetensors file of U8 tensors of the given sizes, in order; returns the file and
// sets `ranges` to each tensor's file range.
inline std::string safetensors_file(const std::vector<uint64_t>& sizes,
                                    std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  std::string h = "{";
  uint64_t at = 0;
  for (size_t i = 0; i < sizes.size(); i++) {
    if (i > 0) h += ",";
    h += "\"t" + std::to_string(i) + "\":{\"dtype\":\"U8\",\"shape\":[" +
         std::to_string(sizes[i]) + "],\"data_offsets\":[" + std::to_string(at) + "," +
         std::to_string(at + sizes[i]) + "]}";
    at += sizes[i];
  }
  h += "}";
  std::string file(8, '\0');
  for (int i = 0; i < 8; i++) file[i] = static_cast<char>(uint64_t(h.size()) >> (8 * i));
  file += h;
  const uint64_t start = file.size();
  ranges.clear();
  at = start;
  for (uint64_t s : sizes) {
    ranges.emplace_back(at, at + s);
    at += s;
  }
  return file + pattern(at - start, 4);
}

}  // namespace sluice::vfs::testing
