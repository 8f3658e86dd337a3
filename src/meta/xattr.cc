// Extended attributes (A<ino>X<name> keys), with the name, size and namespace rules of
// Linux (fs/xattr.c, xattr_permission):
//   - a name is 1..255 bytes (else ERANGE), a value at most 64 KiB (else E2BIG);
//   - "user.": read needs R, write needs W on the inode; only regular files and
//     directories carry them (others: EPERM to write, ENODATA to read); on a sticky
//     directory only the owner or root may write;
//   - "trusted.": root only (others: EPERM to write, ENODATA to read, hidden from list);
//   - "security.": anyone reads, only root writes (the capability rule of the LSM);
//   - "system." (POSIX ACLs, not yet implemented) and unknown prefixes: EOPNOTSUPP;
//   - a bare prefix such as "user." is EINVAL.
// Setting or removing an attribute updates ctime.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/clock.h"
#include "meta/internal.h"
#include "meta/keys.h"
#include "meta/meta.h"

namespace sluice::meta {

namespace {

enum class Ns { kUser, kTrusted, kSecurity };

bool is_root(const Context& ctx) { return !ctx.check_permission || ctx.uid == 0; }

Result<Ns> classify(std::string_view name) {
  if (name.empty() || name.size() > kMaxXattrName) {
    return Status(Code::kRange,
                  "xattr name must be 1 to " + std::to_string(kMaxXattrName) + " bytes");
  }
  struct Prefix {
    std::string_view prefix;
    Ns ns;
  };
  static constexpr Prefix kKnown[] = {
      {"user.", Ns::kUser}, {"trusted.", Ns::kTrusted}, {"security.", Ns::kSecurity}};
  for (const Prefix& p : kKnown) {
    if (name.substr(0, p.prefix.size()) != p.prefix) continue;
    if (name.size() == p.prefix.size()) {
      return Status(Code::kInvalid, "xattr name '" + std::string(name) + "' has no suffix");
    }
    return p.ns;
  }
  if (name.substr(0, 7) == "system.") {
    return Status(Code::kNotSupported, "system.* xattrs (POSIX ACLs) are not supported");
  }
  return Status(Code::kNotSupported, "unsupported xattr namespace in '" + std::string(name) + "'");
}

Status check_xattr_access(const Context& ctx, const Attr& a, Ns ns, bool write) {
  switch (ns) {
    case Ns::kTrusted:
      if (is_root(ctx)) return Status::OK();
      if (write) return Status(Code::kPermission, "trusted.* xattrs need root");
      return Status(Code::kNoAttr, "no such attribute");
    case Ns::kSecurity:
      if (write && !is_root(ctx)) return Status(Code::kPermission, "security.* xattrs need root");
      return Status::OK();
    case Ns::kUser:
      if (!a.is_file() && !a.is_dir()) {
        if (write) {
          return Status(Code::kPermission, "user.* xattrs only on regular files and directories");
        }
        return Status(Code::kNoAttr, "no such attribute");
      }
      if (write && a.is_dir() && (a.mode & S_ISVTX) && !internal::is_owner(ctx, a)) {
        return Status(Code::kPermission, "sticky directory: only its owner may set user.* xattrs");
      }
      return internal::check_access(ctx, a, write ? W_OK : R_OK);
  }
  return Status(Code::kInternal, "unknown xattr namespace");
}

}  // namespace

Result<std::string> Meta::getxattr(const Context& ctx, Ino ino, std::string_view name) {
  ASSIGN_OR_RETURN(Ns ns, classify(name));
  std::string out;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
    RETURN_IF_ERROR(check_xattr_access(ctx, a, ns, /*write=*/false));
    ASSIGN_OR_RETURN(auto v, txn.get(keys::xattr(ino, name)));
    if (!v) return Status(Code::kNoAttr, "no attribute '" + std::string(name) + "'");
    out = std::move(*v);
    return Status::OK();
  }));
  return out;
}

Result<std::vector<std::string>> Meta::listxattr(const Context& ctx, Ino ino) {
  std::vector<std::string> out;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    out.clear();
    RETURN_IF_ERROR(internal::load_attr(txn, ino).status());
    const std::string prefix = keys::xattr_prefix(ino);
    ASSIGN_OR_RETURN(auto kvs, txn.scan(prefix, keys::prefix_end(prefix)));
    for (const auto& kv : kvs) {
      std::string name = kv.key.substr(prefix.size());
      if (name.starts_with("trusted.") && !is_root(ctx)) continue;
      out.push_back(std::move(name));
    }
    return Status::OK();
  }));
  return out;
}

Status Meta::setxattr(const Context& ctx, Ino ino, std::string_view name, std::string_view value,
                      int flags) {
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return Status(Code::kInvalid, "bad xattr flags");
  ASSIGN_OR_RETURN(Ns ns, classify(name));
  if (value.size() > kMaxXattrValue) {
    return Status(Code::kTooBig,
                  "xattr value larger than " + std::to_string(kMaxXattrValue) + " bytes");
  }
  return engine_->transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
    RETURN_IF_ERROR(check_xattr_access(ctx, a, ns, /*write=*/true));
    const std::string key = keys::xattr(ino, name);
    ASSIGN_OR_RETURN(auto old, txn.get(key));
    if (old && (flags & XATTR_CREATE)) {
      return Status(Code::kExists, "attribute '" + std::string(name) + "' exists");
    }
    if (!old && (flags & XATTR_REPLACE)) {
      return Status(Code::kNoAttr, "no attribute '" + std::string(name) + "'");
    }
    RETURN_IF_ERROR(txn.put(key, value));
    a.ctime_ns = now_ns();
    return internal::save_attr(txn, ino, a);
  });
}

Status Meta::removexattr(const Context& ctx, Ino ino, std::string_view name) {
  ASSIGN_OR_RETURN(Ns ns, classify(name));
  return engine_->transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
    RETURN_IF_ERROR(check_xattr_access(ctx, a, ns, /*write=*/true));
    const std::string key = keys::xattr(ino, name);
    ASSIGN_OR_RETURN(auto old, txn.get(key));
    if (!old) return Status(Code::kNoAttr, "no attribute '" + std::string(name) + "'");
    RETURN_IF_ERROR(txn.del(key));
    a.ctime_ns = now_ns();
    return internal::save_attr(txn, ino, a);
  });
}

}  // namespace sluice::meta
