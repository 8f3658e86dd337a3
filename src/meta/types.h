// meta: value types shared by the metadata layer and its callers (vfs, cli).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::meta {

using Ino = uint64_t;
constexpr Ino kRootIno = 1;
constexpr uint64_t kChunkSize = 64ull << 20;  // files are split into 64 MiB chunks
constexpr size_t kMaxName = 255;
constexpr size_t kMaxSymlink = 4096;
constexpr size_t kMaxXattrName = 255;
constexpr size_t kMaxXattrValue = 64 << 10;
constexpr uint32_t kMaxLinks = 65000;

enum class FileType : uint8_t {
  kRegular = 1,
  kDirectory = 2,
  kSymlink = 3,
  kFifo = 4,
  kBlockDev = 5,
  kCharDev = 6,
  kSocket = 7,
};

// S_IF* bits of a type, and back (nullopt for an unknown type).
uint32_t type_bits(FileType t);
std::optional<FileType> type_from_mode(uint32_t st_mode);

struct Attr {
  FileType type = FileType::kRegular;
  uint16_t mode = 0;  // permission bits, including suid/sgid/sticky (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 1;
  uint64_t size = 0;  // bytes for files, target length for symlinks, 4096 for directories
  uint32_t rdev = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  Ino parent = 0;  // directories: their parent; other types: 0

  uint32_t st_mode() const { return type_bits(type) | mode; }
  bool is_dir() const { return type == FileType::kDirectory; }
  bool is_file() const { return type == FileType::kRegular; }
};

struct Entry {
  Ino ino = 0;
  Attr attr;
};

struct DirEntry {
  std::string name;
  Ino ino = 0;
  FileType type = FileType::kRegular;
  std::optional<Attr> attr;  // filled by readdir(plus=true)
};

// Who is asking. Every operation that checks permissions takes one. Root (uid 0)
// passes read/write checks, as on Linux. check_permission=false is for internal jobs.
struct Context {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> gids;  // supplementary groups (may include gid)
  uint32_t pid = 0;
  uint16_t umask = 0;  // applied by mknod/mkdir/create when the kernel has not already
  bool check_permission = true;

  bool in_group(uint32_t g) const;
  static Context root() { return Context{}; }
};

// Which fields of SetAttr to apply.
enum SetAttrMask : uint32_t {
  kSetMode = 1 << 0,
  kSetUid = 1 << 1,
  kSetGid = 1 << 2,
  kSetSize = 1 << 3,
  kSetAtime = 1 << 4,     // to atime_ns
  kSetMtime = 1 << 5,     // to mtime_ns
  kSetAtimeNow = 1 << 6,  // to the current time
  kSetMtimeNow = 1 << 7,
  kSetCtime = 1 << 8,  // to ctime_ns
  kKillSuid = 1 << 9,  // clear suid/sgid as a write by a non-owner would
};

struct SetAttr {
  uint32_t mask = 0;
  uint16_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
};

// rename(2) flags, as in linux/fs.h.
constexpr uint32_t kRenameNoReplace = 1;
constexpr uint32_t kRenameExchange = 2;

// One write: bytes [off, off+len) of slice `id` (whose stored size is `size`) placed at
// byte `pos` of the chunk. id 0 is a hole that reads as zeros.
struct Slice {
  uint32_t pos = 0;
  uint64_t id = 0;
  uint32_t size = 0;
  uint32_t off = 0;
  uint32_t len = 0;
  bool operator==(const Slice&) const = default;
};

// The volume's settings, fixed at format time (except limits and trash days).
struct Format {
  std::string name;
  std::string uuid;
  std::string storage;  // object store URL
  uint32_t block_size = 4 << 20;
  std::string compression = "none";
  // Encryption at rest, fixed at format time (docs/encryption.md): "" (none) or
  // "aes256gcm-rsa"; then the data key wrapped by the user's RSA key (base64) and that
  // key's public fingerprint ("sha256:HEX"). The data key itself is never stored.
  std::string encryption;
  std::string encryption_key;
  std::string encryption_key_fingerprint;
  uint64_t capacity = 0;  // bytes, 0 = unlimited
  uint64_t inodes = 0;    // 0 = unlimited
  uint32_t trash_days = 1;
  uint32_t meta_version = 1;
  int64_t created_ns = 0;

  std::string to_json() const;
  static std::optional<Format> from_json(const std::string& s);
};

struct StatFs {
  uint64_t total_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t avail_bytes = 0;
  uint64_t used_inodes = 0;
  uint64_t avail_inodes = 0;
};

struct SessionInfo {
  uint64_t id = 0;
  std::string hostname;
  uint32_t pid = 0;
  std::string mountpoint;
  std::string version;
  int64_t started_ns = 0;
  int64_t heartbeat_ns = 0;

  std::string to_json() const;
  static std::optional<SessionInfo> from_json(const std::string& s);
};

// Record locks (fcntl F_SETLK/F_GETLK) and flock. type is F_RDLCK, F_WRLCK or F_UNLCK.
struct LockRange {
  uint32_t type = 0;
  uint64_t start = 0;
  uint64_t end = 0;  // inclusive; UINT64_MAX = to end of file
  uint32_t pid = 0;
};

}  // namespace sluice::meta
