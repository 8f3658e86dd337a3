// Checksums used for blocks and cache files (xxHash XXH3, 64-bit).
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice {

uint64_t checksum64(std::string_view data);

// checksum64 of data that comes in pieces: update() with each piece in order, then value()
// equals checksum64 of them all joined.
class Checksum64 {
 public:
  Checksum64();
  ~Checksum64();
  Checksum64(const Checksum64&) = delete;
  Checksum64& operator=(const Checksum64&) = delete;
  void update(std::string_view piece);
  uint64_t value() const;

 private:
  void* state_;  // XXH3_state_t
};

}  // namespace sluice
