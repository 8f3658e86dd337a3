// Status and Result<T>: the one error type every layer returns.
//
// A Status is a code plus a human message. Codes are file-system flavoured so that
// meta and vfs can return exactly the errno Linux would (to_errno() is the single
// mapping). "Retryable" (a kv conflict, a transient store error) is a property of the
// code, not of the message text.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sluice {

enum class Code : int {
  kOk = 0,
  kNotFound,      // ENOENT
  kExists,        // EEXIST
  kNotEmpty,      // ENOTEMPTY
  kNotDir,        // ENOTDIR
  kIsDir,         // EISDIR
  kPermission,    // EPERM: operation not permitted (ownership rules)
  kAccess,        // EACCES: mode bits deny access
  kInvalid,       // EINVAL
  kNameTooLong,   // ENAMETOOLONG
  kLoop,          // ELOOP
  kNoSpace,       // ENOSPC: capacity or inode limit of the volume
  kQuota,         // EDQUOT
  kNoAttr,        // ENODATA: no such xattr
  kRange,         // ERANGE: buffer too small
  kTooBig,        // E2BIG: argument too big (an xattr value over 64 KiB)
  kTooManyLinks,  // EMLINK
  kCrossDevice,   // EXDEV
  kBusy,          // EBUSY
  kAgain,         // EAGAIN / EWOULDBLOCK: lock held, try later
  kDeadlock,      // EDEADLK
  kBadFd,         // EBADF
  kNotSupported,  // EOPNOTSUPP
  kFileTooBig,    // EFBIG
  kReadOnly,      // EROFS
  kConflict,      // kv transaction conflict: retryable, never reaches a user
  kIO,            // EIO: generic I/O failure
  kCorruption,    // EIO: data failed verification (checksum, truncated object)
  kUnavailable,   // EIO: a server or store is unreachable (retryable)
  kTimeout,       // ETIMEDOUT
  kInterrupted,   // EINTR
  kInternal,      // EIO: a bug
};

class Status {
 public:
  Status() = default;
  Status(Code code, std::string msg) : code_(code), msg_(std::move(msg)) {}

  static Status OK() { return {}; }
  // Builds a Status from a POSIX errno value (inverse of to_errno where one exists).
  static Status FromErrno(int err, std::string msg);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  bool is(Code c) const { return code_ == c; }
  // Worth retrying the same request: kv conflicts and transient outages.
  bool retryable() const {
    return code_ == Code::kConflict || code_ == Code::kUnavailable || code_ == Code::kTimeout;
  }
  // "code: message", for logs and one-line CLI errors.
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string msg_;
};

// The single place status codes become errno values.
int to_errno(Code code);
inline int to_errno(const Status& s) { return to_errno(s.code()); }
const char* code_name(Code code);

// Result<T>: a value or a non-OK Status. Accessing value() of an error is a bug.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}           // NOLINT: implicit on purpose
  Result(Status status) : v_(std::move(status)) {     // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status");
  }
  Result(Code code, std::string msg) : v_(Status(code, std::move(msg))) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sluice

// Early-return helpers. RETURN_IF_ERROR takes a Status expression;
// ASSIGN_OR_RETURN(lhs, expr) takes a Result<T> expression.
#define SLUICE_CONCAT_INNER(a, b) a##b
#define SLUICE_CONCAT(a, b) SLUICE_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::sluice::Status _st = (expr);             \
    if (!_st.ok()) return _st;                 \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(SLUICE_CONCAT(_res_, __LINE__), lhs, expr)
