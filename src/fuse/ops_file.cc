// fuse: open files — create, open, read, write, flush, fsync, release — and locks.
//
// The kernel page cache is kept across opens while a file is unchanged: open sets
// keep_cache when the inode's mtime and size equal those seen at its previous open in
// this mount. direct_io is never set. With --passthrough, open hands files that have a
// whole local copy to the kernel (passthrough.cc).
//
// Locks (flock, getlk, setlk) are forwarded to the vfs: they live in meta so that they
// hold across clients. A blocking request waits in the vfs until the lock is granted or
// the kernel interrupts the request (a signal to the caller): EINTR. Closing a
// descriptor (flush) drops the POSIX locks its owner holds on the file; the last close of
// a handle that took flock locks (flock_release) drops those.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "common/logging.h"
#include "fuse/adapter.h"

namespace sluice::fuse {

namespace {

// Replies an open handle in the io mode begin_open picks; if the kernel did not take the
// reply (interrupted open), releases the handle.
void reply_open(fuse_req_t req, Ino ino, int flags, const Attr* attr, fuse_file_info* fi) {
  Adapter& a = adapter(req);
  const Adapter::Opening o = a.begin_open(ino, fi->fh, flags, attr);
  if (o.mode == Adapter::OpenMode::kBusy) {
    (void)a.vfs.release(ino, fi->fh);
    fuse_reply_err(req, ETXTBSY);
    return;
  }
  if (!a.reply_open(req, o, fi)) {
    a.end_open(fi->fh);
    (void)a.vfs.release(ino, fi->fh);
  }
}

// create(2) of a name that appeared since the kernel's lookup (another client made it):
// without O_EXCL this is an open of the existing file, truncated for O_TRUNC.
Result<std::pair<Entry, uint64_t>> open_existing(Adapter& a, const meta::Context& ctx,
                                                 Ino parent, const char* name, int flags) {
  ASSIGN_OR_RETURN(Entry e, a.vfs.lookup(ctx, parent, name));
  if (e.attr.is_dir()) return Status(Code::kIsDir, "create: is a directory");
  ASSIGN_OR_RETURN(uint64_t fh, a.vfs.open(ctx, e.ino, flags & ~(O_CREAT | O_TRUNC)));
  if (flags & O_TRUNC) {
    meta::SetAttr s;
    s.mask = meta::kSetSize;
    auto r = a.vfs.setattr(ctx, e.ino, s, fh);
    if (!r.ok()) {
      (void)a.vfs.release(e.ino, fh);
      return r.status();
    }
    e.attr = *r;
  }
  return std::make_pair(e, fh);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  Adapter& a = adapter(req);
  meta::Context ctx = a.context(req);
  auto r = a.vfs.create(ctx, parent, name, static_cast<uint16_t>(mode & 07777), fi->flags);
  if (!r.ok() && r.status().is(Code::kExists) && !(fi->flags & O_EXCL)) {
    r = open_existing(a, ctx, parent, name, fi->flags);
  }
  if (!r.ok()) return a.reply_error(req, r.status(), "create");
  auto& [entry, fh] = *r;
  fi->fh = fh;
  fi->keep_cache = a.keep_cache(entry.ino, entry.attr);
  fi->direct_io = 0;
  // Cached (a new file has no copy), or refused while an existing file that create opens
  // has passthrough handles: its reply (fuse_reply_create) carries no backing file.
  if (a.begin_open(entry.ino, fh, fi->flags, nullptr).mode != Adapter::OpenMode::kCached) {
    a.end_open(fh);
    (void)a.vfs.release(entry.ino, fh);
    fuse_reply_err(req, ETXTBSY);
    return;
  }
  fuse_entry_param p = a.to_entry(entry);
  a.add_lookup(entry.ino, 1);
  if (fuse_reply_create(req, &p, fi) != 0) {
    a.forget(entry.ino, 1);
    a.end_open(fh);
    (void)a.vfs.release(entry.ino, fh);
  }
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Adapter& a = adapter(req);
  meta::Context ctx = a.context(req);
  auto r = a.vfs.open(ctx, ino, fi->flags);
  if (!r.ok()) return a.reply_error(req, r.status(), "open");
  fi->fh = *r;
  fi->direct_io = 0;
  auto attr = a.vfs.getattr(ctx, ino);
  fi->keep_cache = attr.ok() && a.keep_cache(ino, *attr);
  reply_open(req, ino, fi->flags, attr.ok() ? &*attr : nullptr, fi);
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Adapter& a = adapter(req);
  // The reply points into the cached blocks: the kernel copies the bytes once, straight
  // into its page cache (see vfs::ReadData). Pieces in disk-cache files go as file
  // buffers, which libfuse splices from the file where its pipe can hold the whole reply
  // (Adapter::fits_pipe); else they are read here first.
  thread_local vfs::ReadData data;
  const meta::Context ctx = a.context(req, false);
  Status st = a.vfs.read_pieces(ctx, ino, fi->fh, static_cast<uint64_t>(off), size, data);
  if (st.ok() && !data.files.empty() && !a.fits_pipe(data.size, data.pieces.size())) {
    // No splice: the file pieces are read here (as libfuse would), so that a cache file
    // that fails to read costs a verified read of its block instead of failing the read.
    thread_local std::string buf;
    if (!data.read_files(buf)) {
      LOG_WARN("fuse: reading a disk-cache file of inode {}: {}; reading it verified", ino,
               std::strerror(errno));
      st = a.vfs.read_pieces(ctx, ino, fi->fh, static_cast<uint64_t>(off), size, data,
                             /*files=*/false);
    }
  }
  if (!st.ok()) {
    data.clear();
    return a.reply_error(req, st, "read");
  }
  if (data.files.empty()) {
    thread_local std::vector<iovec> iov;
    iov.clear();
    for (const vfs::ReadPiece& p : data.pieces) iov.push_back({const_cast<char*>(p.data), p.len});
    fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
  } else {
    // fuse_bufvec ends in a one-element array that holds `count` buffers (the C idiom).
    const size_t n = data.pieces.size();
    thread_local std::vector<uint64_t> mem;
    mem.assign((sizeof(fuse_bufvec) + n * sizeof(fuse_buf) + 7) / 8, 0);
    auto* bv = reinterpret_cast<fuse_bufvec*>(mem.data());
    bv->count = n;
    fuse_buf* bufs = bv->buf;
    for (size_t i = 0; i < n; i++) {
      const vfs::ReadPiece& p = data.pieces[i];
      bufs[i].size = p.len;
      if (p.data == nullptr) {
        bufs[i].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
        bufs[i].fd = p.fd;
        bufs[i].pos = static_cast<off_t>(p.fd_off);
      } else {
        bufs[i].mem = const_cast<char*>(p.data);
      }
    }
    // Without SPLICE_MOVE: letting the kernel steal the cache file's pages into the FUSE
    // file made a reload slower (bench/cache_reload.sh, 2 GiB: 1.01 GB/s and 1.33 s of
    // mount CPU, against 1.70 GB/s and 0.93 s copying the pages).
    fuse_reply_data(req, bv, static_cast<fuse_buf_copy_flags>(0));
  }
  data.clear();  // the blocks may leave the cache now
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
              fuse_file_info* fi) {
  Adapter& a = adapter(req);
  auto r = a.vfs.write(a.context(req, false), ino, fi->fh, static_cast<uint64_t>(off), buf, size);
  if (!r.ok()) return a.reply_error(req, r.status(), "write");
  fuse_reply_write(req, *r);
}

void op_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Adapter& a = adapter(req);
  meta::Context ctx = a.context(req, false);
  Status st = a.vfs.flush(ctx, ino, fi->fh);
  if (a.take_posix_lock(ino, fi->lock_owner)) {
    meta::LockRange all;
    all.type = F_UNLCK;
    all.end = UINT64_MAX;
    all.pid = ctx.pid;
    Status unlock = a.vfs.setlk(ino, fi->lock_owner, all, false);
    if (st.ok()) st = unlock;
  }
  if (!st.ok()) return a.reply_error(req, st, "flush");
  fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  Adapter& a = adapter(req);
  Status st = a.vfs.fsync(a.context(req, false), ino, fi->fh, datasync != 0);
  if (!st.ok()) return a.reply_error(req, st, "fsync");
  fuse_reply_err(req, 0);
}

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Adapter& a = adapter(req);
  Status st;
  if (fi->flock_release) st = a.vfs.flock(ino, fi->lock_owner, F_UNLCK, false);
  a.end_open(fi->fh);
  Status closed = a.vfs.release(ino, fi->fh);
  if (st.ok()) st = closed;
  if (!st.ok()) return a.reply_error(req, st, "release");
  fuse_reply_err(req, 0);
}

