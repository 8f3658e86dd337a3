// XXH3-64 checksums.
#include "common/hash.h"

#include <xxhash.h>

#include <new>

namespace sluice {

uint64_t checksum64(std::string_view data) { return XXH3_64bits(data.data(), data.size()); }

Checksum64::Checksum64() : state_(XXH3_createState()) {
  if (state_ == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}

Checksum64::~Checksum64() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void Checksum64::update(std::string_view piece) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), piece.data(), piece.size());
}

uint64_t Checksum64::value() const {
  return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_));
}

}  // namespace sluice
