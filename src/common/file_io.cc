#include "common/file_io.h"

#include <unistd.h>

#include <cerrno>

namespace sluice {

ssize_t pread_upto(int fd, char* dst, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, dst + got, n - got, static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

bool pread_full(int fd, char* dst, size_t n, uint64_t off) {
  const ssize_t r = pread_upto(fd, dst, n, off);
  if (r < 0) return false;
  if (static_cast<size_t>(r) < n) {
    errno = EIO;
    return false;
  }
  return true;
}

bool pwrite_full(int fd, const char* src, size_t n, uint64_t off) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd, src + done, n - done, static_cast<off_t>(off + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(w);
  }
  return true;
}

}  // namespace sluice
