// fuse: operations on names and attributes — lookup, forget, getattr, setattr, access,
// statfs, and those that change the namespace (mknod, mkdir, symlink, unlink, rmdir,
// rename, link) plus readlink. Every entry replied counts one kernel lookup.
#include <sys/statvfs.h>

#include "fuse/adapter.h"

namespace sluice::fuse {

namespace {

constexpr unsigned long kStatfsBlock = 4096;

int64_t to_ns(const timespec& ts) { return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec; }

uint16_t perm_bits(mode_t mode) { return static_cast<uint16_t>(mode & 07777); }

void reply_status(fuse_req_t req, const Status& st, const char* op) {
  if (!st.ok()) return adapter(req).reply_error(req, st, op);
  fuse_reply_err(req, 0);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Adapter& a = adapter(req);
  auto r = a.vfs.lookup(a.context(req), parent, name);
  if (!r.ok()) return a.reply_error(req, r.status(), "lookup");
  a.reply_entry(req, *r);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  adapter(req).forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Adapter& a = adapter(req);
  for (size_t i = 0; i < count; i++) a.forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Adapter& a = adapter(req);
  auto r = a.vfs.getattr(a.context(req, false), ino);
  if (!r.ok()) return a.reply_error(req, r.status(), "getattr");
  a.reply_attr(req, ino, *r);
}

// FUSE_SET_ATTR_* -> meta::SetAttr. "_NOW" arrives together with the plain bit.
meta::SetAttr to_setattr(const struct stat& attr, int to_set) {
  meta::SetAttr s;
  if (to_set & FUSE_SET_ATTR_MODE) {
    s.mask |= meta::kSetMode;
    s.mode = static_cast<uint16_t>(attr.st_mode & 07777);
  }
  if (to_set & FUSE_SET_ATTR_UID) {
    s.mask |= meta::kSetUid;
    s.uid = attr.st_uid;
  }
  if (to_set & FUSE_SET_ATTR_GID) {
    s.mask |= meta::kSetGid;
    s.gid = attr.st_gid;
  }
  if (to_set & FUSE_SET_ATTR_SIZE) {
    s.mask |= meta::kSetSize;
    s.size = static_cast<uint64_t>(attr.st_size);
  }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    s.mask |= meta::kSetAtimeNow;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    s.mask |= meta::kSetAtime;
    s.atime_ns = to_ns(attr.st_atim);
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    s.mask |= meta::kSetMtimeNow;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    s.mask |= meta::kSetMtime;
    s.mtime_ns = to_ns(attr.st_mtim);
  }
  if (to_set & FUSE_SET_ATTR_CTIME) {
    s.mask |= meta::kSetCtime;
    s.ctime_ns = to_ns(attr.st_ctim);
  }
  if (to_set & (FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID)) s.mask |= meta::kKillSuid;
  return s;
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                fuse_file_info* fi) {
  Adapter& a = adapter(req);
  auto r = a.vfs.setattr(a.context(req), ino, to_setattr(*attr, to_set), fi ? fi->fh : 0);
  if (!r.ok()) return a.reply_error(req, r.status(), "setattr");
  a.reply_attr(req, ino, *r);
}

void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  Adapter& a = adapter(req);
  reply_status(req, a.vfs.access(a.context(req), ino, mask), "access");
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  Adapter& a = adapter(req);
  auto r = a.vfs.statfs(a.context(req, false));
  if (!r.ok()) return a.reply_error(req, r.status(), "statfs");
  struct statvfs sv = {};
  sv.f_bsize = kStatfsBlock;
  sv.f_frsize = kStatfsBlock;
  sv.f_blocks = r->total_bytes / kStatfsBlock;
  sv.f_bfree = r->avail_bytes / kStatfsBlock;
  sv.f_bavail = sv.f_bfree;
  sv.f_files = r->used_inodes + r->avail_inodes;
  sv.f_ffree = r->avail_inodes;
  sv.f_favail = r->avail_inodes;
  sv.f_namemax = meta::kMaxName;
  fuse_reply_statfs(req, &sv);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Adapter& a = adapter(req);
  auto type = meta::type_from_mode(mode);
  if (!type || *type == meta::FileType::kDirectory || *type == meta::FileType::kSymlink) {
    return (void)fuse_reply_err(req, EINVAL);
  }
  auto r = a.vfs.mknod(a.context(req), parent, name, *type, perm_bits(mode),
                       static_cast<uint32_t>(rdev));
  if (!r.ok()) return a.reply_error(req, r.status(), "mknod");
  a.reply_entry(req, *r);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Adapter& a = adapter(req);
  auto r = a.vfs.mkdir(a.context(req), parent, name, perm_bits(mode));
  if (!r.ok()) return a.reply_error(req, r.status(), "mkdir");
  a.reply_entry(req, *r);
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Adapter& a = adapter(req);
  auto r = a.vfs.symlink(a.context(req), parent, name, target);
  if (!r.ok()) return a.reply_error(req, r.status(), "symlink");
  a.reply_entry(req, *r);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Adapter& a = adapter(req);
  auto r = a.vfs.readlink(a.context(req, false), ino);
  if (!r.ok()) return a.reply_error(req, r.status(), "readlink");
  fuse_reply_readlink(req, r->c_str());
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Adapter& a = adapter(req);
  reply_status(req, a.vfs.unlink(a.context(req), parent, name), "unlink");
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Adapter& a = adapter(req);
  reply_status(req, a.vfs.rmdir(a.context(req), parent, name), "rmdir");
}

// flags are renameat2(2)'s; meta uses the same values (RENAME_NOREPLACE, _EXCHANGE) and
// rejects the others.
void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
               const char* new_name, unsigned int flags) {
  Adapter& a = adapter(req);
  reply_status(req, a.vfs.rename(a.context(req), parent, name, new_parent, new_name, flags),
               "rename");
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  Adapter& a = adapter(req);
  auto r = a.vfs.link(a.context(req), ino, new_parent, new_name);
  if (!r.ok()) return a.reply_error(req, r.status(), "link");
  a.reply_entry(req, *r);
}

}  // namespace

void add_entry_ops(fuse_lowlevel_ops& ops) {
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.access = op_access;
  ops.statfs = op_statfs;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.symlink = op_symlink;
  ops.readlink = op_readlink;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.rename = op_rename;
  ops.link = op_link;
}

}  // namespace sluice::fuse
