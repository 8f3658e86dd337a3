// The metadata key schema (see keys.h) and value codecs.
#include "meta/keys.h"

#include "common/encoding.h"

namespace sluice::meta::keys {

namespace {
std::string inode_key(Ino ino, char kind) {
  std::string k = "A";
  put_u64(k, ino);
  k.push_back(kind);
  return k;
}
}  // namespace

std::string setting() { return "setting"; }
std::string loading() { return "loading"; }
std::string counter(std::string_view name) { return "C" + std::string(name); }
std::string attr(Ino ino) { return inode_key(ino, 'I'); }
std::string dentry(Ino parent, std::string_view name) {
  return inode_key(parent, 'D') + std::string(name);
}
std::string dentry_prefix(Ino parent) { return inode_key(parent, 'D'); }
std::string chunk(Ino ino, uint32_t index) {
  std::string k = inode_key(ino, 'C');
  put_u32(k, index);
  return k;
}
std::string chunk_prefix(Ino ino) { return inode_key(ino, 'C'); }
std::string symlink(Ino ino) { return inode_key(ino, 'S'); }
std::string xattr(Ino ino, std::string_view name) {
  return inode_key(ino, 'X') + std::string(name);
}
std::string xattr_prefix(Ino ino) { return inode_key(ino, 'X'); }
std::string flocks(Ino ino) { return inode_key(ino, 'F'); }
std::string plocks(Ino ino) { return inode_key(ino, 'P'); }
std::string inode_prefix(Ino ino) {
  std::string k = "A";
  put_u64(k, ino);
  return k;
}
std::string deleted_file(Ino ino) {
  std::string k = "D";
  put_u64(k, ino);
  return k;
}
std::string deleted_file_prefix() { return "D"; }
std::string delayed_slice(int64_t time_ns, uint64_t id, uint32_t size) {
  std::string k = "L";
  put_i64(k, time_ns);
  put_u64(k, id);
  put_u32(k, size);
  return k;
}
std::string delayed_slice_prefix() { return "L"; }
std::string session(uint64_t sid) {
  std::string k = "SE";
  put_u64(k, sid);
  return k;
}
std::string session_prefix() { return "SE"; }
std::string sustained(uint64_t sid, Ino ino) {
  std::string k = sustained_prefix(sid);
  put_u64(k, ino);
  return k;
}
std::string sustained_prefix(uint64_t sid) {
  std::string k = "SS";
  put_u64(k, sid);
  return k;
}
std::string lock_held(uint64_t sid, Ino ino) {
  std::string k = lock_held_prefix(sid);
  put_u64(k, ino);
  return k;
}
std::string lock_held_prefix(uint64_t sid) {
  std::string k = "SL";
  put_u64(k, sid);
  return k;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto c = static_cast<unsigned char>(end.back());
    if (c != 0xff) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return end;  // empty: unbounded
}

bool parse_u64_suffix(std::string_view key, size_t at, uint64_t& out) {
  if (key.size() < at + 8) return false;
  Decoder d(key.substr(at, 8));
  out = d.get_u64();
  return d.ok();
}

}  // namespace sluice::meta::keys

namespace sluice::meta {

namespace {
constexpr uint8_t kAttrVersion = 1;
constexpr size_t kSliceRecord = 24;
}  // namespace

std::string encode_attr(const Attr& a) {
  std::string v;
  put_u8(v, kAttrVersion);
  put_u8(v, static_cast<uint8_t>(a.type));
  put_u16(v, a.mode);
  put_u32(v, a.uid);
  put_u32(v, a.gid);
  put_u32(v, a.nlink);
  put_u64(v, a.size);
  put_u32(v, a.rdev);
  put_i64(v, a.atime_ns);
  put_i64(v, a.mtime_ns);
  put_i64(v, a.ctime_ns);
  put_u64(v, a.parent);
  return v;
}

Result<Attr> decode_attr(std::string_view v) {
  Decoder d(v);
  Attr a;
  uint8_t ver = d.get_u8();
  uint8_t type = d.get_u8();
  a.mode = d.get_u16();
  a.uid = d.get_u32();
  a.gid = d.get_u32();
  a.nlink = d.get_u32();
  a.size = d.get_u64();
  a.rdev = d.get_u32();
  a.atime_ns = d.get_i64();
  a.mtime_ns = d.get_i64();
  a.ctime_ns = d.get_i64();
  a.parent = d.get_u64();
  if (!d.ok() || ver != kAttrVersion || type < 1 || type > 7) {
    return Status(Code::kCorruption, "malformed inode attributes");
  }
  a.type = static_cast<FileType>(type);
  return a;
}

std::string encode_dentry(FileType type, Ino ino) {
  std::string v;
  put_u8(v, static_cast<uint8_t>(type));
  put_u64(v, ino);
  return v;
}

Result<std::pair<FileType, Ino>> decode_dentry(std::string_view v) {
  Decoder d(v);
  uint8_t type = d.get_u8();
  Ino ino = d.get_u64();
  if (!d.ok() || d.remaining() != 0 || type < 1 || type > 7) {
    return Status(Code::kCorruption, "malformed directory entry");
  }
  return std::make_pair(static_cast<FileType>(type), ino);
}

std::string encode_slice(const Slice& s) {
  std::string v;
  put_u32(v, s.pos);
  put_u64(v, s.id);
  put_u32(v, s.size);
  put_u32(v, s.off);
  put_u32(v, s.len);
  return v;
}

Result<std::vector<Slice>> decode_slices(std::string_view v) {
  if (v.size() % kSliceRecord != 0) return Status(Code::kCorruption, "malformed chunk record");
  std::vector<Slice> out;
  out.reserve(v.size() / kSliceRecord);
  Decoder d(v);
  while (d.remaining() > 0) {
    Slice s;
    s.pos = d.get_u32();
    s.id = d.get_u64();
    s.size = d.get_u32();
    s.off = d.get_u32();
    s.len = d.get_u32();
    out.push_back(s);
  }
  return out;
}

std::string encode_u64(uint64_t v) {
  std::string s;
  put_u64(s, v);
  return s;
}

Result<uint64_t> decode_u64(std::string_view v) {
  if (v.size() != 8) return Status(Code::kCorruption, "malformed counter");
  Decoder d(v);
  return d.get_u64();
}

}  // namespace sluice::meta