// ---- locks ----

// struct flock (l_len 0 = to end of file) <-> meta::LockRange (inclusive end).
meta::LockRange to_range(const struct flock& fl) {
  meta::LockRange r;
  r.type = static_cast<uint32_t>(fl.l_type);
  r.start = static_cast<uint64_t>(fl.l_start);
  r.end = fl.l_len == 0 ? UINT64_MAX : static_cast<uint64_t>(fl.l_start + fl.l_len - 1);
  r.pid = static_cast<uint32_t>(fl.l_pid);
  return r;
}

struct flock to_flock(const meta::LockRange& r) {
  struct flock fl = {};
  fl.l_type = static_cast<short>(r.type);
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(r.start);
  fl.l_len = r.end == UINT64_MAX ? 0 : static_cast<off_t>(r.end - r.start + 1);
  fl.l_pid = static_cast<pid_t>(r.pid);
  return fl;
}

std::function<bool()> interrupted(fuse_req_t req) {
  return [req] { return fuse_req_interrupted(req) != 0; };
}

void op_flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) {
  Adapter& a = adapter(req);
  uint32_t type = F_UNLCK;
  if (op & LOCK_SH) type = F_RDLCK;
  if (op & LOCK_EX) type = F_WRLCK;
  bool block = type != F_UNLCK && !(op & LOCK_NB);
  Status st = a.vfs.flock(ino, fi->lock_owner, type, block, interrupted(req));
  if (!st.ok()) return a.reply_error(req, st, "flock");
  fuse_reply_err(req, 0);
}

