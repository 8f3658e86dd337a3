// Every kv key of the metadata schema, in one place (docs/key-schema.md explains them).
// Nobody builds a key anywhere else. Integers are big-endian so that all keys of one
// inode are contiguous and a directory's entries scan in name order.
//
//   setting                         volume Format (JSON)
//   loading                         a `sluice load` is under way or failed (JSON); the
//                                   volume cannot be opened while it exists
//   C<name>                         counter (u64): nextInode, nextSlice, nextSession, usedSpace,
//                                   usedInodes
//   A<ino>I                         inode attributes (encode_attr)
//   A<ino>D<name>                   directory entry: u8 type, u64 ino
//   A<ino>C<u32 index>              chunk: concatenated 24-byte slice records
//   A<ino>S                         symlink target
//   A<ino>X<name>                   xattr value
//   A<ino>F                         flock table;  A<ino>P  fcntl lock table
//   D<ino>                          removed file whose data awaits deletion: u64 length
//   L<i64 time><u64 id><u32 size>   dropped slice to delete after its delay
//   SE<sid>                         session (SessionInfo JSON, with heartbeat)
//   SS<sid><ino>                    open-unlinked inode kept alive by a session
//   SL<sid><ino>                    session holds locks on the inode
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "meta/types.h"

namespace sluice::meta::keys {

std::string setting();
std::string loading();
std::string counter(std::string_view name);
std::string attr(Ino ino);
std::string dentry(Ino parent, std::string_view name);
std::string dentry_prefix(Ino parent);  // scan [dentry_prefix, prefix_end(dentry_prefix))
std::string chunk(Ino ino, uint32_t index);
std::string chunk_prefix(Ino ino);
std::string symlink(Ino ino);
std::string xattr(Ino ino, std::string_view name);
std::string xattr_prefix(Ino ino);
std::string flocks(Ino ino);
std::string plocks(Ino ino);
std::string inode_prefix(Ino ino);  // every key of one inode
std::string deleted_file(Ino ino);
std::string deleted_file_prefix();
std::string delayed_slice(int64_t time_ns, uint64_t id, uint32_t size);
std::string delayed_slice_prefix();
std::string session(uint64_t sid);
std::string session_prefix();
std::string sustained(uint64_t sid, Ino ino);
std::string sustained_prefix(uint64_t sid);
std::string lock_held(uint64_t sid, Ino ino);
std::string lock_held_prefix(uint64_t sid);

// The smallest key greater than every key with this prefix (for scan end bounds).
std::string prefix_end(std::string_view prefix);

// Parse helpers for scanned keys; false on a malformed key.
bool parse_u64_suffix(std::string_view key, size_t at, uint64_t& out);

constexpr const char* kNextInode = "nextInode";
constexpr const char* kNextSlice = "nextSlice";
constexpr const char* kNextSession = "nextSession";
constexpr const char* kUsedSpace = "usedSpace";
constexpr const char* kUsedInodes = "usedInodes";

}  // namespace sluice::meta::keys

namespace sluice::meta {

// Value codecs. decode_* return kCorruption on malformed bytes.
std::string encode_attr(const Attr& a);
Result<Attr> decode_attr(std::string_view v);
std::string encode_dentry(FileType type, Ino ino);
Result<std::pair<FileType, Ino>> decode_dentry(std::string_view v);
std::string encode_slice(const Slice& s);  // 24 bytes
Result<std::vector<Slice>> decode_slices(std::string_view v);
std::string encode_u64(uint64_t v);
Result<uint64_t> decode_u64(std::string_view v);

}  // namespace sluice::meta
