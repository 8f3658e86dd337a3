// Whole local copies of files, for FUSE passthrough (docs/cache.md, "Passthrough").
//
// A FUSE file's pages are cached one at a time and each page fault maps at most the
// kernel's fault-around window, so an mmap load through FUSE pays a page fault per 64 KiB
// (docs/benchmarks.md measured 35 us each on one host: a 1.8 GB/s ceiling). With FUSE
// passthrough (Linux 6.9 and later) the kernel reads and maps a local backing file
// instead, at local-disk speed; that needs the file's bytes whole, at their offsets, in one
// local file. So a mount with passthrough on keeps such copies as raw files of the disk
// cache (cache::DiskCache::raw_begin): made by `warmup` once a file's blocks are cached,
// named by the inode and the attributes its bytes belong to (size, mtime, ctime: a write
// or a truncate changes mtime, and anything that sets mtime changes ctime), so a copy of
// changed bytes is never found again, and evicted with the blocks' LRU.
//
// A copy is built from the file's blocks through a read handle of the mount's own (each
// block verified as a read verifies it), written to a temporary file, synced and renamed
// into place: a copy that exists is complete. It has no checksum of its own.
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

cache::DiskCache* Vfs::copies_disk() {
  if (!opts_.file_copies) return nullptr;
  auto* tiered = dynamic_cast<cache::TieredCache*>(cache_.get());
  return tiered != nullptr ? &tiered->disk() : nullptr;
}

int Vfs::open_copy(Ino ino, const Attr& attr) {
  cache::DiskCache* disk = copies_disk();
  if (disk == nullptr || !attr.is_file() || attr.size == 0 || pending_size(ino) > 0) return -1;
  const int fd = disk->raw_open(copy_key(ino, attr), attr.size);
  if (fd >= 0) stats_.copy_opens++;
  return fd;
}

void Vfs::drop_copy(Ino ino, const Attr& attr) {
  if (cache::DiskCache* disk = copies_disk(); disk != nullptr) disk->erase(copy_key(ino, attr));
}

Status Vfs::make_copy(Ino ino, const std::atomic<bool>* cancel) {
  cache::DiskCache* disk = copies_disk();
  if (disk == nullptr) return Status::OK();
  const Context ctx = Context::root();
  ASSIGN_OR_RETURN(uint64_t fh, open(ctx, ino, O_RDONLY));
  // The attributes after the open: the bytes the handle reads are of this version or
  // newer, and a newer one changes mtime or ctime, so the copy is only ever found stale.
  Status st;
  auto attr = getattr(ctx, ino);
  if (!attr.ok()) {
    st = attr.status();
  } else if (attr->is_file() && attr->size > 0 && pending_size(ino) == 0) {
    const std::string key = copy_key(ino, *attr);
    if (const int fd = disk->raw_open(key, attr->size); fd >= 0) {
      ::close(fd);  // made already
    } else {
      st = write_copy(*disk, key, ino, fh, attr->size, cancel);
    }
  }
  Status rs = release(ino, fh);
  if (st.ok() && !rs.ok()) st = rs;
  return st;
}

Status Vfs::write_copy(cache::DiskCache& disk, const std::string& key, Ino ino, uint64_t fh,
                       uint64_t size, const std::atomic<bool>* cancel) {
  ASSIGN_OR_RETURN(std::string tmp, disk.raw_begin(key, size));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno(errno, "creating " + tmp);
  const Context ctx = Context::root();
  constexpr size_t kStep = 4u << 20;
  auto buf = std::make_unique<char[]>(kStep);
  Status st;
  for (uint64_t off = 0; off < size && st.ok();) {
    if (cancel != nullptr && cancel->load()) {
      st = Status(Code::kInterrupted, "copy of inode " + std::to_string(ino) + " interrupted");
      break;
    }
    auto n = read(ctx, ino, fh, off, buf.get(), std::min<uint64_t>(kStep, size - off));
    if (!n.ok()) {
      st = n.status();
    } else if (*n == 0) {
      st = Status(Code::kIO, "copy of inode " + std::to_string(ino) + ": the file ended early");
    } else if (!pwrite_full(fd, buf.get(), *n, off)) {
      st = Status::FromErrno(errno, "writing " + tmp);
    } else {
      off += *n;
    }
  }
  if (st.ok() && ::fsync(fd) != 0) st = Status::FromErrno(errno, "syncing " + tmp);
  ::close(fd);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (!disk.raw_commit(key, tmp, size)) return Status(Code::kIO, "cannot keep the copy " + key);
  stats_.copies_made++;
  stats_.copy_bytes += size;
  return Status::OK();
}

}  // namespace sluice::vfs
