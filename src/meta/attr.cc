// getattr, setattr and access: the attribute half of the meta layer.
//
// setattr follows Linux (fs/attr.c setattr_prepare and notify_change, fs/open.c
// chown_common and do_truncate, fs/utimes.c): who may chmod, chown, chgrp, set times or
// truncate, which errno a refusal gets, and when suid/sgid bits are cleared.
#include <sys/stat.h>

#include "common/clock.h"
#include "meta/internal.h"
#include "meta/keys.h"

namespace sluice::meta {

namespace {

constexpr int kWrite = 2;  // W_OK
// Chunk indexes are 32-bit, which bounds a file's size (EFBIG past it).
constexpr uint64_t kMaxFileSize = (uint64_t{1} << 32) * kChunkSize;

// Linux setattr_should_drop_sgid: S_ISGID is dropped when group-exec is set (a real
// setgid executable), or when the caller is not in the file's group and not root.
bool should_drop_sgid(const Context& ctx, const Attr& a) {
  if (!(a.mode & S_ISGID)) return false;
  if (a.mode & S_IXGRP) return true;
  return ctx.check_permission && ctx.uid != 0 && !ctx.in_group(a.gid);
}

// Ownership checks (EPERM) for chown, chgrp, chmod and explicit times, and the
// write-access check (EACCES) for touching times to "now".
Status check_setattr(const Context& ctx, const Attr& a, const SetAttr& req) {
  const bool owner = internal::is_owner(ctx, a);
  const bool privileged = !ctx.check_permission || ctx.uid == 0;
  if ((req.mask & kSetUid) && !privileged && !(owner && req.uid == a.uid)) {
    return Status(Code::kPermission, "operation not permitted: only root may change the owner");
  }
  if ((req.mask & kSetGid) && !privileged &&
      !(owner && (req.gid == a.gid || ctx.in_group(req.gid)))) {
    return Status(Code::kPermission,
                  "operation not permitted: the owner may only change the group to one "
                  "they are in");
  }
  if ((req.mask & kSetMode) && !owner) {
    // Through FUSE, a write or truncate by a non-owner reaches us as a chmod that only
    // drops S_ISUID/S_ISGID (the kernel's file_remove_privs). Linux lets anyone who may
    // write the file do that, so such a chmod is allowed with write access; any other
    // chmod by a non-owner is refused.
    const uint16_t dropped = a.mode & ~req.mode;
    const bool only_kills_priv = (req.mode & ~a.mode) == 0 && dropped != 0 &&
                                 (dropped & ~(S_ISUID | S_ISGID)) == 0;
    if (!only_kills_priv || !internal::check_access(ctx, a, kWrite).ok()) {
      return Status(Code::kPermission, "operation not permitted: only the owner may chmod");
    }
  }
  if ((req.mask & (kSetAtime | kSetMtime)) && !owner) {
    return Status(Code::kPermission,
                  "operation not permitted: only the owner may set explicit times");
  }
  if ((req.mask & (kSetAtimeNow | kSetMtimeNow)) && !owner) {
    RETURN_IF_ERROR(internal::check_access(ctx, a, kWrite));
  }
  return Status::OK();
}

// Truncation: type and access checks, the space counter and the capacity limit, and
// dropping the data past the new end. Sets size, mtime and ctime in `a`.
Status apply_size(Meta& m, kv::Txn& txn, const Context& ctx, Ino ino, Attr& a, uint64_t size,
                  int64_t now) {
  if (a.is_dir()) return Status(Code::kIsDir, "cannot truncate a directory");
  if (!a.is_file()) return Status(Code::kInvalid, "only regular files can be truncated");
  RETURN_IF_ERROR(internal::check_access(ctx, a, kWrite));
  if (size > kMaxFileSize) return Status(Code::kFileTooBig, "file size past the limit");
  int64_t delta = static_cast<int64_t>(internal::space_of(size)) -
                  static_cast<int64_t>(internal::space_of(a.size));
  if (delta > 0 && m.format().capacity > 0) {
    ASSIGN_OR_RETURN(int64_t used, internal::get_counter(txn, keys::kUsedSpace));
    if (static_cast<uint64_t>(used + delta) > m.format().capacity) {
      return Status(Code::kNoSpace, "volume capacity reached");
    }
  }
  RETURN_IF_ERROR(internal::add_counter(txn, keys::kUsedSpace, delta));
  if (size < a.size) RETURN_IF_ERROR(internal::truncate_data(txn, ino, a.size, size));
  a.size = size;
  a.mtime_ns = now;
  a.ctime_ns = now;
  return Status::OK();
}

}  // namespace

Result<Attr> Meta::getattr(Ino ino) {
  Attr out;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(out, internal::load_attr(txn, ino));
    return Status::OK();
  }));
  return out;
}

Status Meta::access(const Context& ctx, Ino ino, int mask) {
  return engine_->read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
    return internal::check_access(ctx, a, mask);
  });
}

Result<Attr> Meta::setattr(const Context& ctx, Ino ino, const SetAttr& req) {
  Attr out;
  RETURN_IF_ERROR(engine_->transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
    if (req.mask == 0) {
      out = a;
      return Status::OK();
    }
    const int64_t now = now_ns();
    if (req.mask & kSetSize) RETURN_IF_ERROR(apply_size(*this, txn, ctx, ino, a, req.size, now));
    RETURN_IF_ERROR(check_setattr(ctx, a, req));

    if (req.mask & kSetMode) {
      a.mode = req.mode & 07777;
      // Linux: a caller outside the (new) group cannot set the setgid bit.
      uint32_t gid = (req.mask & kSetGid) ? req.gid : a.gid;
      if (ctx.check_permission && ctx.uid != 0 && !ctx.in_group(gid)) a.mode &= ~S_ISGID;
    }
    if ((req.mask & (kSetUid | kSetGid)) && !(req.mask & kSetMode) && !a.is_dir()) {
      // chown_common: ATTR_KILL_SUID, and ATTR_KILL_SGID as setattr_should_drop_sgid says.
      // (Linux never combines these with an explicit mode, which then wins.)
      bool drop_sgid = should_drop_sgid(ctx, a);
      a.mode &= ~S_ISUID;
      if (drop_sgid) a.mode &= ~S_ISGID;
    }
    if (req.mask & kSetUid) a.uid = req.uid;
    if (req.mask & kSetGid) a.gid = req.gid;
    if (req.mask & kKillSuid) {
      a.mode &= ~S_ISUID;
      if (a.mode & S_IXGRP) a.mode &= ~S_ISGID;
    }
    if (req.mask & kSetAtime) a.atime_ns = req.atime_ns;
    if (req.mask & kSetAtimeNow) a.atime_ns = now;
    if (req.mask & kSetMtime) a.mtime_ns = req.mtime_ns;
    if (req.mask & kSetMtimeNow) a.mtime_ns = now;
    a.ctime_ns = (req.mask & kSetCtime) ? req.ctime_ns : now;
    RETURN_IF_ERROR(internal::save_attr(txn, ino, a));
    out = a;
    return Status::OK();
  }));
  return out;
}

}  // namespace sluice::meta
