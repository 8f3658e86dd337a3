// Positional reads and writes that finish what a short pread or pwrite leaves (EINTR,
// partial transfers): shared by the file object store, the disk cache, the read path's
// cache-file pieces and the vfs's whole-file copies.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace sluice {

// Reads up to n bytes of fd from offset off into dst; returns the bytes read (fewer only
// where the file ends first), or -1 with errno set.
ssize_t pread_upto(int fd, char* dst, size_t n, uint64_t off);

// Reads exactly n bytes of fd from offset off into dst; false on an error, or with errno
// EIO where the file ends first.
bool pread_full(int fd, char* dst, size_t n, uint64_t off);

// Writes exactly n bytes of src to fd at offset off; false with errno set on an error.
bool pwrite_full(int fd, const char* src, size_t n, uint64_t off);

// The alignment of O_DIRECT writes here: covers 512-byte and 4 KiB logical blocks.
constexpr size_t kDirectAlign = 4096;
// Writes the concatenation of `parts` at `off` (a multiple of kDirectAlign) of fd, opened
// with O_DIRECT, through a page-aligned buffer of the calling thread (reused), zero-padded
// to whole pages past its end: the caller truncates the file to its size. The copy into
// the buffer costs a fraction of the kernel's copy into the page cache. False with errno
// set on an error (EINVAL: the file system takes no O_DIRECT).
bool pwrite_direct(int fd, std::initializer_list<std::string_view> parts, uint64_t off);

}  // namespace sluice
