// rename(2) and renameat2(2) with RENAME_NOREPLACE and RENAME_EXCHANGE, in one kv
// transaction.
//
// The checks follow Linux do_renameat2, lock_rename and vfs_rename (fs/namei.c) in order,
// so that each refusal carries the errno Linux gives: "." and ".." are EBUSY, a
// directory moved under itself EINVAL, a target that is an ancestor of the source
// ENOTEMPTY (EINVAL when exchanging), hard links of one inode a successful no-op.
#include <sys/stat.h>

#include <set>

#include "common/clock.h"
#include "meta/internal.h"
#include "meta/keys.h"

namespace sluice::meta {

namespace {

constexpr int kExec = 1;   // X_OK
constexpr int kWrite = 2;  // W_OK
// Deeper than any real tree; a longer parent chain means the tree is corrupt.
constexpr int kMaxDepth = 1 << 16;

// The inodes on the path from dir up to the root, dir and root included.
Result<std::set<Ino>> ancestors(kv::Txn& txn, Ino dir) {
  std::set<Ino> out;
  Ino cur = dir;
  for (int i = 0; i < kMaxDepth; i++) {
    out.insert(cur);
    if (cur == kRootIno) return out;
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, cur));
    cur = a.parent;
  }
  return Status(Code::kCorruption, "directory " + std::to_string(dir) + " has no path to the root");
}

// The names Linux refuses before looking anything up: "." and ".." are EBUSY (the target
// EEXIST under RENAME_NOREPLACE), the rest as check_name.
Status check_rename_names(std::string_view name, std::string_view new_name, uint32_t flags) {
  if (name == "." || name == "..") return Status(Code::kBusy, "cannot rename '.' or '..'");
  if (new_name == "." || new_name == "..") {
    if (flags & kRenameNoReplace)
      return Status(Code::kExists, "'" + std::string(new_name) + "' exists");
    return Status(Code::kBusy, "cannot rename over '.' or '..'");
  }
  RETURN_IF_ERROR(internal::check_name(name));
  return internal::check_name(new_name);
}

// The permission half of Linux may_delete, for a rename's source and its target: write
// and search on the directory, then the sticky rule. (Type checks follow in do_rename.)
Status may_delete(const Context& ctx, const Attr& dir, const Attr& victim) {
  RETURN_IF_ERROR(internal::check_access(ctx, dir, kWrite | kExec));
  return internal::check_sticky(ctx, dir, victim);
}

// One side of a rename: the directory, the name, and the inode found there.
struct Side {
  Ino parent = 0;
  Attr dir;
  std::string_view name;
  Ino ino = 0;
  FileType type = FileType::kRegular;
  Attr attr;
};

