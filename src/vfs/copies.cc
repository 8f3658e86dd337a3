// Whole local copies of files, for FUSE passthrough (docs/cache.md, "Passthrough").
//
// A FUSE file's pages are cached one at a time and each page fault of an mmap load maps at
// most the kernel's fault-around window, so a load through FUSE pays a fault per 64 KiB
// (docs/benchmarks.md measured 35 us each on one host: a 1.8 GB/s ceiling). With FUSE
// passthrough (Linux 6.9 and later) the kernel reads and maps a local backing file
// instead, at local-disk speed; that needs the file's bytes whole, at their offsets, in one
// local file. So a mount with passthrough on keeps such copies as raw files of the disk
// cache (cache::DiskCache::raw_begin), named by the inode and the attributes its bytes
// belong to (size, mtime, ctime: a write or a truncate changes mtime, and anything that
// sets mtime changes ctime), so a copy of changed bytes is never found again; they are
// evicted with the blocks' LRU.
//
// `warmup` fills a file into its copy instead of block files (warmup.cc): each block's
// bytes, verified as every fetched or cached block is, go to their offsets in a sparse
// temporary file (holes stay holes), with O_DIRECT where they are page-aligned; once every
// block is in, the file is synced and renamed into place, so a copy that exists is
// complete. It has no checksum of its own.
//
// Copies are found with or without passthrough, wherever there is a disk cache: a
// read-only open looks its file's copy up (Vfs::open) and keeps it in the handle; reads
// that reach the mount are then served from it (Vfs::read_pieces) until the file changes
// (refresh_locked drops it), and passthrough hands the same file to the kernel
// (open_copy).
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "cache/disk_cache.h"
#include "cache/tiered_cache.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "vfs/internal.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

namespace {

// Raw disk-cache keys of copies; block keys start with the volume's name, never with '~'.
std::string copy_key(Ino ino, const Attr& a) {
  return "~copy/" + std::to_string(ino) + "-" + std::to_string(a.size) + "-" +
         std::to_string(a.mtime_ns) + "-" + std::to_string(a.ctime_ns);
}

}  // namespace

CopyOut::~CopyOut() {
  if (direct_fd >= 0) ::close(direct_fd);
  if (fd < 0) return;
  ::close(fd);
  ::unlink(tmp.c_str());
}

void CopyOut::write(const char* data, size_t len, uint64_t off) {
  // A run at a page boundary that ends on one or at the end of the file goes direct (the
  // zero padding past the end is truncated away in end_copy).
  const bool aligned = off % kDirectAlign == 0 && (len % kDirectAlign == 0 || off + len == size);
  if (aligned && direct_fd >= 0) {
    if (pwrite_direct(direct_fd, {std::string_view(data, len)}, off)) return;
    if (errno != EINVAL) {
      bad = true;
      return;
    }
  }
  if (!pwrite_full(fd, data, len, off)) bad = true;
}

cache::DiskCache* Vfs::copies_disk() {
  auto* tiered = dynamic_cast<cache::TieredCache*>(cache_.get());
  return tiered != nullptr ? &tiered->disk() : nullptr;
}

cache::FileBlock Vfs::find_copy(Ino ino, const Attr& attr) {
  cache::DiskCache* disk = copies_disk();
  if (disk == nullptr || !attr.is_file() || attr.size == 0 || pending_size(ino) > 0) {
    return nullptr;
  }
  const int fd = disk->raw_open(copy_key(ino, attr), attr.size);
  return fd >= 0 ? std::make_shared<const cache::CacheFile>(fd, attr.size) : nullptr;
}

int Vfs::open_copy(Ino ino, uint64_t fh) {
  auto h = file_handle(ino, fh);
  if (!h.ok()) return -1;
  std::lock_guard lk((*h)->mu);
  return (*h)->copy ? ::fcntl((*h)->copy->fd, F_DUPFD_CLOEXEC, 0) : -1;
}

