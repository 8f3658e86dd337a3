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
};

inline Adapter& adapter(fuse_req_t req) {
  return *static_cast<Adapter*>(fuse_req_userdata(req));
}

// Each operation file installs its handlers into the table.
void add_entry_ops(fuse_lowlevel_ops& ops);
void add_file_ops(fuse_lowlevel_ops& ops);
void add_dir_ops(fuse_lowlevel_ops& ops);
void add_xattr_ops(fuse_lowlevel_ops& ops);

}  // namespace sluice::fuse
