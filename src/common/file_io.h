// Positional reads that finish what a short pread leaves (EINTR, partial reads): shared by
// the file object store, the disk cache and the read path's cache-file pieces.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace sluice {

// Reads up to n bytes of fd from offset off into dst; returns the bytes read (fewer only
// where the file ends first), or -1 with errno set.
ssize_t pread_upto(int fd, char* dst, size_t n, uint64_t off);

// Reads exactly n bytes of fd from offset off into dst; false on an error, or with errno
// EIO where the file ends first.
bool pread_full(int fd, char* dst, size_t n, uint64_t off);

}  // namespace sluice
