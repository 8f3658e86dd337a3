// Where a slice's blocks live in the object store:
//   <volume>/chunks/<id/1000000>/<id/1000>/<id>_<block index>_<block length>
// A slice of `size` bytes is cut into blocks of block_size; the last may be shorter.
#pragma once

#include <cstdint>
#include <string>

namespace sluice::object {

std::string block_key(const std::string& volume, uint64_t slice_id, uint32_t index,
                      uint32_t len);
// Number of blocks and length of block `index` of a slice.
inline uint32_t block_count(uint32_t slice_size, uint32_t block_size) {
  return static_cast<uint32_t>((uint64_t(slice_size) + block_size - 1) / block_size);
}
inline uint32_t block_len(uint32_t slice_size, uint32_t block_size, uint32_t index) {
  uint64_t start = uint64_t(index) * block_size;
  uint64_t end = start + block_size < slice_size ? start + block_size : slice_size;
  return static_cast<uint32_t>(end - start);
}

}  // namespace sluice::object
