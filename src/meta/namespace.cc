// Namespace operations: lookup, mknod, mkdir, symlink, readlink, unlink, rmdir, link
// and readdir, each one kv transaction.
//
// Checks run in the order Linux runs them (fs/namei.c: path walk, filename_create,
// may_create, may_delete), so that a call failing for several reasons returns the same
// errno as on a local file system.
#include <sys/stat.h>

#include "common/clock.h"
#include "meta/internal.h"
#include "meta/keys.h"

namespace sluice::meta {

namespace {

constexpr int kExec = 1;   // X_OK
constexpr int kWrite = 2;  // W_OK
constexpr int kRead = 4;   // R_OK

// What a create call asks for; create_node fills in ownership, times and links.
struct NewNode {
  FileType type = FileType::kRegular;
  uint16_t mode = 0;
  uint32_t rdev = 0;
  std::string_view target;  // symlinks only
};

// The parent directory and the entry name a lookup or create resolves: kNotFound,
// kNotDir, then EACCES without search permission (the path walk), then the name.
Result<Attr> walk_to(kv::Txn& txn, const Context& ctx, Ino parent) {
  ASSIGN_OR_RETURN(Attr p, internal::load_dir(txn, parent));
  RETURN_IF_ERROR(internal::check_access(ctx, p, kExec));
  return p;
}

// Linux may_create after the name was found free: a removed directory is ENOENT, then
// write and search permission on it.
Status may_create(const Context& ctx, const Attr& dir) {
  if (dir.nlink == 0) return Status(Code::kNotFound, "directory was removed");
  return internal::check_access(ctx, dir, kWrite | kExec);
}

// Linux inode_init_owner and vfs_prepare_mode: owner, group (from a setgid parent),
// setgid stripping and umask.
void init_owner(const Context& ctx, const Attr& dir, Attr& a) {
  a.uid = ctx.uid;
  const bool sgid_dir = dir.mode & S_ISGID;
  a.gid = sgid_dir ? dir.gid : ctx.gid;
  if (a.type == FileType::kSymlink) return;  // always 0777, umask does not apply
  if (!a.is_dir() && sgid_dir && (a.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) &&
      ctx.check_permission && ctx.uid != 0 && !ctx.in_group(dir.gid)) {
    a.mode &= ~S_ISGID;
  }
  a.mode &= ~(ctx.umask & 0777);
  if (a.is_dir() && sgid_dir) a.mode |= S_ISGID;
}

Result<Entry> create_node(Meta& m, kv::Engine& engine, const Context& ctx, Ino parent,
                          std::string_view name, const NewNode& node) {
  ASSIGN_OR_RETURN(Ino ino, m.next_inode());
  Entry out;
  RETURN_IF_ERROR(engine.transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr dir, walk_to(txn, ctx, parent));
    RETURN_IF_ERROR(internal::check_name(name));
    ASSIGN_OR_RETURN(auto existing, internal::get_dentry(txn, parent, name));
    if (existing) return Status(Code::kExists, "'" + std::string(name) + "' exists");
    RETURN_IF_ERROR(may_create(ctx, dir));
    const bool is_dev = node.type == FileType::kCharDev || node.type == FileType::kBlockDev;
    if (is_dev && ctx.check_permission && ctx.uid != 0) {
      return Status(Code::kPermission, "only root may create device nodes");
    }
    const bool is_dir = node.type == FileType::kDirectory;
    if (is_dir && dir.nlink >= kMaxLinks) {
      return Status(Code::kTooManyLinks, "too many subdirectories");
    }
    if (m.format().inodes > 0) {
      ASSIGN_OR_RETURN(int64_t used, internal::get_counter(txn, keys::kUsedInodes));
      if (static_cast<uint64_t>(used) >= m.format().inodes) {
        return Status(Code::kNoSpace, "volume inode limit reached");
      }
    }

    const int64_t now = now_ns();
    Attr a;
    a.type = node.type;
    a.mode = node.mode;
    a.rdev = is_dev ? node.rdev : 0;
    a.atime_ns = a.mtime_ns = a.ctime_ns = now;
    init_owner(ctx, dir, a);
    if (is_dir) {
      a.nlink = 2;
      a.size = 4096;
      a.parent = parent;
      dir.nlink++;
    } else if (node.type == FileType::kSymlink) {
      a.size = node.target.size();
      RETURN_IF_ERROR(txn.put(keys::symlink(ino), node.target));
    }
    RETURN_IF_ERROR(internal::save_attr(txn, ino, a));
    RETURN_IF_ERROR(txn.put(keys::dentry(parent, name), encode_dentry(a.type, ino)));
    dir.mtime_ns = dir.ctime_ns = now;
    RETURN_IF_ERROR(internal::save_attr(txn, parent, dir));
    RETURN_IF_ERROR(internal::add_counter(txn, keys::kUsedInodes, 1));
    out = Entry{ino, a};
    return Status::OK();
  }));
  return out;
}

}  // namespace

