// Permission rules (perm.cc): mode-bit access for root, owner, group and others, owner
// checks, entry-name validation and the sticky rule; and Meta::access over both engines.
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "meta/internal.h"
#include "meta_fixture.h"

namespace sluice::meta {
namespace {

using internal::check_access;
using internal::check_name;
using internal::check_sticky;
using internal::is_owner;
using testing::code;
using testing::MetaTest;

Attr file_attr(uint16_t mode, uint32_t uid = 1000, uint32_t gid = 1000) {
  Attr a;
  a.type = FileType::kRegular;
  a.mode = mode;
  a.uid = uid;
  a.gid = gid;
  return a;
}

Attr dir_attr(uint16_t mode, uint32_t uid = 1000, uint32_t gid = 1000) {
  Attr a = file_attr(mode, uid, gid);
  a.type = FileType::kDirectory;
  return a;
}

Context ctx_of(uint32_t uid, uint32_t gid, std::vector<uint32_t> groups = {}) {
  return MetaTest::user(uid, gid, std::move(groups));
}

TEST(Perm, RootReadsAndWritesAnything) {
  Context root = Context::root();
  EXPECT_TRUE(check_access(root, file_attr(0000), R_OK | W_OK).ok());
  EXPECT_TRUE(check_access(root, dir_attr(0000), R_OK | W_OK).ok());
}

TEST(Perm, RootExecutesOnlyWhenSomeExecuteBitIsSet) {
  Context root = Context::root();
  EXPECT_EQ(code(check_access(root, file_attr(0666), X_OK)), Code::kAccess);
  EXPECT_TRUE(check_access(root, file_attr(0100), X_OK).ok());
  EXPECT_TRUE(check_access(root, file_attr(0010), X_OK).ok());
  EXPECT_TRUE(check_access(root, file_attr(0001), X_OK).ok());
  // Directories are always searchable by root.
  EXPECT_TRUE(check_access(root, dir_attr(0000), X_OK).ok());
}

TEST(Perm, OwnerUsesOwnerBitsOnly) {
  Context owner = ctx_of(1000, 1000);
  // Group and others may read, but the owner class decides for the owner.
  EXPECT_EQ(code(check_access(owner, file_attr(0077), R_OK)), Code::kAccess);
  EXPECT_TRUE(check_access(owner, file_attr(0600), R_OK | W_OK).ok());
  EXPECT_EQ(code(check_access(owner, file_attr(0600), X_OK)), Code::kAccess);
  EXPECT_EQ(code(check_access(owner, file_attr(0400), R_OK | W_OK)), Code::kAccess);
}

TEST(Perm, GroupBitsForPrimaryAndSupplementaryGroups) {
  Attr a = file_attr(0640, /*uid=*/1, /*gid=*/2000);
  EXPECT_TRUE(check_access(ctx_of(1000, 2000), a, R_OK).ok());
  EXPECT_TRUE(check_access(ctx_of(1000, 1000, {3000, 2000}), a, R_OK).ok());
  EXPECT_EQ(code(check_access(ctx_of(1000, 2000), a, W_OK)), Code::kAccess);
  // Group class only, even when others would be allowed more.
  EXPECT_EQ(code(check_access(ctx_of(1000, 2000), file_attr(0407, 1, 2000), R_OK)), Code::kAccess);
}

TEST(Perm, OthersBits) {
  Attr a = file_attr(0604, /*uid=*/1, /*gid=*/2000);
  EXPECT_TRUE(check_access(ctx_of(1000, 1000), a, R_OK).ok());
  EXPECT_EQ(code(check_access(ctx_of(1000, 1000), a, W_OK)), Code::kAccess);
  EXPECT_EQ(code(check_access(ctx_of(1000, 1000), a, R_OK | X_OK)), Code::kAccess);
}

TEST(Perm, CheckPermissionFalseAndExistenceOnly) {
  Context c = ctx_of(1000, 1000);
  EXPECT_TRUE(check_access(c, file_attr(0000, 1), F_OK).ok());
  c.check_permission = false;
  EXPECT_TRUE(check_access(c, file_attr(0000, 1), R_OK | W_OK | X_OK).ok());
}

TEST(Perm, IsOwner) {
  Attr a = file_attr(0644, 1000);
  EXPECT_TRUE(is_owner(Context::root(), a));
  EXPECT_TRUE(is_owner(ctx_of(1000, 5), a));
  EXPECT_FALSE(is_owner(ctx_of(1001, 1000), a));
  Context internal_job = ctx_of(1001, 1000);
  internal_job.check_permission = false;
  EXPECT_TRUE(is_owner(internal_job, a));
}

TEST(Perm, CheckName) {
  EXPECT_TRUE(check_name("a").ok());
  EXPECT_TRUE(check_name("...").ok());
  EXPECT_TRUE(check_name(std::string(255, 'x')).ok());
  EXPECT_EQ(code(check_name(std::string(256, 'x'))), Code::kNameTooLong);
  EXPECT_EQ(code(check_name("")), Code::kInvalid);
  EXPECT_EQ(code(check_name(".")), Code::kInvalid);
  EXPECT_EQ(code(check_name("..")), Code::kInvalid);
  EXPECT_EQ(code(check_name("a/b")), Code::kInvalid);
  EXPECT_EQ(code(check_name(std::string("a\0b", 3))), Code::kInvalid);
}

TEST(Perm, StickyDirectory) {
  Attr sticky = dir_attr(01777, /*uid=*/500);
  Attr victim = file_attr(0644, /*uid=*/600);
  EXPECT_TRUE(check_sticky(ctx_of(500, 1), sticky, victim).ok());   // owns the directory
  EXPECT_TRUE(check_sticky(ctx_of(600, 1), sticky, victim).ok());   // owns the entry
  EXPECT_TRUE(check_sticky(Context::root(), sticky, victim).ok());  // root
  EXPECT_EQ(code(check_sticky(ctx_of(700, 1), sticky, victim)), Code::kPermission);
  EXPECT_TRUE(check_sticky(ctx_of(700, 1), dir_attr(0777, 500), victim).ok());  // not sticky
}

class AccessTest : public MetaTest {};
SLUICE_META_ENGINES(AccessTest);

TEST_P(AccessTest, AccessChecksStoredModeBits) {
  Entry f = mkfile(kRootIno, "f", 0640);
  must(chown(f.ino, 1000, 2000));
  EXPECT_TRUE(m().access(user(1000, 1), f.ino, R_OK | W_OK).ok());
  EXPECT_EQ(code(m().access(user(1000, 1), f.ino, X_OK)), Code::kAccess);
  EXPECT_TRUE(m().access(user(1001, 1, {2000}), f.ino, R_OK).ok());
  EXPECT_EQ(code(m().access(user(1001, 1, {2000}), f.ino, W_OK)), Code::kAccess);
  EXPECT_EQ(code(m().access(user(1001, 1), f.ino, R_OK)), Code::kAccess);
  EXPECT_TRUE(m().access(user(1001, 1), f.ino, F_OK).ok());
  EXPECT_TRUE(m().access(root(), f.ino, R_OK | W_OK).ok());
  EXPECT_EQ(code(m().access(root(), f.ino, X_OK)), Code::kAccess);
}

TEST_P(AccessTest, AccessOfMissingInodeIsNotFound) {
  EXPECT_EQ(code(m().access(root(), 987654, F_OK)), Code::kNotFound);
}

}  // namespace
}  // namespace sluice::meta
