// fuse: the libfuse3 low-level adapter that serves a vfs::Vfs through the kernel.
//
// The adapter is thin: each FUSE request becomes one vfs call with the caller's context
// (uid, gid, supplementary groups, pid, umask), and every error is replied as the errno
// of its Status (common/status.h). Permission checks are the metadata layer's: the mount
// does not use the kernel's default_permissions.
//
// Kernel lookup counts are kept exactly by the libfuse rules (example/passthrough_hp.cc):
// +1 for every entry replied by lookup, mknod, mkdir, symlink, link and create and for
// each readdirplus entry other than "." and ".." that fit in the reply; forget and
// forget_multi subtract. A reply the kernel did not take undoes its count.
//
// Source layout: fuse_session.cc (mount, init, loop, unmount), adapter.cc (context,
// attribute conversion, replies, per-inode bookkeeping), ops_entry.cc (lookup, forget,
// getattr, setattr, access, statfs, mknod, mkdir, symlink, readlink, unlink, rmdir,
// rename, link), ops_file.cc (create, open, read, write, flush, fsync, release, flock,
// getlk, setlk), ops_dir.cc, ops_xattr.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"
#include "vfs/vfs.h"

namespace sluice::fuse {

struct FuseOptions {
  std::string mountpoint;        // an existing, absolute directory
  double entry_timeout = 1;      // seconds the kernel caches a name -> inode of a file
  double dir_entry_timeout = 1;  // ... of a directory
  double attr_timeout = 1;       // seconds the kernel caches attributes
  bool allow_other = false;      // let users other than the mounter in
  bool read_only = false;        // mount read-only ("-o ro")
  int max_threads = 16;          // bound on the loop's worker threads
  uint32_t max_readahead = 0;    // bytes; 0 keeps the kernel's default
  std::string fsname = "sluice";  // the source column of /proc/mounts
  std::string subtype = "sluice";  // the file system type becomes "fuse.<subtype>"
  bool writeback = false;        // kernel write-back cache (FUSE_CAP_WRITEBACK_CACHE)
  bool debug = false;            // libfuse traces every request (logged at debug level)
  // FUSE passthrough for files with a whole local copy (passthrough.cc); needs Linux 6.9+,
  // CAP_SYS_ADMIN and no writeback cache, and is left off (logged) where one is missing.
  bool passthrough = false;
};

class Adapter;  // adapter.h, internal

// One mount of a Vfs. The Vfs must be started before run() and outlive the server.
class FuseServer {
 public:
  FuseServer(vfs::Vfs& vfs, FuseOptions opts);
  ~FuseServer();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  // Mounts, calls on_mounted once (from a loop thread, when the kernel's INIT arrives:
  // the mount exists and requests are being served), runs the multithreaded loop and
  // returns after the file system is unmounted (umount, fusermount3 -u) or the process
  // gets SIGTERM, SIGINT or SIGHUP (which unmount cleanly). A mount failure returns an
  // error without calling on_mounted. Call it at most once.
  //
  // Signals: run() unblocks SIGTERM/SIGINT/SIGHUP on its own thread only, so callers
  // should block them in every other thread (e.g. before starting the Vfs) to make sure
  // the loop's thread is the one that receives them.
  Status run(const std::function<void()>& on_mounted = {});

  // Kernel lookup counts now held: inode -> count (diagnostics and tests). Thread-safe.
  std::map<uint64_t, uint64_t> lookup_counts() const;

 private:
  std::unique_ptr<Adapter> adapter_;
};

// Convenience: FuseServer(vfs, opts).run(on_mounted).
Status run_fuse(vfs::Vfs& vfs, const FuseOptions& opts,
                const std::function<void()>& on_mounted = {});

}  // namespace sluice::fuse