namespace internal {

Result<Attr> load_dir(kv::Txn& txn, Ino ino) {
  ASSIGN_OR_RETURN(Attr a, load_attr(txn, ino));
  if (!a.is_dir())
    return Status(Code::kNotDir, "inode " + std::to_string(ino) + " is not a directory");
  return a;
}

Result<std::optional<std::pair<FileType, Ino>>> get_dentry(kv::Txn& txn, Ino parent,
                                                           std::string_view name) {
  ASSIGN_OR_RETURN(auto v, txn.get(keys::dentry(parent, name)));
  if (!v) return std::optional<std::pair<FileType, Ino>>();
  ASSIGN_OR_RETURN(auto d, decode_dentry(*v));
  return std::optional<std::pair<FileType, Ino>>(d);
}

Result<bool> dir_is_empty(kv::Txn& txn, Ino ino) {
  std::string prefix = keys::dentry_prefix(ino);
  ASSIGN_OR_RETURN(auto kvs, txn.scan(prefix, keys::prefix_end(prefix), 1));
  return kvs.empty();
}

}  // namespace internal

Result<Entry> Meta::lookup(const Context& ctx, Ino parent, std::string_view name) {
  Entry out;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr dir, walk_to(txn, ctx, parent));
    Ino ino = 0;
    if (name == ".") {
      ino = parent;
    } else if (name == "..") {
      ino = dir.parent;
    } else {
      RETURN_IF_ERROR(internal::check_name(name));
      ASSIGN_OR_RETURN(auto d, internal::get_dentry(txn, parent, name));
      if (!d) return Status(Code::kNotFound, "no entry '" + std::string(name) + "'");
      ino = d->second;
    }
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
    out = Entry{ino, a};
    return Status::OK();
  }));
  return out;
}

Result<Entry> Meta::mknod(const Context& ctx, Ino parent, std::string_view name, FileType type,
                          uint16_t mode, uint32_t rdev) {
  if (type == FileType::kDirectory) {
    return Status(Code::kPermission, "mknod cannot create directories (use mkdir)");
  }
  if (type == FileType::kSymlink) {
    return Status(Code::kInvalid, "mknod cannot create symlinks (use symlink)");
  }
  return create_node(*this, *engine_, ctx, parent, name,
                     NewNode{type, static_cast<uint16_t>(mode & 07777), rdev, {}});
}

Result<Entry> Meta::mkdir(const Context& ctx, Ino parent, std::string_view name, uint16_t mode) {
  return create_node(*this, *engine_, ctx, parent, name,
                     NewNode{FileType::kDirectory, static_cast<uint16_t>(mode & 01777), 0, {}});
}

Result<Entry> Meta::symlink(const Context& ctx, Ino parent, std::string_view name,
                            std::string_view target) {
  if (target.empty()) return Status(Code::kNotFound, "empty symlink target");
  if (target.size() > kMaxSymlink) {
    return Status(Code::kNameTooLong,
                  "symlink target longer than " + std::to_string(kMaxSymlink) + " bytes");
  }
  return create_node(*this, *engine_, ctx, parent, name,
                     NewNode{FileType::kSymlink, 0777, 0, target});
}

Result<std::string> Meta::readlink(const Context& ctx, Ino ino) {
  std::string out;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
    if (a.type != FileType::kSymlink) return Status(Code::kInvalid, "not a symbolic link");
    ASSIGN_OR_RETURN(auto v, txn.get(keys::symlink(ino)));
    if (!v) return Status(Code::kCorruption, "symlink " + std::to_string(ino) + " has no target");
    out = std::move(*v);
    return Status::OK();
  }));
  return out;
}

Status Meta::unlink(const Context& ctx, Ino parent, std::string_view name) {
  return engine_->transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr dir, walk_to(txn, ctx, parent));
    if (name == "." || name == "..") return Status(Code::kIsDir, "cannot unlink a directory");
    RETURN_IF_ERROR(internal::check_name(name));
    ASSIGN_OR_RETURN(auto d, internal::get_dentry(txn, parent, name));
    if (!d) return Status(Code::kNotFound, "no entry '" + std::string(name) + "'");
    RETURN_IF_ERROR(internal::check_access(ctx, dir, kWrite | kExec));
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, d->second));
    RETURN_IF_ERROR(internal::check_sticky(ctx, dir, a));
    if (a.is_dir()) return Status(Code::kIsDir, "'" + std::string(name) + "' is a directory");

    const int64_t now = now_ns();
    RETURN_IF_ERROR(txn.del(keys::dentry(parent, name)));
    dir.mtime_ns = dir.ctime_ns = now;
    RETURN_IF_ERROR(internal::save_attr(txn, parent, dir));
    a.nlink--;
    a.ctime_ns = now;
    if (a.nlink == 0) return internal::drop_inode(*this, txn, d->second, a);
    return internal::save_attr(txn, d->second, a);
  });
}

