// XXH3-64 checksums.
#include "common/hash.h"

#include <xxhash.h>

namespace sluice {

uint64_t checksum64(std::string_view data) { return XXH3_64bits(data.data(), data.size()); }

}  // namespace sluice
