// Fixed-width big-endian encoding, so encoded integers sort like the numbers they hold
// (kv keys scan in numeric order), plus little helpers for packing values.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace sluice {

inline void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }

inline void put_u16(std::string& out, uint16_t v) {
  char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 2);
}

inline void put_u32(std::string& out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; i++) b[i] = static_cast<char>(v >> (24 - 8 * i));
  out.append(b, 4);
}

inline void put_u64(std::string& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; i++) b[i] = static_cast<char>(v >> (56 - 8 * i));
  out.append(b, 8);
}

inline void put_i64(std::string& out, int64_t v) { put_u64(out, static_cast<uint64_t>(v)); }

// Reader over a byte string; every get_* checks bounds and sets ok() false on overrun.
class Decoder {
 public:
  explicit Decoder(std::string_view data) : d_(data) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return d_.size() - pos_; }

  uint8_t get_u8() { return static_cast<uint8_t>(take(1)); }
  uint16_t get_u16() { return static_cast<uint16_t>(take(2)); }
  uint32_t get_u32() { return static_cast<uint32_t>(take(4)); }
  uint64_t get_u64() { return take(8); }
  int64_t get_i64() { return static_cast<int64_t>(take(8)); }
  std::string_view get_bytes(size_t n) {
    if (remaining() < n) {
      ok_ = false;
      return {};
    }
    auto v = d_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::string_view rest() { return get_bytes(remaining()); }

 private:
  uint64_t take(size_t n) {
    if (remaining() < n) {
      ok_ = false;
      pos_ = d_.size();
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = (v << 8) | static_cast<uint8_t>(d_[pos_ + i]);
    pos_ += n;
    return v;
  }
  std::string_view d_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace sluice
