// Unit tests of the common layer: Status/Result, errno mapping, encoding, URLs, pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>

#include "common/encoding.h"
#include "common/hash.h"
#include "common/status.h"
#include "common/thread_pool.h"
#include "common/url.h"

namespace sluice {
namespace {

TEST(Status, CodesMapToLinuxErrno) {
  EXPECT_EQ(to_errno(Code::kOk), 0);
  EXPECT_EQ(to_errno(Code::kNotFound), ENOENT);
  EXPECT_EQ(to_errno(Code::kAccess), EACCES);
  EXPECT_EQ(to_errno(Code::kPermission), EPERM);
  EXPECT_EQ(to_errno(Code::kNotEmpty), ENOTEMPTY);
  EXPECT_EQ(to_errno(Code::kCorruption), EIO);
  EXPECT_EQ(to_errno(Code::kConflict), EIO);
}

TEST(Status, FromErrnoRoundTrips) {
  for (int e : {ENOENT, EEXIST, ENOTEMPTY, ENOTDIR, EISDIR, EPERM, EACCES, EINVAL, ENAMETOOLONG,
                ELOOP, ENOSPC, ENODATA, ERANGE, EXDEV, EAGAIN}) {
    Status s = Status::FromErrno(e, "x");
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(to_errno(s), e) << e;
  }
  EXPECT_TRUE(Status::FromErrno(0, "").ok());
}

TEST(Status, RetryableIsAProperty) {
  EXPECT_TRUE(Status(Code::kConflict, "").retryable());
  EXPECT_TRUE(Status(Code::kUnavailable, "").retryable());
  EXPECT_FALSE(Status(Code::kNotFound, "").retryable());
  EXPECT_FALSE(Status(Code::kCorruption, "").retryable());
}

Result<int> half(int v) {
  if (v % 2) return Status(Code::kInvalid, "odd");
  return v / 2;
}

Result<int> quarter(int v) {
  ASSIGN_OR_RETURN(int h, half(v));
  ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

TEST(Result, PropagatesErrors) {
  EXPECT_EQ(*quarter(8), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_EQ(r.status().message(), "odd");
}

TEST(Encoding, BigEndianSortsNumerically) {
  std::string a, b;
  put_u64(a, 255);
  put_u64(b, 256);
  EXPECT_LT(a, b);
  Decoder d(a);
  EXPECT_EQ(d.get_u64(), 255u);
  EXPECT_TRUE(d.ok());
  EXPECT_EQ(d.get_u8(), 0);  // overrun
  EXPECT_FALSE(d.ok());
}

TEST(Url, SplitsSchemeBodyAndQuery) {
  auto u = parse_url("sqlite3:///var/lib/x.db?sync=normal&busy_timeout_ms=10&a=%2F");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "sqlite3");
  EXPECT_EQ(u->body, "/var/lib/x.db");
  EXPECT_EQ(u->param("sync"), "normal");
  EXPECT_EQ(u->param("busy_timeout_ms"), "10");
  EXPECT_EQ(u->param("a"), "/");
  EXPECT_EQ(u->param("missing", "d"), "d");
}

TEST(Url, RejectsMissingScheme) {
  auto u = parse_url("/just/a/path");
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().message().find("/just/a/path"), std::string::npos);
}

TEST(Hash, ChecksumDetectsChanges) {
  std::string s(4096, 'a');
  uint64_t h = checksum64(s);
  s[100] = 'b';
  EXPECT_NE(h, checksum64(s));
}

// Pieces of any sizes, in order, sum to the checksum of the whole (the disk cache checks
// a file through a small buffer this way).
TEST(Hash, ChecksumInPiecesEqualsTheWhole) {
  std::string s;
  for (size_t i = 0; i < 300000; i++) s.push_back(static_cast<char>(i * 7919 % 251));
  for (size_t piece : {size_t{1}, size_t{63}, size_t{4096}, size_t{65536}, s.size()}) {
    Checksum64 c;
    for (size_t at = 0; at < s.size(); at += piece) c.update(std::string_view(s).substr(at, piece));
    EXPECT_EQ(c.value(), checksum64(s)) << piece;
  }
  Checksum64 none;
  EXPECT_EQ(none.value(), checksum64(""));
  Checksum64 changed;
  changed.update(std::string_view(s).substr(0, 1000));
  changed.update("x");
  EXPECT_NE(changed.value(), checksum64(s.substr(0, 1001)));
}

TEST(ThreadPool, RunsEveryTaskBeforeDestruction) {
  std::atomic<int> n{0};
  {
    ThreadPool pool(4);
    for (int i = 0; i < 1000; i++) pool.submit([&] { n++; });
  }
  EXPECT_EQ(n.load(), 1000);
}

}  // namespace
}  // namespace sluice
