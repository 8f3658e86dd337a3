// meta: the whole file-system namespace and file layout over a kv::Engine.
//
// Each operation is one kv transaction (retried by the engine's driver on conflict) and
// returns the errno-mapped Status Linux would give for the same call. Meta knows
// nothing of FUSE, RPC or object storage: data deletion is delegated to a callback.
//
// Thread safety: all methods may be called from any number of threads at once.
// Consistency across clients is the engine's: every call reads committed state.
//
// Source layout (one file per operation group): meta.cc (open, format, ids, counters),
// namespace.cc (lookup, mknod, mkdir, unlink, rmdir, link, symlink, readdir),
// rename.cc, attr.cc (getattr, setattr, access, permission rules), chunk.cc (slices,
// truncate, deleted-file cleanup), session.cc (sessions, open files), xattr.cc,
// lock.cc (flock, fcntl), statfs.cc. Keys: keys.h and docs/key-schema.md.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "kv/engine.h"
#include "meta/types.h"

namespace sluice::meta {

// Deletes the stored blocks of one slice; supplied by the data layer. Must succeed when
// the objects are already gone.
using SliceDeleter = std::function<Status(uint64_t slice_id, uint32_t slice_size)>;

class Meta {
 public:
  // Writes the volume's settings and the root directory. Fails with kExists on a
  // formatted volume unless force (force keeps the data, rewrites the settings).
  static Status format(kv::Engine& engine, const Format& fmt, bool force);
  // Loads the settings; kNotFound "... is not a Sluice volume" if unformatted.
  static Result<std::unique_ptr<Meta>> open(std::shared_ptr<kv::Engine> engine);

  const Format& format() const { return format_; }
  kv::Engine& engine() { return *engine_; }

  // ---- sessions (session.cc) ----
  // Registers this client; locks and open-unlinked files belong to the session.
  Status new_session(SessionInfo info);
  uint64_t session_id() const { return sid_; }
  Status heartbeat();
  // Releases this session's locks and deletes its open-unlinked files, then removes it.
  Status close_session();
  // Removes sessions whose heartbeat is older than timeout_ns (their locks, their
  // open-unlinked files). Returns how many were removed.
  Result<int> clean_stale_sessions(int64_t timeout_ns);
  Result<std::vector<SessionInfo>> list_sessions();

  // ---- namespace (namespace.cc, rename.cc) ----
  Result<Entry> lookup(const Context& ctx, Ino parent, std::string_view name);
  // Regular files, fifos, sockets and devices. mode holds permission bits only.
  Result<Entry> mknod(const Context& ctx, Ino parent, std::string_view name, FileType type,
                      uint16_t mode, uint32_t rdev);
  Result<Entry> mkdir(const Context& ctx, Ino parent, std::string_view name, uint16_t mode);
  Result<Entry> symlink(const Context& ctx, Ino parent, std::string_view name,
                        std::string_view target);
  Result<std::string> readlink(const Context& ctx, Ino ino);
  Status unlink(const Context& ctx, Ino parent, std::string_view name);
  Status rmdir(const Context& ctx, Ino parent, std::string_view name);
  // flags: 0, kRenameNoReplace or kRenameExchange.
  Status rename(const Context& ctx, Ino parent, std::string_view name, Ino new_parent,
                std::string_view new_name, uint32_t flags);
  Result<Entry> link(const Context& ctx, Ino ino, Ino new_parent, std::string_view new_name);
  // Every entry of a directory except "." and "..", sorted by name. plus fills attrs.
  Result<std::vector<DirEntry>> readdir(const Context& ctx, Ino ino, bool plus);

  // ---- attributes (attr.cc) ----
  Result<Attr> getattr(Ino ino);
  // Truncation (kSetSize) also drops the slices past the new size.
  Result<Attr> setattr(const Context& ctx, Ino ino, const SetAttr& req);
  // mask: R_OK | W_OK | X_OK (F_OK = 0 only checks existence).
  Status access(const Context& ctx, Ino ino, int mask);

  // ---- open files (session.cc) ----
  // Checks access for O_ACCMODE/O_TRUNC and counts the open in this session, so an
  // unlinked file survives until close(). Returns the current attributes.
  Result<Attr> open(const Context& ctx, Ino ino, int flags);
  Status close(Ino ino);

  // ---- file data layout (chunk.cc) ----
  Result<uint64_t> new_slice_id();  // allocated in batches, never reused
  Result<std::vector<Slice>> read_chunk(Ino ino, uint32_t index);
  // Appends one slice record to chunk `index`, grows the size to cover it (kNoSpace past
  // the volume capacity) and sets mtime and ctime to mtime_ns. (Clearing suid/sgid on
  // write is the kernel's: it sends a setattr first.) Returns the new attrs.
  Result<Attr> write_slice(Ino ino, uint32_t index, const Slice& slice, int64_t mtime_ns);
  // Deletes the data of removed files and dropped slices (after their delay), calling
  // deleter for each slice. Returns how many slices were deleted.
  Result<size_t> cleanup_deleted(const SliceDeleter& deleter, size_t limit = 1000);

  // ---- xattrs (xattr.cc) ----
  Result<std::string> getxattr(const Context& ctx, Ino ino, std::string_view name);
  Result<std::vector<std::string>> listxattr(const Context& ctx, Ino ino);
  // flags: 0, XATTR_CREATE or XATTR_REPLACE.
  Status setxattr(const Context& ctx, Ino ino, std::string_view name, std::string_view value,
                  int flags);
  Status removexattr(const Context& ctx, Ino ino, std::string_view name);

  // ---- locks (lock.cc); owner is the kernel's lock owner id ----
  // type F_RDLCK, F_WRLCK or F_UNLCK; kAgain when another owner holds a conflicting lock
  // (blocking callers poll).
  Status flock(Ino ino, uint64_t owner, uint32_t type);
  // Returns the first conflicting lock, or type F_UNLCK if none.
  Result<LockRange> getlk(Ino ino, uint64_t owner, const LockRange& want);
  Status setlk(Ino ino, uint64_t owner, const LockRange& lock);

  // ---- volume (statfs.cc) ----
  Result<StatFs> statfs(const Context& ctx);

  // Data of dropped slices becomes deletable this long after the drop (default 0).
  void set_delete_delay(int64_t ns) { delete_delay_ns_ = ns; }
  int64_t delete_delay() const { return delete_delay_ns_; }

  // Internal (used by the operation files): inode allocation and the session's open table.
  Result<Ino> next_inode();
  bool is_open_here(Ino ino);

 private:
  Meta(std::shared_ptr<kv::Engine> engine, Format fmt)
      : engine_(std::move(engine)), format_(std::move(fmt)) {}
  Result<uint64_t> alloc_id(const char* counter, uint64_t batch, uint64_t& next, uint64_t& end);

  std::shared_ptr<kv::Engine> engine_;
  Format format_;
  uint64_t sid_ = 0;
  std::atomic<int64_t> delete_delay_ns_{0};

  std::mutex id_mu_;  // guards the id batches below
  uint64_t next_ino_ = 0, end_ino_ = 0;
  uint64_t next_slice_ = 0, end_slice_ = 0;

  std::mutex open_mu_;  // guards open_
  std::unordered_map<Ino, int> open_;  // ino -> open count in this session
};

}  // namespace sluice::meta
