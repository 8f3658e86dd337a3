// Object key layout of data blocks.
#include "object/layout.h"

#include <fmt/format.h>

namespace sluice::object {

std::string block_key(const std::string& volume, uint64_t slice_id, uint32_t index,
                      uint32_t len) {
  return fmt::format("{}/chunks/{}/{}/{}_{}_{}", volume, slice_id / 1000000, slice_id / 1000,
                     slice_id, index, len);
}

}  // namespace sluice::object