bool Vfs::read_copy(FileHandle& h, uint64_t off, size_t size, ReadData& out) {
  int fd = -1;
  uint64_t from = 0, to = 0;  // the copy's bytes to read ahead
  {
    std::lock_guard lk(h.mu);
    if (!h.copy || !refresh_locked(h).ok() || !h.copy) return false;
    const uint64_t n = off < h.size ? std::min<uint64_t>(size, h.size - off) : 0;
    if (n == 0) return false;
    out.pieces.push_back({nullptr, n, h.copy->fd, off});
    out.files.push_back(h.copy);
    out.size = n;
    // A sequential reader gets the copy's pages read ahead, as far as a stream's blocks
    // are prefetched, half a window at a time: the kernel reads ahead only the copy's
    // read-ahead window (measured, 2 GiB in header order through FUSE from a copy: 3.6 to
    // 4.7 s without, against 1.7 to 2.1 s from block files that are readied ahead).
    const uint64_t end = off + n;
    constexpr uint64_t kNear = 8 << 20;  // concurrent kernel reads arrive out of order
    const bool sequential = off <= h.copy_next + kNear && off + kNear >= h.copy_next;
    h.copy_next = sequential ? std::max(h.copy_next, end) : end;
    if (!sequential) h.copy_ahead = end;
    const uint64_t window = uint64_t(opts_.readahead_blocks) * meta_->format().block_size;
    if (sequential && window > 0 && end + window / 2 > h.copy_ahead) {
      from = std::max(h.copy_ahead, end);
      to = std::min(h.size, end + window);
      h.copy_ahead = std::max(h.copy_ahead, to);
      fd = h.copy->fd;  // held open by out.files
    }
  }
  if (fd >= 0 && to > from) {
    ::posix_fadvise(fd, static_cast<off_t>(from), static_cast<off_t>(to - from),
                    POSIX_FADV_WILLNEED);
  }
  stats_.copy_read_bytes += out.size;
  stats_.read_file_bytes += out.size;
  stats_.read_ops++;
  stats_.read_bytes += out.size;
  return true;
}

void Vfs::drop_copy(Ino ino, const Attr& attr) {
  if (cache::DiskCache* disk = copies_disk(); disk != nullptr) disk->erase(copy_key(ino, attr));
}

std::unique_ptr<CopyOut> Vfs::begin_copy(Ino ino, const Attr& attr) {
  cache::DiskCache* disk = opts_.file_copies ? copies_disk() : nullptr;
  if (disk == nullptr || !attr.is_file() || attr.size == 0 || pending_size(ino) > 0) {
    return nullptr;
  }
  auto c = std::make_unique<CopyOut>();
  c->key = copy_key(ino, attr);
  c->size = attr.size;
  if (find_copy(ino, attr)) return nullptr;  // made already
  auto tmp = disk->raw_begin(c->key, c->size);
  if (!tmp.ok()) {
    LOG_WARN("vfs: no whole copy of inode {}: {}", ino, tmp.status().ToString());
    return nullptr;
  }
  c->tmp = *tmp;
  c->fd = ::open(c->tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (c->fd < 0 || ::ftruncate(c->fd, static_cast<off_t>(c->size)) != 0) {
    LOG_WARN("vfs: no whole copy of inode {}: {}: {}", ino, c->tmp, std::strerror(errno));
    return nullptr;  // ~CopyOut removes what was made
  }
  c->direct_fd = ::open(c->tmp.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);  // -1: all buffered
  return c;
}

bool Vfs::end_copy(CopyOut& c) {
  if (c.fd < 0) return false;
  bool ok = !c.bad.load();
  if (c.direct_fd >= 0) {
    ::close(c.direct_fd);
    c.direct_fd = -1;
  }
  // A direct write of the file's last page wrote zeros past its end.
  if (ok && ::ftruncate(c.fd, static_cast<off_t>(c.size)) != 0) {
    LOG_WARN("vfs: truncating the copy {}: {}", c.tmp, std::strerror(errno));
    ok = false;
  }
  if (ok && ::fsync(c.fd) != 0) {
    LOG_WARN("vfs: syncing the copy {}: {}", c.tmp, std::strerror(errno));
    ok = false;
  }
  ::close(c.fd);
  c.fd = -1;
  if (!ok) {
    ::unlink(c.tmp.c_str());
    return false;
  }
  if (!copies_disk()->raw_commit(c.key, c.tmp, c.size)) return false;
  stats_.copies_made++;
  stats_.copy_bytes += c.size;
  return true;
}

}  // namespace sluice::vfs