Status Meta::rmdir(const Context& ctx, Ino parent, std::string_view name) {
  return engine_->transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr dir, walk_to(txn, ctx, parent));
    if (name == ".") return Status(Code::kInvalid, "cannot remove '.'");
    if (name == "..") return Status(Code::kNotEmpty, "cannot remove '..'");
    RETURN_IF_ERROR(internal::check_name(name));
    ASSIGN_OR_RETURN(auto d, internal::get_dentry(txn, parent, name));
    if (!d) return Status(Code::kNotFound, "no entry '" + std::string(name) + "'");
    RETURN_IF_ERROR(internal::check_access(ctx, dir, kWrite | kExec));
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, d->second));
    RETURN_IF_ERROR(internal::check_sticky(ctx, dir, a));
    if (!a.is_dir()) return Status(Code::kNotDir, "'" + std::string(name) + "' is not a directory");
    ASSIGN_OR_RETURN(bool empty, internal::dir_is_empty(txn, d->second));
    if (!empty)
      return Status(Code::kNotEmpty, "directory '" + std::string(name) + "' is not empty");

    const int64_t now = now_ns();
    RETURN_IF_ERROR(txn.del(keys::dentry(parent, name)));
    dir.nlink--;
    dir.mtime_ns = dir.ctime_ns = now;
    RETURN_IF_ERROR(internal::save_attr(txn, parent, dir));
    a.nlink = 0;
    a.ctime_ns = now;
    return internal::drop_inode(*this, txn, d->second, a);
  });
}

Result<Entry> Meta::link(const Context& ctx, Ino ino, Ino new_parent, std::string_view new_name) {
  Entry out;
  RETURN_IF_ERROR(engine_->transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
    ASSIGN_OR_RETURN(Attr dir, walk_to(txn, ctx, new_parent));
    RETURN_IF_ERROR(internal::check_name(new_name));
    ASSIGN_OR_RETURN(auto existing, internal::get_dentry(txn, new_parent, new_name));
    if (existing) return Status(Code::kExists, "'" + std::string(new_name) + "' exists");
    RETURN_IF_ERROR(may_create(ctx, dir));
    if (a.is_dir()) return Status(Code::kPermission, "cannot hard-link a directory");
    if (a.nlink == 0) return Status(Code::kNotFound, "file was removed");
    if (a.nlink >= kMaxLinks) return Status(Code::kTooManyLinks, "too many links");

    const int64_t now = now_ns();
    RETURN_IF_ERROR(txn.put(keys::dentry(new_parent, new_name), encode_dentry(a.type, ino)));
    dir.mtime_ns = dir.ctime_ns = now;
    RETURN_IF_ERROR(internal::save_attr(txn, new_parent, dir));
    a.nlink++;
    a.ctime_ns = now;
    RETURN_IF_ERROR(internal::save_attr(txn, ino, a));
    out = Entry{ino, a};
    return Status::OK();
  }));
  return out;
}

Result<std::vector<DirEntry>> Meta::readdir(const Context& ctx, Ino ino, bool plus) {
  std::vector<DirEntry> out;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    out.clear();
    ASSIGN_OR_RETURN(Attr dir, internal::load_dir(txn, ino));
    RETURN_IF_ERROR(internal::check_access(ctx, dir, kRead));
    const std::string prefix = keys::dentry_prefix(ino);
    ASSIGN_OR_RETURN(auto kvs, txn.scan(prefix, keys::prefix_end(prefix)));
    out.reserve(kvs.size());
    for (auto& item : kvs) {
      ASSIGN_OR_RETURN(auto d, decode_dentry(item.value));
      out.push_back(DirEntry{item.key.substr(prefix.size()), d.second, d.first, std::nullopt});
    }
    if (!plus) return Status::OK();
    std::vector<std::string> attr_keys;
    attr_keys.reserve(out.size());
    for (auto& e : out) attr_keys.push_back(keys::attr(e.ino));
    ASSIGN_OR_RETURN(auto attrs, txn.multi_get(attr_keys));
    for (size_t i = 0; i < out.size(); i++) {
      if (!attrs[i]) continue;  // a dangling entry (for fsck to repair) keeps attr empty
      ASSIGN_OR_RETURN(out[i].attr, decode_attr(*attrs[i]));
    }
    return Status::OK();
  }));
  return out;
}

}  // namespace sluice::meta
