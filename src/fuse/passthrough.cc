// fuse: FUSE passthrough — the kernel reads and maps a local backing file for an open
// FUSE file, without a request to the mount (Linux 6.9 and later; docs/cache.md,
// "Passthrough").
//
// libfuse 3.14 (Debian 12) predates the feature, so the mount adds it around libfuse:
// - INIT: the session's transport is libfuse's custom I/O (read, writev, splice); the read
//   notes whether the kernel's INIT offers FUSE_PASSTHROUGH, and the writev of libfuse's
//   INIT reply adds the flag and a backing stack depth of 1 (the reply has the fields: its
//   layout is the protocol's since 7.23, and the kernel reads them by the flag alone).
// - open: a file whose whole copy the vfs has (Vfs::open_copy) is registered with the
//   kernel (FUSE_DEV_IOC_BACKING_OPEN on /dev/fuse, which needs CAP_SYS_ADMIN) and the open
//   is replied with FOPEN_PASSTHROUGH and the backing id, through fuse_reply_buf, since
//   libfuse's fuse_open_out has no backing id.
// - The kernel keeps one io mode per inode: while a passthrough handle is open, every
//   other open must be passthrough to the same backing file (else the kernel fails it with
//   EIO), and while a cached handle is open no passthrough handle may be opened.
//   Adapter::begin_open picks the mode under those rules: a read-only open joins the
//   backing file, an open for writing is refused with ETXTBSY (as Linux refuses to write
//   a running executable). The backing id is closed with the inode's last passthrough
//   handle.
// The structures and numbers below are the kernel's (include/uapi/linux/fuse.h, 7.40).
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/logging.h"
#include "fuse/adapter.h"

