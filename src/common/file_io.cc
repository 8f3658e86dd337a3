#include "common/file_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

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

bool pwrite_direct(int fd, std::initializer_list<std::string_view> parts, uint64_t off) {
  struct Buf {
    char* p = nullptr;
    size_t cap = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf buf;  // one per writing thread, reused for every write
  size_t total = 0;
  for (std::string_view part : parts) total += part.size();
  const size_t padded = (total + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  if (buf.cap < padded) {
    void* p = nullptr;
    if (posix_memalign(&p, kDirectAlign, padded) != 0) {
      errno = ENOMEM;
      return false;
    }
    std::free(buf.p);
    buf.p = static_cast<char*>(p);
    buf.cap = padded;
  }
  size_t at = 0;
  for (std::string_view part : parts) {
    std::memcpy(buf.p + at, part.data(), part.size());
    at += part.size();
  }
  std::memset(buf.p + total, 0, padded - total);
  size_t done = 0;
  while (done < padded) {
    const ssize_t w = ::pwrite(fd, buf.p + done, padded - done, static_cast<off_t>(off + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
    if (done % kDirectAlign != 0 && done < padded) {  // a short write off the alignment
      errno = EIO;
      return false;
    }
  }
  return true;
}

}  // namespace sluice
