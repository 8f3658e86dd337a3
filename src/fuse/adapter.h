// fuse (internal): the state shared by the operation files and the helpers they reply
// with. Only src/fuse/*.cc include this header; it is the one place that picks the
// libfuse API version.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "fuse/fuse_server.h"
#include "meta/types.h"

namespace sluice::fuse {

using meta::Attr;
using meta::Entry;
using meta::Ino;

class Adapter {
 public:
  Adapter(vfs::Vfs& v, FuseOptions o) : vfs(v), opts(std::move(o)) {}

  vfs::Vfs& vfs;
  const FuseOptions opts;
  // Called from the INIT handler once capabilities are negotiated (before the reply).
  std::function<void()> on_init;
  // Set at INIT: the size a libfuse thread's pipe can grow to when splice write is
  // granted, 0 otherwise. libfuse splices a message from files only through a pipe that
  // holds all of it (fits_pipe); op_read reads the disk-cache file pieces of a reply
  // that does not fit itself.
  std::atomic<size_t> splice_pipe{0};
  // Whether a message of `bytes` in `buffers` file or memory buffers, after `headers`
  // header buffers, fits the pipe (libfuse's own estimate of the pipe it needs).
  bool fits_pipe(size_t bytes, size_t buffers, size_t headers = 1) const;

  // ---- requests ----
  // The caller of req. with_groups reads the supplementary groups from /proc (one file
  // read): ask for them only where a permission check may need them.
  meta::Context context(fuse_req_t req, bool with_groups = true) const;
  struct stat to_stat(Ino ino, const Attr& attr) const;
  fuse_entry_param to_entry(const Entry& e) const;

  // ---- replies; each takes ownership of req ----
  // Counts one kernel lookup of e.ino and replies; undoes the count if the kernel did not
  // take the reply.
  void reply_entry(fuse_req_t req, const Entry& e);
  void reply_attr(fuse_req_t req, Ino ino, const Attr& attr);
  // Replies -errno of st; logs I/O-class errors with the operation's name.
  void reply_error(fuse_req_t req, const Status& st, const char* op) const;

  // ---- kernel lookup counts (adapter.cc) ----
  void add_lookup(Ino ino, uint64_t n);
  void forget(Ino ino, uint64_t n);
  std::map<uint64_t, uint64_t> lookup_counts() const;

  // ---- page cache across opens ----
  // True when the inode's mtime and size equal those seen at its previous open in this
  // mount (the kernel may keep its cached pages); records them either way.
  bool keep_cache(Ino ino, const Attr& attr);

  // ---- passthrough (passthrough.cc) ----
  // Set when the kernel took passthrough at INIT (FuseOptions::passthrough); cleared when
  // it refuses a backing file.
  std::atomic<bool> passthrough{false};
  std::atomic<uint64_t> init_unique{0};  // the INIT request whose reply asks for it
  int dev_fd = -1;                       // /dev/fuse, for the backing-file ioctls
  // kBusy: refused (ETXTBSY), an open for writing while passthrough handles are open.
  enum class OpenMode { kCached, kPassthrough, kBusy };
  struct Opening {
    OpenMode mode = OpenMode::kCached;
    int32_t backing_id = 0;
  };
  // How to open handle fh of ino (open flags, current attributes; nullptr when unknown):
  // passthrough when the vfs has the file's whole copy and the kernel's io-mode rules
  // allow it, or when the inode has passthrough handles open already; kBusy for an open
  // for writing then; else cached. Counts the handle (not a kBusy one) until end_open.
  // Always kCached without FuseOptions::passthrough.
  Opening begin_open(Ino ino, uint64_t fh, int flags, const Attr* attr);
  void end_open(uint64_t fh);  // the handle's release, or an open reply the kernel refused
  // Replies the open as `o` says (not kBusy); false when the kernel did not take the reply.
  bool reply_open(fuse_req_t req, const Opening& o, fuse_file_info* fi);

  // ---- POSIX locks to drop on close ----
  void note_posix_lock(Ino ino, uint64_t owner);
  // True (and forgets the pair) if owner took a POSIX lock on ino since its last flush.
  bool take_posix_lock(Ino ino, uint64_t owner);

 private:
  // Lock order: each mutex guards only its own map; none is held while another is taken
  // or while calling into the vfs.
  mutable std::mutex lookup_mu_;
  std::unordered_map<Ino, uint64_t> lookups_;

  std::mutex cache_mu_;
  std::unordered_map<Ino, std::pair<int64_t, uint64_t>> seen_;  // ino -> (mtime_ns, size)

  std::mutex lock_mu_;
  std::set<std::pair<Ino, uint64_t>> posix_locks_;

  struct Stamp {  // the attributes a backing file's bytes belong to
    uint64_t size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  struct IoState {  // an inode's open handles by io mode
    uint32_t cached = 0, passthrough = 0;
    int32_t backing_id = 0;  // while passthrough > 0
    Stamp stamp;
  };
  std::mutex io_mu_;
  std::unordered_map<Ino, IoState> io_;
  std::unordered_map<uint64_t, std::pair<Ino, OpenMode>> handles_;  // fh -> (ino, mode)
};

inline Adapter& adapter(fuse_req_t req) {
  return *static_cast<Adapter*>(fuse_req_userdata(req));
}

// The session's transport when FuseOptions::passthrough is set (passthrough.cc).
const fuse_custom_io* passthrough_io();

// Each operation file installs its handlers into the table.
void add_entry_ops(fuse_lowlevel_ops& ops);
void add_file_ops(fuse_lowlevel_ops& ops);
void add_dir_ops(fuse_lowlevel_ops& ops);
void add_xattr_ops(fuse_lowlevel_ops& ops);

}  // namespace sluice::fuse
