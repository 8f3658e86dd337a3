// Linux permission rules shared by the operation files: mode-bit access (EACCES),
// ownership (EPERM), entry-name validation and the sticky-directory rule.
#include <sys/stat.h>

#include "meta/internal.h"

namespace sluice::meta::internal {

namespace {
constexpr int kExec = 1;  // X_OK
constexpr int kRwx = 7;   // R_OK | W_OK | X_OK
}  // namespace

Status check_access(const Context& ctx, const Attr& attr, int mask) {
  mask &= kRwx;
  if (!ctx.check_permission || mask == 0) return Status::OK();
  if (ctx.uid == 0) {
    // CAP_DAC_OVERRIDE: read and write always; execute only if someone may execute.
    if ((mask & kExec) && !attr.is_dir() && (attr.mode & 0111) == 0) {
      return Status(Code::kAccess, "permission denied: no execute bit set");
    }
    return Status::OK();
  }
  int bits;
  if (ctx.uid == attr.uid) {
    bits = (attr.mode >> 6) & kRwx;
  } else if (ctx.in_group(attr.gid)) {
    bits = (attr.mode >> 3) & kRwx;
  } else {
    bits = attr.mode & kRwx;
  }
  if ((mask & ~bits) != 0) return Status(Code::kAccess, "permission denied");
  return Status::OK();
}

bool is_owner(const Context& ctx, const Attr& attr) {
  return !ctx.check_permission || ctx.uid == 0 || ctx.uid == attr.uid;
}

Status check_name(std::string_view name) {
  if (name.empty()) return Status(Code::kInvalid, "empty file name");
  if (name == "." || name == "..") {
    return Status(Code::kInvalid, "'" + std::string(name) + "' is not a valid entry name");
  }
  if (name.size() > kMaxName) {
    return Status(Code::kNameTooLong,
                  "file name longer than " + std::to_string(kMaxName) + " bytes");
  }
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return Status(Code::kInvalid, "file name contains '/' or NUL");
  }
  return Status::OK();
}

Status check_sticky(const Context& ctx, const Attr& dir, const Attr& victim) {
  if (!(dir.mode & S_ISVTX) || !ctx.check_permission || ctx.uid == 0) return Status::OK();
  if (ctx.uid == dir.uid || ctx.uid == victim.uid) return Status::OK();
  return Status(Code::kPermission,
                "operation not permitted: sticky directory, caller owns neither the "
                "directory nor the entry");
}

}  // namespace sluice::meta::internal
