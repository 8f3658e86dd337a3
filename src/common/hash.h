// Checksums used for blocks and cache files (xxHash XXH3, 64-bit).
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice {

uint64_t checksum64(std::string_view data);

}  // namespace sluice
