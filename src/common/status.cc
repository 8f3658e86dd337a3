// Status helpers and the single code -> errno mapping.
#include "common/status.h"

#include <cerrno>

namespace sluice {

int to_errno(Code code) {
  switch (code) {
    case Code::kOk: return 0;
    case Code::kNotFound: return ENOENT;
    case Code::kExists: return EEXIST;
    case Code::kNotEmpty: return ENOTEMPTY;
    case Code::kNotDir: return ENOTDIR;
    case Code::kIsDir: return EISDIR;
    case Code::kPermission: return EPERM;
    case Code::kAccess: return EACCES;
    case Code::kInvalid: return EINVAL;
    case Code::kNameTooLong: return ENAMETOOLONG;
    case Code::kLoop: return ELOOP;
    case Code::kNoSpace: return ENOSPC;
    case Code::kQuota: return EDQUOT;
    case Code::kNoAttr: return ENODATA;
    case Code::kRange: return ERANGE;
    case Code::kTooBig: return E2BIG;
    case Code::kTooManyLinks: return EMLINK;
    case Code::kCrossDevice: return EXDEV;
    case Code::kBusy: return EBUSY;
    case Code::kAgain: return EAGAIN;
    case Code::kDeadlock: return EDEADLK;
    case Code::kBadFd: return EBADF;
    case Code::kNotSupported: return EOPNOTSUPP;
    case Code::kFileTooBig: return EFBIG;
    case Code::kReadOnly: return EROFS;
    case Code::kTimeout: return ETIMEDOUT;
    case Code::kInterrupted: return EINTR;
    case Code::kConflict:
    case Code::kIO:
    case Code::kCorruption:
    case Code::kUnavailable:
    case Code::kInternal: return EIO;
  }
  return EIO;
}

Status Status::FromErrno(int err, std::string msg) {
  Code c = Code::kIO;
  switch (err) {
    case 0: return {};
    case ENOENT: c = Code::kNotFound; break;
    case EEXIST: c = Code::kExists; break;
    case ENOTEMPTY: c = Code::kNotEmpty; break;
    case ENOTDIR: c = Code::kNotDir; break;
    case EISDIR: c = Code::kIsDir; break;
    case EPERM: c = Code::kPermission; break;
    case EACCES: c = Code::kAccess; break;
    case EINVAL: c = Code::kInvalid; break;
    case ENAMETOOLONG: c = Code::kNameTooLong; break;
    case ELOOP: c = Code::kLoop; break;
    case ENOSPC: c = Code::kNoSpace; break;
    case EDQUOT: c = Code::kQuota; break;
    case ENODATA: c = Code::kNoAttr; break;
    case ERANGE: c = Code::kRange; break;
    case E2BIG: c = Code::kTooBig; break;
    case EMLINK: c = Code::kTooManyLinks; break;
    case EXDEV: c = Code::kCrossDevice; break;
    case EBUSY: c = Code::kBusy; break;
    case EAGAIN: c = Code::kAgain; break;
    case EDEADLK: c = Code::kDeadlock; break;
    case EBADF: c = Code::kBadFd; break;
    case EOPNOTSUPP: c = Code::kNotSupported; break;
    case EFBIG: c = Code::kFileTooBig; break;
    case EROFS: c = Code::kReadOnly; break;
    case ETIMEDOUT: c = Code::kTimeout; break;
    case EINTR: c = Code::kInterrupted; break;
    default: c = Code::kIO; break;
  }
  return {c, std::move(msg)};
}

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not found";
    case Code::kExists: return "already exists";
    case Code::kNotEmpty: return "not empty";
    case Code::kNotDir: return "not a directory";
    case Code::kIsDir: return "is a directory";
    case Code::kPermission: return "operation not permitted";
    case Code::kAccess: return "permission denied";
    case Code::kInvalid: return "invalid argument";
    case Code::kNameTooLong: return "name too long";
    case Code::kLoop: return "too many levels of symbolic links";
    case Code::kNoSpace: return "no space left";
    case Code::kQuota: return "quota exceeded";
    case Code::kNoAttr: return "no such attribute";
    case Code::kRange: return "result too large";
    case Code::kTooBig: return "argument too big";
    case Code::kTooManyLinks: return "too many links";
    case Code::kCrossDevice: return "cross-device link";
    case Code::kBusy: return "busy";
    case Code::kAgain: return "try again";
    case Code::kDeadlock: return "deadlock";
    case Code::kBadFd: return "bad file handle";
    case Code::kNotSupported: return "not supported";
    case Code::kFileTooBig: return "file too big";
    case Code::kReadOnly: return "read-only";
    case Code::kConflict: return "transaction conflict";
    case Code::kIO: return "I/O error";
    case Code::kCorruption: return "corruption";
    case Code::kUnavailable: return "unavailable";
    case Code::kTimeout: return "timed out";
    case Code::kInterrupted: return "interrupted";
    case Code::kInternal: return "internal error";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  if (msg_.empty()) return code_name(code_);
  return msg_;
}

}  // namespace sluice
