// Safetensors header parsing: see safetensors.h. JSON comes from nlohmann::json, parsed
// without exceptions; every field is type-checked before use.
#include "vfs/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

namespace sluice::vfs {

namespace {

// Bytes per element of the dtypes whose size is whole bytes; 0 for unknown dtypes (their
// shape is still checked, their byte size is not).
uint64_t dtype_size(const std::string& d) {
  static const std::pair<const char*, uint64_t> kSizes[] = {
      {"BOOL", 1}, {"U8", 1},   {"I8", 1},   {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2},  {"BF16", 2}, {"I32", 4},     {"U32", 4},     {"F32", 4},
      {"I64", 8},  {"U64", 8},  {"F64", 8},  {"C64", 8}};
  for (const auto& [name, size] : kSizes) {
    if (d == name) return size;
  }
  return 0;
}

Status invalid(const std::string& why) {
  return Status(Code::kInvalid, "safetensors header: " + why);
}

}  // namespace

const TensorRange* TensorLayout::find(uint64_t off) const {
  auto it = std::upper_bound(tensors.begin(), tensors.end(), off,
                             [](uint64_t o, const TensorRange& t) { return o < t.begin; });
  if (it == tensors.begin()) return nullptr;
  --it;
  return off < it->end ? &*it : nullptr;
}

std::optional<uint64_t> safetensors_header_len(std::string_view first, uint64_t file_size,
                                               uint64_t max_header) {
  if (first.size() < 9) return std::nullopt;
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | static_cast<unsigned char>(first[i]);
  if (n < 2 || n > max_header || n > kMaxSafetensorsHeader || n > file_size - 8 ||
      file_size < 8) {
    return std::nullopt;
  }
  if (first[8] != '{') return std::nullopt;
  return n;
}

Result<TensorLayout> parse_safetensors_header(std::string_view header, uint64_t file_size) {
  if (header.size() > kMaxSafetensorsHeader) return invalid("longer than 100 MiB");
  if (file_size < 8 || header.size() > file_size - 8) return invalid("longer than the file");
  nlohmann::json j = nlohmann::json::parse(header.begin(), header.end(), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid("not valid JSON");
  if (!j.is_object()) return invalid("not a JSON object");

  TensorLayout out;
  out.data_start = 8 + header.size();
  const uint64_t data_len = file_size - out.data_start;
  for (const auto& [name, t] : j.items()) {
    if (name == "__metadata__") {
      if (!t.is_object()) return invalid("__metadata__ is not an object");
      continue;
    }
    if (!t.is_object()) return invalid("entry '" + name + "' is not an object");
    auto dt = t.find("dtype");
    auto sh = t.find("shape");
    auto of = t.find("data_offsets");
    if (dt == t.end() || !dt->is_string()) return invalid("'" + name + "' has no dtype");
    if (sh == t.end() || !sh->is_array()) return invalid("'" + name + "' has no shape");
    if (of == t.end() || !of->is_array() || of->size() != 2 || !(*of)[0].is_number_unsigned() ||
        !(*of)[1].is_number_unsigned()) {
      return invalid("'" + name + "' has no data_offsets pair");
    }
    const uint64_t b = (*of)[0].get<uint64_t>(), e = (*of)[1].get<uint64_t>();
    if (b > e || e > data_len) {
      return invalid("'" + name + "' has offsets [" + std::to_string(b) + ", " +
                     std::to_string(e) + ") outside the " + std::to_string(data_len) +
                     " data bytes");
    }
    // Element count, refusing overflow: a shape cannot describe more elements than the
    // data has bits (dtypes narrower than a byte exist).
    const uint64_t max_count = data_len > UINT64_MAX / 8 ? UINT64_MAX : data_len * 8;
    uint64_t count = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) return invalid("'" + name + "' has a bad shape");
      const uint64_t v = d.get<uint64_t>();
      if (v != 0 && count > max_count / v) return invalid("'" + name + "' has a huge shape");
      count *= v;
    }
    const uint64_t es = dtype_size(dt->get<std::string>());
    if (es != 0 && (count > UINT64_MAX / es || count * es != e - b)) {
      return invalid("'" + name + "' has " + std::to_string(e - b) +
                     " bytes, its shape and dtype say otherwise");
    }
    if (e > b) out.tensors.push_back({out.data_start + b, out.data_start + e});
  }
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const TensorRange& x, const TensorRange& y) { return x.begin < y.begin; });
  for (size_t i = 1; i < out.tensors.size(); i++) {
    if (out.tensors[i].begin < out.tensors[i - 1].end) return invalid("tensors overlap");
  }
  return out;
}

}  // namespace sluice::vfs
