// xattr.cc: get/list/set/remove with the Linux rules for names, sizes, flags and the
// user/trusted/security/system namespaces.
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cerrno>

#include "meta_fixture.h"

namespace sluice::meta {
namespace {

using testing::code;

class XattrTest : public testing::MetaTest {
 protected:
  Status set(Ino ino, std::string_view name, std::string_view value, int flags = 0,
             const Context& ctx = root()) {
    return m().setxattr(ctx, ino, name, value, flags);
  }
};
SLUICE_META_ENGINES(XattrTest);

TEST_P(XattrTest, SetGetListRemove) {
  Entry f = mkfile(kRootIno, "f");
  EXPECT_TRUE(must(m().listxattr(root(), f.ino)).empty());
  must(set(f.ino, "user.b", "2"));
  must(set(f.ino, "user.a", std::string("bin\0ary", 7)));
  must(set(f.ino, "user.empty", ""));
  EXPECT_EQ(must(m().getxattr(root(), f.ino, "user.a")), std::string("bin\0ary", 7));
  EXPECT_EQ(must(m().getxattr(root(), f.ino, "user.empty")), "");
  EXPECT_EQ(must(m().listxattr(root(), f.ino)),
            (std::vector<std::string>{"user.a", "user.b", "user.empty"}));
  must(set(f.ino, "user.b", "22"));
  EXPECT_EQ(must(m().getxattr(root(), f.ino, "user.b")), "22");
  must(m().removexattr(root(), f.ino, "user.b"));
  EXPECT_EQ(code(m().getxattr(root(), f.ino, "user.b")), Code::kNoAttr);
  EXPECT_EQ(code(m().removexattr(root(), f.ino, "user.b")), Code::kNoAttr);
  EXPECT_EQ(must(m().listxattr(root(), f.ino)), (std::vector<std::string>{"user.a", "user.empty"}));
}

TEST_P(XattrTest, AttributesOfOneInodeOnly) {
  Entry f = mkfile(kRootIno, "f");
  Entry g = mkfile(kRootIno, "g");
  must(set(f.ino, "user.x", "1"));
  EXPECT_EQ(code(m().getxattr(root(), g.ino, "user.x")), Code::kNoAttr);
  EXPECT_TRUE(must(m().listxattr(root(), g.ino)).empty());
  EXPECT_EQ(code(m().getxattr(root(), 999999, "user.x")), Code::kNotFound);
  EXPECT_EQ(code(m().listxattr(root(), 999999)), Code::kNotFound);
  EXPECT_EQ(code(set(999999, "user.x", "1")), Code::kNotFound);
}

TEST_P(XattrTest, CreateAndReplaceFlags) {
  Entry f = mkfile(kRootIno, "f");
  EXPECT_EQ(code(set(f.ino, "user.x", "1", XATTR_REPLACE)), Code::kNoAttr);
  must(set(f.ino, "user.x", "1", XATTR_CREATE));
  EXPECT_EQ(code(set(f.ino, "user.x", "2", XATTR_CREATE)), Code::kExists);
  must(set(f.ino, "user.x", "3", XATTR_REPLACE));
  EXPECT_EQ(must(m().getxattr(root(), f.ino, "user.x")), "3");
  EXPECT_EQ(code(set(f.ino, "user.x", "4", 0x100)), Code::kInvalid);
}

TEST_P(XattrTest, SetAndRemoveUpdateCtime) {
  Entry f = mkfile(kRootIno, "f");
  int64_t before = attr(f.ino).ctime_ns;
  must(set(f.ino, "user.x", "1"));
  int64_t after_set = attr(f.ino).ctime_ns;
  EXPECT_GT(after_set, before);
  must(m().removexattr(root(), f.ino, "user.x"));
  EXPECT_GT(attr(f.ino).ctime_ns, after_set);
  EXPECT_EQ(code(set(f.ino, "user.y", "1", XATTR_REPLACE)), Code::kNoAttr);
  EXPECT_GT(attr(f.ino).ctime_ns, after_set) << "unchanged by the failed set";
}

TEST_P(XattrTest, NameAndValueLimits) {
  Entry f = mkfile(kRootIno, "f");
  EXPECT_EQ(code(set(f.ino, "", "v")), Code::kRange);
  std::string longest = "user." + std::string(kMaxXattrName - 5, 'n');
  must(set(f.ino, longest, "v"));
  EXPECT_EQ(must(m().getxattr(root(), f.ino, longest)), "v");
  EXPECT_EQ(code(set(f.ino, longest + "n", "v")), Code::kRange);
  EXPECT_EQ(code(m().getxattr(root(), f.ino, longest + "n")), Code::kRange);
  EXPECT_EQ(code(set(f.ino, "user.", "v")), Code::kInvalid);

  must(set(f.ino, "user.big", std::string(kMaxXattrValue, 'v')));
  EXPECT_EQ(must(m().getxattr(root(), f.ino, "user.big")).size(), kMaxXattrValue);
  Status too_big = set(f.ino, "user.big", std::string(kMaxXattrValue + 1, 'v'));
  EXPECT_EQ(code(too_big), Code::kTooBig);
  EXPECT_EQ(to_errno(too_big), E2BIG);
  EXPECT_EQ(Status::FromErrno(E2BIG, "").code(), Code::kTooBig);
}

TEST_P(XattrTest, UnsupportedNamespaces) {
  Entry f = mkfile(kRootIno, "f");
  EXPECT_EQ(code(set(f.ino, "system.posix_acl_access", "v")), Code::kNotSupported);
  EXPECT_EQ(code(m().getxattr(root(), f.ino, "system.posix_acl_access")), Code::kNotSupported);
  EXPECT_EQ(code(set(f.ino, "other.x", "v")), Code::kNotSupported);
  EXPECT_EQ(code(set(f.ino, "userx", "v")), Code::kNotSupported);
  EXPECT_EQ(code(m().removexattr(root(), f.ino, "os2.x")), Code::kNotSupported);
}

TEST_P(XattrTest, UserNamespaceFollowsModeBits) {
  Entry pub = mkfile(kRootIno, "pub", 0644);
  Entry secret = mkfile(kRootIno, "secret", 0600);
  must(set(pub.ino, "user.x", "1"));
  must(set(secret.ino, "user.x", "1"));
  EXPECT_EQ(must(m().getxattr(user(), pub.ino, "user.x")), "1");
  EXPECT_EQ(code(set(pub.ino, "user.x", "2", 0, user())), Code::kAccess);
  EXPECT_EQ(code(m().removexattr(user(), pub.ino, "user.x")), Code::kAccess);
  EXPECT_EQ(code(m().getxattr(user(), secret.ino, "user.x")), Code::kAccess);
  Entry mine = mkfile(kRootIno, "mine", 0644);
  must(chown(mine.ino, 1000, 1000));
  must(set(mine.ino, "user.x", "1", 0, user()));
  must(m().removexattr(user(), mine.ino, "user.x"));
}

TEST_P(XattrTest, UserNamespaceOnlyOnFilesAndDirectories) {
  Entry fifo = must(m().mknod(root(), kRootIno, "p", FileType::kFifo, 0666, 0));
  EXPECT_EQ(code(set(fifo.ino, "user.x", "1")), Code::kPermission);
  EXPECT_EQ(code(m().getxattr(root(), fifo.ino, "user.x")), Code::kNoAttr);
  Entry d = mkdir(kRootIno, "d", 0777);
  must(set(d.ino, "user.x", "1", 0, user()));
}

TEST_P(XattrTest, StickyDirectoryOnlyOwnerMaySet) {
  Entry d = mkdir(kRootIno, "tmp", 0777);
  must(chmod(d.ino, 01777));
  EXPECT_EQ(code(set(d.ino, "user.x", "1", 0, user())), Code::kPermission);
  must(set(d.ino, "user.x", "1"));
  EXPECT_EQ(must(m().getxattr(user(), d.ino, "user.x")), "1");
  must(chown(d.ino, 1000, 1000));
  must(set(d.ino, "user.x", "2", 0, user()));
}

TEST_P(XattrTest, TrustedNamespaceIsRootOnly) {
  Entry f = mkfile(kRootIno, "f", 0666);
  EXPECT_EQ(code(set(f.ino, "trusted.x", "1", 0, user())), Code::kPermission);
  must(set(f.ino, "trusted.x", "1"));
  must(set(f.ino, "user.y", "2"));
  EXPECT_EQ(must(m().getxattr(root(), f.ino, "trusted.x")), "1");
  EXPECT_EQ(code(m().getxattr(user(), f.ino, "trusted.x")), Code::kNoAttr);
  EXPECT_EQ(code(m().removexattr(user(), f.ino, "trusted.x")), Code::kPermission);
  EXPECT_EQ(must(m().listxattr(user(), f.ino)), (std::vector<std::string>{"user.y"}));
  EXPECT_EQ(must(m().listxattr(root(), f.ino)), (std::vector<std::string>{"trusted.x", "user.y"}));
}

TEST_P(XattrTest, SecurityNamespaceIsReadableByAllWritableByRoot) {
  Entry f = mkfile(kRootIno, "f", 0600);
  EXPECT_EQ(code(set(f.ino, "security.selinux", "ctx", 0, user())), Code::kPermission);
  must(set(f.ino, "security.selinux", "ctx"));
  EXPECT_EQ(must(m().getxattr(user(), f.ino, "security.selinux")), "ctx");
}

}  // namespace
}  // namespace sluice::meta
