// fuse: extended attributes. A size-0 get/list asks for the needed buffer size; a value
// that does not fit the caller's buffer is ERANGE, as getxattr(2) specifies.
#include <string>
#include <string_view>

#include "fuse/adapter.h"

namespace sluice::fuse {

namespace {

// Replies the size the caller needs (size 0), the bytes, or ERANGE.
void reply_sized(fuse_req_t req, const std::string& data, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, data.size());
  if (data.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, data.data(), data.size());
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                 size_t size, int flags) {
  Adapter& a = adapter(req);
  Status st = a.vfs.setxattr(a.context(req), ino, name, std::string_view(value, size), flags);
  if (!st.ok()) return a.reply_error(req, st, "setxattr");
  fuse_reply_err(req, 0);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Adapter& a = adapter(req);
  auto r = a.vfs.getxattr(a.context(req), ino, name);
  if (!r.ok()) return a.reply_error(req, r.status(), "getxattr");
  reply_sized(req, *r, size);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Adapter& a = adapter(req);
  auto r = a.vfs.listxattr(a.context(req), ino);
  if (!r.ok()) return a.reply_error(req, r.status(), "listxattr");
  std::string names;
  for (const std::string& n : *r) {
    names += n;
    names.push_back('\0');
  }
  reply_sized(req, names, size);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Adapter& a = adapter(req);
  Status st = a.vfs.removexattr(a.context(req), ino, name);
  if (!st.ok()) return a.reply_error(req, st, "removexattr");
  fuse_reply_err(req, 0);
}

}  // namespace

void add_xattr_ops(fuse_lowlevel_ops& ops) {
  ops.setxattr = op_setxattr;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.removexattr = op_removexattr;
}

}  // namespace sluice::fuse