namespace sluice::fuse {

namespace {

constexpr uint32_t kInitExt = 1u << 30;         // FUSE_INIT_EXT: flags2 is valid
constexpr uint32_t kPassthrough2 = 1u << 5;     // FUSE_PASSTHROUGH (1ULL << 37), in flags2
constexpr uint32_t kOpenPassthrough = 1u << 7;  // FOPEN_PASSTHROUGH

struct BackingMap {  // struct fuse_backing_map
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(229, 1, BackingMap);  // FUSE_DEV_IOC_BACKING_OPEN
constexpr unsigned long kBackingClose = _IOW(229, 2, uint32_t);   // FUSE_DEV_IOC_BACKING_CLOSE

struct OpenOut {  // struct fuse_open_out since 7.40
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};

// Offsets in struct fuse_init_out (in and out) and fuse_init_in.
constexpr size_t kInFlags = 12, kInFlags2 = 16;    // fuse_init_in: flags, flags2
constexpr size_t kOutFlags2 = 32, kOutStack = 36;  // fuse_init_out: flags2, max_stack_depth

uint32_t load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void store32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }

ssize_t io_read(int fd, void* buf, size_t len, void* userdata) {
  const ssize_t r = ::read(fd, buf, len);
  const auto* p = static_cast<const char*>(buf);
  if (r >= static_cast<ssize_t>(sizeof(fuse_in_header) + kInFlags2 + 4)) {
    fuse_in_header h;
    std::memcpy(&h, p, sizeof h);
    if (h.opcode == FUSE_INIT) {
      Adapter& a = *static_cast<Adapter*>(userdata);
      const char* in = p + sizeof h;
      const bool offered =
          (load32(in + kInFlags) & kInitExt) != 0 && (load32(in + kInFlags2) & kPassthrough2) != 0;
      a.init_unique = offered ? h.unique : 0;
      if (!offered) LOG_INFO("fuse: the kernel offers no passthrough (Linux 6.9 and later do)");
    }
  }
  return r;
}

ssize_t io_writev(int fd, struct iovec* iov, int count, void* userdata) {
  Adapter& a = *static_cast<Adapter*>(userdata);
  const uint64_t init = a.init_unique.load();
  if (init != 0 && count >= 2 && iov[0].iov_len >= sizeof(fuse_out_header) &&
      iov[1].iov_len >= kOutStack + 4) {
    fuse_out_header h;
    std::memcpy(&h, iov[0].iov_base, sizeof h);
    if (h.unique == init && h.error == 0) {
      char* out = static_cast<char*>(iov[1].iov_base);
      store32(out + kOutFlags2, load32(out + kOutFlags2) | kPassthrough2);
      store32(out + kOutStack, 1);
      a.init_unique = 0;
      a.passthrough = true;
      LOG_INFO("fuse: passthrough on: files with a whole local copy are read by the kernel");
    }
  }
  return ::writev(fd, iov, count);
}

ssize_t io_splice(int fdin, off_t* offin, int fdout, off_t* offout, size_t len, unsigned flags,
                  void*) {
  return ::splice(fdin, offin, fdout, offout, len, flags);
}

}  // namespace

const fuse_custom_io* passthrough_io() {
  static const fuse_custom_io io = {io_writev, io_read, nullptr, io_splice};
  return &io;
}

Adapter::Opening Adapter::begin_open(Ino ino, uint64_t fh, int flags, const Attr* attr) {
  if (!opts.passthrough) return {};
  const bool read_only = (flags & O_ACCMODE) == O_RDONLY && !(flags & O_TRUNC);
  const int fd = passthrough && read_only && attr != nullptr ? vfs.open_copy(ino, fh) : -1;
  const Stamp stamp = attr != nullptr ? Stamp{attr->size, attr->mtime_ns, attr->ctime_ns} : Stamp{};
  Opening o;
  {
    std::lock_guard<std::mutex> g(io_mu_);
    IoState& s = io_[ino];
    if (s.passthrough > 0) {
      // The inode is in passthrough mode, and the kernel takes no other open until its
      // last passthrough handle closes: readers share the backing file (the bytes as they
      // were when it was opened, even if the file changed since), writers are refused.
      o.mode = read_only ? OpenMode::kPassthrough : OpenMode::kBusy;
      o.backing_id = s.backing_id;
    } else if (fd >= 0 && s.cached == 0) {
      BackingMap m{fd, 0, 0};
      const int id = ::ioctl(dev_fd, kBackingOpen, &m);
      if (id > 0) {
        s.backing_id = id;
        s.stamp = stamp;
        o = {OpenMode::kPassthrough, id};
      } else {
        const int err = errno;
        passthrough = false;  // EPERM: not CAP_SYS_ADMIN; anything else: not usable either
        LOG_WARN("fuse: passthrough off: the kernel refused a backing file ({})",
                 std::strerror(err));
      }
    }
    if (o.mode == OpenMode::kBusy) {
      if (s.passthrough == 0 && s.cached == 0) io_.erase(ino);
    } else {
      (o.mode == OpenMode::kPassthrough ? s.passthrough : s.cached)++;
      handles_[fh] = {ino, o.mode};
    }
  }
  if (fd >= 0) ::close(fd);  // the kernel holds the backing file now
  return o;
}

void Adapter::end_open(uint64_t fh) {
  if (!opts.passthrough) return;
  std::lock_guard<std::mutex> g(io_mu_);
  auto h = handles_.find(fh);
  if (h == handles_.end()) return;
  auto [ino, mode] = h->second;
  handles_.erase(h);
  auto it = io_.find(ino);
  if (it == io_.end()) return;
  IoState& s = it->second;
  if (mode == OpenMode::kPassthrough && --s.passthrough == 0) {
    const auto id = static_cast<uint32_t>(s.backing_id);
    if (::ioctl(dev_fd, kBackingClose, &id) != 0) {
      LOG_WARN("fuse: closing backing file {}: {}", id, std::strerror(errno));
    }
    s.backing_id = 0;
  } else if (mode == OpenMode::kCached) {
    s.cached--;
  }
  if (s.passthrough == 0 && s.cached == 0) io_.erase(it);
}

bool Adapter::reply_open(fuse_req_t req, const Opening& o, fuse_file_info* fi) {
  if (o.mode == OpenMode::kCached) return fuse_reply_open(req, fi) == 0;
  OpenOut out{fi->fh, kOpenPassthrough, o.backing_id};
  return fuse_reply_buf(req, reinterpret_cast<const char*>(&out), sizeof out) == 0;
}

}  // namespace sluice::fuse
