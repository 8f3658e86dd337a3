// Helpers shared by the operation files of the meta layer. Not part of the public API:
// only src/meta/*.cc and its tests include this.
#pragma once

#include <optional>
#include <string_view>
#include <utility>

#include "common/status.h"
#include "kv/engine.h"
#include "meta/meta.h"
#include "meta/types.h"

namespace sluice::meta::internal {

// kNotFound (ENOENT) when the inode does not exist.
Result<Attr> load_attr(kv::Txn& txn, Ino ino);
Status save_attr(kv::Txn& txn, Ino ino, const Attr& attr);

// Counters are 8-byte big-endian values under keys::counter(name); missing reads as 0.
Result<int64_t> get_counter(kv::Txn& txn, std::string_view name);
Status add_counter(kv::Txn& txn, std::string_view name, int64_t delta);

// Space a file of this size is charged for (rounded up to 4 KiB).
inline uint64_t space_of(uint64_t size) { return (size + 4095) / 4096 * 4096; }

// Linux permission rules for mode bits (R_OK=4, W_OK=2, X_OK=1). Root passes read and
// write always, and execute when any x bit is set or the inode is a directory.
// Denial is kAccess (EACCES).
Status check_access(const Context& ctx, const Attr& attr, int mask);
// Owner or root (for chmod, utimens to explicit times, ...). Denial is kPermission.
bool is_owner(const Context& ctx, const Attr& attr);
// A directory entry name: non-empty, not "." or "..", no '/' or NUL (kInvalid),
// at most kMaxName bytes (kNameTooLong).
Status check_name(std::string_view name);
// Sticky directories: only the owner of the entry, of the directory, or root may
// remove or rename an entry. Denial is kPermission.
Status check_sticky(const Context& ctx, const Attr& dir, const Attr& victim);

// Namespace helpers (namespace.cc). load_dir: kNotFound if missing, kNotDir if not a
// directory. get_dentry: the (type, ino) of an entry, nullopt if absent. dir_is_empty:
// whether a directory has no entries.
Result<Attr> load_dir(kv::Txn& txn, Ino ino);
Result<std::optional<std::pair<FileType, Ino>>> get_dentry(kv::Txn& txn, Ino parent,
                                                           std::string_view name);
Result<bool> dir_is_empty(kv::Txn& txn, Ino ino);

// The inode's link count has reached 0 (its attr holds nlink == 0 already). If this
// session has it open, it is kept (sustained) until the last close; otherwise its keys
// are removed and its data queued for deletion. Adjusts usedInodes and usedSpace.
// Implemented in session.cc.
Status drop_inode(Meta& m, kv::Txn& txn, Ino ino, const Attr& attr);
// Removes every key of an inode and queues its data (regular files) for deletion.
// Implemented in chunk.cc.
Status remove_inode(kv::Txn& txn, Ino ino, const Attr& attr);
// Drops the slices that lie past new_size (a shrinking truncate); chunk.cc.
Status truncate_data(kv::Txn& txn, Ino ino, uint64_t old_size, uint64_t new_size);
// Releases every flock and fcntl lock that session `sid` holds on the inode and deletes
// its SL key (closing or cleaning a session). Implemented in lock.cc.
Status release_locks(kv::Txn& txn, uint64_t sid, Ino ino);

}  // namespace sluice::meta::internal