void op_getlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock) {
  Adapter& a = adapter(req);
  auto r = a.vfs.getlk(ino, fi->lock_owner, to_range(*lock));
  if (!r.ok()) return a.reply_error(req, r.status(), "getlk");
  struct flock fl = to_flock(*r);
  fuse_reply_lock(req, &fl);
}

void op_setlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock,
              int sleep) {
  Adapter& a = adapter(req);
  meta::LockRange want = to_range(*lock);
  if (want.pid == 0) want.pid = static_cast<uint32_t>(fuse_req_ctx(req)->pid);
  bool block = sleep != 0 && want.type != F_UNLCK;
  Status st = a.vfs.setlk(ino, fi->lock_owner, want, block, interrupted(req));
  if (!st.ok()) return a.reply_error(req, st, "setlk");
  if (want.type != F_UNLCK) a.note_posix_lock(ino, fi->lock_owner);
  fuse_reply_err(req, 0);
}

}  // namespace

void add_file_ops(fuse_lowlevel_ops& ops) {
  ops.create = op_create;
  ops.open = op_open;
  ops.read = op_read;
  ops.write = op_write;
  ops.flush = op_flush;
  ops.fsync = op_fsync;
  ops.release = op_release;
  ops.flock = op_flock;
  ops.getlk = op_getlk;
  ops.setlk = op_setlk;
}

}  // namespace sluice::fuse