Status do_rename(Meta& m, kv::Txn& txn, const Context& ctx, Side& src, Side& dst, uint32_t flags) {
  const bool exchange = flags & kRenameExchange;
  const bool same_dir = src.parent == dst.parent;
  ASSIGN_OR_RETURN(src.dir, internal::load_dir(txn, src.parent));
  RETURN_IF_ERROR(internal::check_access(ctx, src.dir, kExec));
  if (same_dir) {
    dst.dir = src.dir;
  } else {
    ASSIGN_OR_RETURN(dst.dir, internal::load_dir(txn, dst.parent));
    RETURN_IF_ERROR(internal::check_access(ctx, dst.dir, kExec));
  }
  RETURN_IF_ERROR(check_rename_names(src.name, dst.name, flags));

  ASSIGN_OR_RETURN(auto s, internal::get_dentry(txn, src.parent, src.name));
  if (!s) return Status(Code::kNotFound, "no entry '" + std::string(src.name) + "'");
  src.type = s->first;
  src.ino = s->second;
  ASSIGN_OR_RETURN(auto d, internal::get_dentry(txn, dst.parent, dst.name));
  if (d && (flags & kRenameNoReplace)) {
    return Status(Code::kExists, "'" + std::string(dst.name) + "' exists");
  }
  if (!d && exchange) return Status(Code::kNotFound, "no entry '" + std::string(dst.name) + "'");
  const bool src_dir = src.type == FileType::kDirectory;
  const bool dst_dir = d && d->first == FileType::kDirectory;

  // lock_rename's trap: neither entry may be an ancestor of the other side's directory.
  if (!same_dir) {
    if (src_dir) {
      ASSIGN_OR_RETURN(auto up, ancestors(txn, dst.parent));
      if (up.count(src.ino)) {
        return Status(Code::kInvalid, "cannot move a directory into itself");
      }
    }
    if (dst_dir) {
      ASSIGN_OR_RETURN(auto up, ancestors(txn, src.parent));
      if (up.count(d->second)) {
        return Status(exchange ? Code::kInvalid : Code::kNotEmpty,
                      "the target is an ancestor of the source");
      }
    }
  }
  if (d && d->second == src.ino) return Status::OK();  // two links to one inode

  ASSIGN_OR_RETURN(src.attr, internal::load_attr(txn, src.ino));
  RETURN_IF_ERROR(may_delete(ctx, src.dir, src.attr));
  if (d) {
    dst.type = d->first;
    dst.ino = d->second;
    ASSIGN_OR_RETURN(dst.attr, internal::load_attr(txn, dst.ino));
    RETURN_IF_ERROR(may_delete(ctx, dst.dir, dst.attr));
    if (!exchange && src_dir && !dst_dir) {
      return Status(Code::kNotDir, "'" + std::string(dst.name) + "' is not a directory");
    }
    if (!exchange && !src_dir && dst_dir) {
      return Status(Code::kIsDir, "'" + std::string(dst.name) + "' is a directory");
    }
  } else {
    if (dst.dir.nlink == 0) return Status(Code::kNotFound, "directory was removed");
    RETURN_IF_ERROR(internal::check_access(ctx, dst.dir, kWrite | kExec));
  }
  if (!same_dir) {
    // The moved directory's ".." changes: that needs write access to it.
    if (src_dir) RETURN_IF_ERROR(internal::check_access(ctx, src.attr, kWrite));
    if (exchange && dst_dir) RETURN_IF_ERROR(internal::check_access(ctx, dst.attr, kWrite));
    if (src_dir && !dst_dir && dst.dir.nlink >= kMaxLinks) {
      return Status(Code::kTooManyLinks, "too many subdirectories");
    }
    if (exchange && dst_dir && !src_dir && src.dir.nlink >= kMaxLinks) {
      return Status(Code::kTooManyLinks, "too many subdirectories");
    }
  }
  if (d && !exchange && dst_dir) {
    ASSIGN_OR_RETURN(bool empty, internal::dir_is_empty(txn, dst.ino));
    if (!empty)
      return Status(Code::kNotEmpty, "directory '" + std::string(dst.name) + "' is not empty");
  }

  // Every check passed: rewrite the entries, then the link counts and times.
  const int64_t now = now_ns();
  RETURN_IF_ERROR(txn.put(keys::dentry(dst.parent, dst.name), encode_dentry(src.type, src.ino)));
  if (exchange) {
    RETURN_IF_ERROR(txn.put(keys::dentry(src.parent, src.name), encode_dentry(dst.type, dst.ino)));
  } else {
    RETURN_IF_ERROR(txn.del(keys::dentry(src.parent, src.name)));
  }
  // Subdirectory counts (each child directory's ".." is a link to its parent).
  int src_links = 0, dst_links = 0;
  if (!same_dir && src_dir) {
    src_links--;
    dst_links++;
    src.attr.parent = dst.parent;
  }
  if (!same_dir && exchange && dst_dir) {
    dst_links--;
    src_links++;
    dst.attr.parent = src.parent;
  }
  src.attr.ctime_ns = now;
  RETURN_IF_ERROR(internal::save_attr(txn, src.ino, src.attr));
  if (d) {
    dst.attr.ctime_ns = now;
    if (exchange) {
      RETURN_IF_ERROR(internal::save_attr(txn, dst.ino, dst.attr));
    } else if (dst_dir) {
      dst_links--;  // the replaced directory's ".." goes away with it
      dst.attr.nlink = 0;
      RETURN_IF_ERROR(internal::drop_inode(m, txn, dst.ino, dst.attr));
    } else if (--dst.attr.nlink == 0) {
      RETURN_IF_ERROR(internal::drop_inode(m, txn, dst.ino, dst.attr));
    } else {
      RETURN_IF_ERROR(internal::save_attr(txn, dst.ino, dst.attr));
    }
  }
  if (same_dir) {
    src.dir.nlink += dst_links;  // both zero unless a directory was replaced
    src.dir.mtime_ns = src.dir.ctime_ns = now;
    return internal::save_attr(txn, src.parent, src.dir);
  }
  src.dir.nlink += src_links;
  dst.dir.nlink += dst_links;
  src.dir.mtime_ns = src.dir.ctime_ns = now;
  dst.dir.mtime_ns = dst.dir.ctime_ns = now;
  RETURN_IF_ERROR(internal::save_attr(txn, src.parent, src.dir));
  return internal::save_attr(txn, dst.parent, dst.dir);
}

}  // namespace

Status Meta::rename(const Context& ctx, Ino parent, std::string_view name, Ino new_parent,
                    std::string_view new_name, uint32_t flags) {
  if ((flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
      (flags & kRenameNoReplace && flags & kRenameExchange)) {
    return Status(Code::kInvalid, "invalid rename flags");
  }
  return engine_->transact([&](kv::Txn& txn) -> Status {
    Side src, dst;
    src.parent = parent;
    src.name = name;
    dst.parent = new_parent;
    dst.name = new_name;
    return do_rename(*this, txn, ctx, src, dst, flags);
  });
}

}  // namespace sluice::meta
