// Namespace operations (namespace.cc): lookup, mknod, mkdir, symlink, readlink, unlink,
// rmdir, link and readdir, with the errno Linux returns for each refusal, ownership and
// setgid inheritance, link counts, limits, and a 100,000-entry directory.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "meta/internal.h"
#include "meta/keys.h"
#include "meta_fixture.h"

namespace sluice::meta {
namespace {

using testing::code;

class NamespaceTest : public testing::MetaTest {
 protected:
  Result<Entry> mknod(const Context& ctx, Ino parent, std::string_view name, uint16_t mode) {
    return m().mknod(ctx, parent, name, FileType::kRegular, mode, 0);
  }
  // Overwrites an inode's stored attributes (to reach states that are slow to build).
  void poke(Ino ino, const std::function<void(Attr&)>& change) {
    must(engine().transact([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
      change(a);
      return internal::save_attr(txn, ino, a);
    }));
  }
  int64_t used_inodes() {
    int64_t v = 0;
    must(engine().read([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(v, internal::get_counter(txn, keys::kUsedInodes));
      return Status::OK();
    }));
    return v;
  }
};
SLUICE_META_ENGINES(NamespaceTest);

// ---- create and lookup ----

TEST_P(NamespaceTest, MknodSetsOwnerModeLinksAndParentTimes) {
  Attr root_before = attr(kRootIno);
  Context c = user(1000, 1001);
  c.umask = 022;
  Entry e = must(mknod(c, kRootIno, "f", 0666));
  EXPECT_GT(e.ino, kRootIno);
  EXPECT_EQ(e.attr.type, FileType::kRegular);
  EXPECT_EQ(e.attr.mode, 0644);
  EXPECT_EQ(e.attr.uid, 1000u);
  EXPECT_EQ(e.attr.gid, 1001u);
  EXPECT_EQ(e.attr.nlink, 1u);
  EXPECT_EQ(e.attr.size, 0u);
  EXPECT_EQ(e.attr.parent, 0u);
  EXPECT_EQ(e.attr.mtime_ns, e.attr.ctime_ns);
  EXPECT_EQ(e.attr.atime_ns, e.attr.ctime_ns);
  Attr r = attr(kRootIno);
  EXPECT_GE(r.mtime_ns, e.attr.mtime_ns);
  EXPECT_GT(r.mtime_ns, root_before.mtime_ns);
  EXPECT_EQ(r.ctime_ns, r.mtime_ns);
  EXPECT_EQ(r.nlink, 2u);  // files do not add links to their directory

  Entry found = must(m().lookup(c, kRootIno, "f"));
  EXPECT_EQ(found.ino, e.ino);
  EXPECT_EQ(found.attr.mode, 0644);
  EXPECT_EQ(attr(e.ino).uid, 1000u);
}

TEST_P(NamespaceTest, MkdirLinksAndParent) {
  Entry d = mkdir(kRootIno, "d", 0750);
  EXPECT_EQ(d.attr.type, FileType::kDirectory);
  EXPECT_EQ(d.attr.nlink, 2u);
  EXPECT_EQ(d.attr.size, 4096u);
  EXPECT_EQ(d.attr.parent, kRootIno);
  EXPECT_EQ(d.attr.mode, 0750);
  EXPECT_EQ(attr(kRootIno).nlink, 3u);
  mkdir(d.ino, "a");
  mkdir(d.ino, "b");
  mkfile(d.ino, "f");
  EXPECT_EQ(attr(d.ino).nlink, 4u);
  EXPECT_EQ(attr(kRootIno).nlink, 3u);
  must(m().rmdir(root(), d.ino, "a"));
  EXPECT_EQ(attr(d.ino).nlink, 3u);
}

TEST_P(NamespaceTest, MkdirTakesOnlyPermissionAndStickyBits) {
  Entry d = mkdir(kRootIno, "d", 07777);
  EXPECT_EQ(d.attr.mode, 01777);
  Entry f = mkfile(kRootIno, "f", 07777);  // mknod keeps suid/sgid (root caller)
  EXPECT_EQ(f.attr.mode, 07777);
}

TEST_P(NamespaceTest, LookupDotDotDotAndMissing) {
  Entry d = mkdir(kRootIno, "d");
  Entry s = mkdir(d.ino, "s");
  EXPECT_EQ(must(m().lookup(root(), s.ino, ".")).ino, s.ino);
  EXPECT_EQ(must(m().lookup(root(), s.ino, "..")).ino, d.ino);
  EXPECT_EQ(must(m().lookup(root(), kRootIno, "..")).ino, kRootIno);
  EXPECT_EQ(code(m().lookup(root(), d.ino, "nope")), Code::kNotFound);
  EXPECT_EQ(code(m().lookup(root(), 999999, "x")), Code::kNotFound);
  Entry f = mkfile(kRootIno, "f");
  EXPECT_EQ(code(m().lookup(root(), f.ino, "x")), Code::kNotDir);
  EXPECT_EQ(code(m().lookup(root(), kRootIno, std::string(256, 'n'))), Code::kNameTooLong);
}

TEST_P(NamespaceTest, LookupNeedsSearchPermission) {
  Entry d = mkdir(kRootIno, "d", 0700);
  mkfile(d.ino, "f");
  EXPECT_EQ(code(m().lookup(user(), d.ino, "f")), Code::kAccess);
  EXPECT_EQ(code(m().lookup(user(), d.ino, "missing")), Code::kAccess);
  must(chmod(d.ino, 0701));  // search without read is enough
  EXPECT_TRUE(m().lookup(user(), d.ino, "f").ok());
  EXPECT_TRUE(m().lookup(root(), d.ino, "f").ok());
}

TEST_P(NamespaceTest, CreateExistingIsExists) {
  mkfile(kRootIno, "x");
  mkdir(kRootIno, "d");
  EXPECT_EQ(code(mknod(root(), kRootIno, "x", 0644)), Code::kExists);
  EXPECT_EQ(code(m().mkdir(root(), kRootIno, "x", 0755)), Code::kExists);
  EXPECT_EQ(code(m().symlink(root(), kRootIno, "d", "t")), Code::kExists);
  // EEXIST is found before write permission is checked (Linux filename_create).
  EXPECT_EQ(code(mknod(user(), kRootIno, "x", 0644)), Code::kExists);
  must(chmod(kRootIno, 0755));
  EXPECT_EQ(code(mknod(user(), kRootIno, "x", 0644)), Code::kExists);
  EXPECT_EQ(code(mknod(user(), kRootIno, "y", 0644)), Code::kAccess);
}

TEST_P(NamespaceTest, CreateNeedsWriteAndSearchOnParent) {
  Entry d = mkdir(kRootIno, "d", 0755);
  EXPECT_EQ(code(mknod(user(), d.ino, "f", 0644)), Code::kAccess);
  EXPECT_EQ(code(m().mkdir(user(), d.ino, "s", 0755)), Code::kAccess);
  EXPECT_EQ(code(m().symlink(user(), d.ino, "l", "t")), Code::kAccess);
  must(chmod(d.ino, 0776));  // write without search
  EXPECT_EQ(code(mknod(user(), d.ino, "f", 0644)), Code::kAccess);
  must(chmod(d.ino, 0773));  // write and search, no read
  EXPECT_TRUE(mknod(user(), d.ino, "f", 0644).ok());
  must(chown(d.ino, 2000, 1000));
  must(chmod(d.ino, 0730));  // the group class allows it
  EXPECT_TRUE(mknod(user(1000, 1000), d.ino, "g", 0644).ok());
  EXPECT_EQ(code(mknod(user(1001, 1001), d.ino, "h", 0644)), Code::kAccess);
}

TEST_P(NamespaceTest, CreateUnderNonDirectoryOrMissingParent) {
  Entry f = mkfile(kRootIno, "f");
  EXPECT_EQ(code(mknod(root(), f.ino, "x", 0644)), Code::kNotDir);
  EXPECT_EQ(code(m().mkdir(root(), f.ino, "x", 0755)), Code::kNotDir);
  EXPECT_EQ(code(m().symlink(root(), f.ino, "x", "t")), Code::kNotDir);
  EXPECT_EQ(code(mknod(root(), 777777, "x", 0644)), Code::kNotFound);
}

TEST_P(NamespaceTest, CreateInRemovedDirectoryIsNotFound) {
  Entry d = mkdir(kRootIno, "d");
  poke(d.ino, [](Attr& a) { a.nlink = 0; });  // as a removed directory kept open
  EXPECT_EQ(code(mknod(root(), d.ino, "x", 0644)), Code::kNotFound);
  EXPECT_EQ(code(m().mkdir(root(), d.ino, "x", 0755)), Code::kNotFound);
  EXPECT_EQ(code(m().link(root(), mkfile(kRootIno, "f").ino, d.ino, "x")), Code::kNotFound);
}

TEST_P(NamespaceTest, NameRules) {
  std::string longest(255, 'a');
  EXPECT_TRUE(mknod(root(), kRootIno, longest, 0644).ok());
  EXPECT_TRUE(m().lookup(root(), kRootIno, longest).ok());
  std::string too_long(256, 'b');
  EXPECT_EQ(code(mknod(root(), kRootIno, too_long, 0644)), Code::kNameTooLong);
  EXPECT_EQ(code(m().mkdir(root(), kRootIno, too_long, 0755)), Code::kNameTooLong);
  EXPECT_EQ(code(m().symlink(root(), kRootIno, too_long, "t")), Code::kNameTooLong);
  EXPECT_EQ(code(m().unlink(root(), kRootIno, too_long)), Code::kNameTooLong);
  EXPECT_EQ(code(m().link(root(), mkfile(kRootIno, "f").ino, kRootIno, too_long)),
            Code::kNameTooLong);
  EXPECT_EQ(code(mknod(root(), kRootIno, "", 0644)), Code::kInvalid);
  EXPECT_EQ(code(mknod(root(), kRootIno, "a/b", 0644)), Code::kInvalid);
  EXPECT_EQ(code(m().mkdir(root(), kRootIno, ".", 0755)), Code::kInvalid);
}

TEST_P(NamespaceTest, UmaskApplies) {
  Context c = root();
  c.umask = 027;
  EXPECT_EQ(must(mknod(c, kRootIno, "f", 0666)).attr.mode, 0640);
  EXPECT_EQ(must(m().mkdir(c, kRootIno, "d", 0777)).attr.mode, 0750);
  EXPECT_EQ(must(m().mkdir(c, kRootIno, "t", 01777)).attr.mode, 01750);
}

TEST_P(NamespaceTest, SetgidDirectoryPassesGroupAndBit) {
  Entry d = mkdir(kRootIno, "shared", 0777);
  must(chown(d.ino, 0, 2000));
  must(chmod(d.ino, 02777));
  Context c = user(1000, 1000);
  Entry f = must(mknod(c, d.ino, "f", 0644));
  EXPECT_EQ(f.attr.gid, 2000u);
  EXPECT_EQ(f.attr.uid, 1000u);
  EXPECT_EQ(f.attr.mode, 0644);
  Entry s = must(m().mkdir(c, d.ino, "sub", 0755));
  EXPECT_EQ(s.attr.gid, 2000u);
  EXPECT_EQ(s.attr.mode, 02755);  // directories inherit S_ISGID
  Entry ss = must(m().mkdir(c, s.ino, "subsub", 0700));
  EXPECT_EQ(ss.attr.mode, 02700);
  EXPECT_EQ(ss.attr.gid, 2000u);
  Entry l = must(m().symlink(c, d.ino, "l", "f"));
  EXPECT_EQ(l.attr.gid, 2000u);
  // Outside a setgid directory the caller's group is used.
  Entry plain = must(mknod(c, kRootIno, "plain", 0644));
  EXPECT_EQ(plain.attr.gid, 1000u);
}

TEST_P(NamespaceTest, SetgidFileCreatedByOutsiderLosesTheBit) {
  Entry d = mkdir(kRootIno, "shared", 0777);
  must(chown(d.ino, 0, 2000));
  must(chmod(d.ino, 02777));
  // Not in group 2000: a setgid executable is not allowed (Linux inode_init_owner).
  EXPECT_EQ(must(mknod(user(1000, 1000), d.ino, "a", 02755)).attr.mode, 0755);
  // Without group-exec the bit is not an escalation, and is kept.
  EXPECT_EQ(must(mknod(user(1000, 1000), d.ino, "b", 02644)).attr.mode, 02644);
  // Members of the group and root keep it.
  EXPECT_EQ(must(mknod(user(1000, 1000, {2000}), d.ino, "c", 02755)).attr.mode, 02755);
  EXPECT_EQ(must(mknod(root(), d.ino, "e", 02755)).attr.mode, 02755);
  // In a directory without setgid the file's group is the caller's own.
  EXPECT_EQ(must(mknod(user(1000, 1000), kRootIno, "g", 02755)).attr.mode, 02755);
}

TEST_P(NamespaceTest, SpecialFiles) {
  Entry dev = must(m().mknod(root(), kRootIno, "tty", FileType::kCharDev, 0620, 0x0501));
  EXPECT_EQ(dev.attr.type, FileType::kCharDev);
  EXPECT_EQ(dev.attr.rdev, 0x0501u);
  EXPECT_EQ(attr(dev.ino).st_mode(), S_IFCHR | 0620u);
  EXPECT_EQ(code(m().mknod(user(), kRootIno, "blk", FileType::kBlockDev, 0600, 1)),
            Code::kPermission);
  Entry fifo = must(m().mknod(user(), kRootIno, "fifo", FileType::kFifo, 0600, 7));
  EXPECT_EQ(fifo.attr.rdev, 0u);
  EXPECT_EQ(must(m().lookup(root(), kRootIno, "fifo")).attr.type, FileType::kFifo);
  EXPECT_TRUE(m().mknod(user(), kRootIno, "sock", FileType::kSocket, 0600, 0).ok());
  EXPECT_EQ(code(m().mknod(root(), kRootIno, "d", FileType::kDirectory, 0755, 0)),
            Code::kPermission);
  EXPECT_EQ(code(m().mknod(root(), kRootIno, "l", FileType::kSymlink, 0777, 0)), Code::kInvalid);
}

TEST_P(NamespaceTest, SymlinkAndReadlink) {
  Context c = user(1000, 1000);
  c.umask = 077;
  Entry l = must(m().symlink(c, kRootIno, "l", "some/where"));
  EXPECT_EQ(l.attr.type, FileType::kSymlink);
  EXPECT_EQ(l.attr.mode, 0777);  // umask does not apply
  EXPECT_EQ(l.attr.size, 10u);
  EXPECT_EQ(l.attr.uid, 1000u);
  EXPECT_EQ(must(m().readlink(c, l.ino)), "some/where");
  EXPECT_EQ(code(m().symlink(root(), kRootIno, "empty", "")), Code::kNotFound);
  std::string longest(kMaxSymlink, 't');
  Entry big = must(m().symlink(root(), kRootIno, "big", longest));
  EXPECT_EQ(must(m().readlink(root(), big.ino)), longest);
  EXPECT_EQ(code(m().symlink(root(), kRootIno, "huge", longest + "t")), Code::kNameTooLong);
  EXPECT_EQ(code(m().readlink(root(), mkfile(kRootIno, "f").ino)), Code::kInvalid);
  EXPECT_EQ(code(m().readlink(root(), 888888)), Code::kNotFound);
  must(m().unlink(root(), kRootIno, "l"));
  EXPECT_EQ(code(m().readlink(root(), l.ino)), Code::kNotFound);
}

TEST_P(NamespaceTest, InodeLimitAndCounter) {
  ASSERT_NO_FATAL_FAILURE(reformat([](Format& f) { f.inodes = 3; }));
  EXPECT_EQ(used_inodes(), 0);
  mkfile(kRootIno, "a");
  mkdir(kRootIno, "b");
  must(m().symlink(root(), kRootIno, "c", "a"));
  EXPECT_EQ(used_inodes(), 3);
  EXPECT_EQ(code(mknod(root(), kRootIno, "d", 0644)), Code::kNoSpace);
  EXPECT_EQ(code(m().mkdir(root(), kRootIno, "d", 0755)), Code::kNoSpace);
  EXPECT_EQ(code(m().symlink(root(), kRootIno, "d", "a")), Code::kNoSpace);
  // Hard links do not use inodes.
  must(m().link(root(), must(m().lookup(root(), kRootIno, "a")).ino, kRootIno, "a2"));
  must(m().unlink(root(), kRootIno, "c"));
  EXPECT_EQ(used_inodes(), 2);
  EXPECT_TRUE(mknod(root(), kRootIno, "d", 0644).ok());
}

TEST_P(NamespaceTest, TooManySubdirectories) {
  poke(kRootIno, [](Attr& a) { a.nlink = kMaxLinks; });
  EXPECT_EQ(code(m().mkdir(root(), kRootIno, "d", 0755)), Code::kTooManyLinks);
  EXPECT_TRUE(mknod(root(), kRootIno, "f", 0644).ok());  // files do not count
}

// ---- unlink, rmdir, link ----

TEST_P(NamespaceTest, UnlinkRemovesEntryAndInode) {
  Entry f = mkfile(kRootIno, "f");
  Attr before = attr(kRootIno);
  must(m().unlink(root(), kRootIno, "f"));
  EXPECT_EQ(code(m().lookup(root(), kRootIno, "f")), Code::kNotFound);
  EXPECT_EQ(code(m().getattr(f.ino)), Code::kNotFound);
  EXPECT_GT(attr(kRootIno).mtime_ns, before.mtime_ns);
  EXPECT_EQ(used_inodes(), 0);
  EXPECT_EQ(code(m().unlink(root(), kRootIno, "f")), Code::kNotFound);
}

TEST_P(NamespaceTest, UnlinkRefusals) {
  Entry d = mkdir(kRootIno, "d", 0755);
  mkfile(d.ino, "f");
  EXPECT_EQ(code(m().unlink(root(), kRootIno, "d")), Code::kIsDir);
  EXPECT_EQ(code(m().unlink(root(), d.ino, ".")), Code::kIsDir);
  EXPECT_EQ(code(m().unlink(root(), d.ino, "..")), Code::kIsDir);
  EXPECT_EQ(code(m().unlink(user(), d.ino, "f")), Code::kAccess);  // no write on d
  EXPECT_EQ(code(m().unlink(user(), d.ino, "missing")), Code::kNotFound);
  must(chmod(d.ino, 0700));
  EXPECT_EQ(code(m().unlink(user(), d.ino, "missing")), Code::kAccess);  // no search
  Entry f = mkfile(kRootIno, "plain");
  EXPECT_EQ(code(m().unlink(root(), f.ino, "x")), Code::kNotDir);
  // Write access to the file itself does not matter, only to the directory.
  must(chmod(d.ino, 0777));
  must(chmod(must(m().lookup(root(), d.ino, "f")).ino, 0));
  EXPECT_TRUE(m().unlink(user(), d.ino, "f").ok());
}

TEST_P(NamespaceTest, StickyDirectoryRestrictsRemoval) {
  Entry tmp = mkdir(kRootIno, "tmp", 01777);
  Context alice = user(1000, 1000), bob = user(1001, 1001), owner = user(500, 500);
  must(chown(tmp.ino, 500, 500));
  mkfile(tmp.ino, "a1", 0666, alice);
  mkfile(tmp.ino, "a2", 0666, alice);
  mkfile(tmp.ino, "a3", 0666, alice);
  mkdir(tmp.ino, "ad", 0777, alice);
  EXPECT_EQ(code(m().unlink(bob, tmp.ino, "a1")), Code::kPermission);
  EXPECT_EQ(code(m().rmdir(bob, tmp.ino, "ad")), Code::kPermission);
  EXPECT_TRUE(m().unlink(alice, tmp.ino, "a1").ok());
  EXPECT_TRUE(m().unlink(owner, tmp.ino, "a2").ok());
  EXPECT_TRUE(m().unlink(root(), tmp.ino, "a3").ok());
  EXPECT_TRUE(m().rmdir(alice, tmp.ino, "ad").ok());
  // Without the sticky bit anyone with write access may remove.
  must(chmod(tmp.ino, 0777));
  mkfile(tmp.ino, "a4", 0600, alice);
  EXPECT_TRUE(m().unlink(bob, tmp.ino, "a4").ok());
}

TEST_P(NamespaceTest, RmdirRules) {
  Entry d = mkdir(kRootIno, "d");
  Entry s = mkdir(d.ino, "s");
  mkfile(s.ino, "f");
  EXPECT_EQ(code(m().rmdir(root(), d.ino, "s")), Code::kNotEmpty);
  EXPECT_EQ(code(m().rmdir(root(), s.ino, "f")), Code::kNotDir);
  EXPECT_EQ(code(m().rmdir(root(), d.ino, ".")), Code::kInvalid);
  EXPECT_EQ(code(m().rmdir(root(), d.ino, "..")), Code::kNotEmpty);
  EXPECT_EQ(code(m().rmdir(root(), d.ino, "nope")), Code::kNotFound);
  EXPECT_EQ(code(m().rmdir(user(), d.ino, "s")), Code::kAccess);  // before ENOTEMPTY
  must(m().unlink(root(), s.ino, "f"));
  EXPECT_EQ(attr(d.ino).nlink, 3u);
  must(m().rmdir(root(), d.ino, "s"));
  EXPECT_EQ(attr(d.ino).nlink, 2u);
  EXPECT_EQ(code(m().getattr(s.ino)), Code::kNotFound);
  EXPECT_EQ(code(m().lookup(root(), d.ino, "s")), Code::kNotFound);
  must(m().rmdir(root(), kRootIno, "d"));
  EXPECT_EQ(attr(kRootIno).nlink, 2u);
  EXPECT_TRUE(names(kRootIno).empty());
}

TEST_P(NamespaceTest, HardLinks) {
  Entry d = mkdir(kRootIno, "d");
  Entry f = mkfile(kRootIno, "f");
  Entry l = must(m().link(root(), f.ino, d.ino, "g"));
  EXPECT_EQ(l.ino, f.ino);
  EXPECT_EQ(l.attr.nlink, 2u);
  EXPECT_GT(l.attr.ctime_ns, f.attr.ctime_ns);
  EXPECT_EQ(must(m().lookup(root(), d.ino, "g")).ino, f.ino);
  EXPECT_EQ(attr(d.ino).nlink, 2u);  // a file link adds no subdirectory link
  must(m().link(root(), f.ino, kRootIno, "h"));
  EXPECT_EQ(attr(f.ino).nlink, 3u);
  must(m().unlink(root(), kRootIno, "f"));
  EXPECT_EQ(attr(f.ino).nlink, 2u);
  must(m().unlink(root(), d.ino, "g"));
  Attr a = attr(f.ino);
  EXPECT_EQ(a.nlink, 1u);
  EXPECT_EQ(must(m().lookup(root(), kRootIno, "h")).attr.nlink, 1u);
  must(m().unlink(root(), kRootIno, "h"));
  EXPECT_EQ(code(m().getattr(f.ino)), Code::kNotFound);
}

TEST_P(NamespaceTest, LinkRefusals) {
  Entry d = mkdir(kRootIno, "d", 0755);
  Entry f = mkfile(kRootIno, "f");
  EXPECT_EQ(code(m().link(root(), d.ino, kRootIno, "d2")), Code::kPermission);
  EXPECT_EQ(code(m().link(root(), f.ino, kRootIno, "d")), Code::kExists);
  EXPECT_EQ(code(m().link(user(), f.ino, d.ino, "x")), Code::kAccess);
  EXPECT_EQ(code(m().link(root(), f.ino, f.ino, "x")), Code::kNotDir);
  EXPECT_EQ(code(m().link(root(), 555555, d.ino, "x")), Code::kNotFound);
  poke(f.ino, [](Attr& a) { a.nlink = kMaxLinks; });
  EXPECT_EQ(code(m().link(root(), f.ino, d.ino, "x")), Code::kTooManyLinks);
}

// ---- readdir ----

TEST_P(NamespaceTest, ReaddirListsSortedWithTypes) {
  Entry d = mkdir(kRootIno, "d");
  mkfile(d.ino, "zeta");
  Entry sub = mkdir(d.ino, "alpha");
  must(m().symlink(root(), d.ino, "mid", "zeta"));
  must(m().mknod(root(), d.ino, "Upper", FileType::kFifo, 0600, 0));
  auto list = must(m().readdir(root(), d.ino, false));
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0].name, "Upper");  // bytewise order
  EXPECT_EQ(list[0].type, FileType::kFifo);
  EXPECT_EQ(list[1].name, "alpha");
  EXPECT_EQ(list[1].ino, sub.ino);
  EXPECT_EQ(list[1].type, FileType::kDirectory);
  EXPECT_EQ(list[2].name, "mid");
  EXPECT_EQ(list[2].type, FileType::kSymlink);
  EXPECT_EQ(list[3].name, "zeta");
  for (auto& e : list) EXPECT_FALSE(e.attr.has_value());

  auto plus = must(m().readdir(root(), d.ino, true));
  ASSERT_EQ(plus.size(), 4u);
  for (auto& e : plus) {
    ASSERT_TRUE(e.attr.has_value()) << e.name;
    EXPECT_EQ(e.attr->type, e.type);
    EXPECT_EQ(e.attr->ctime_ns, attr(e.ino).ctime_ns);
  }
  EXPECT_EQ(plus[1].attr->nlink, 2u);
  EXPECT_EQ(plus[2].attr->size, 4u);
  EXPECT_TRUE(must(m().readdir(root(), sub.ino, true)).empty());
}

TEST_P(NamespaceTest, ReaddirRefusals) {
  Entry d = mkdir(kRootIno, "d", 0711);
  Entry f = mkfile(kRootIno, "f");
  EXPECT_EQ(code(m().readdir(root(), f.ino, false)), Code::kNotDir);
  EXPECT_EQ(code(m().readdir(user(), d.ino, false)), Code::kAccess);
  EXPECT_EQ(code(m().readdir(root(), 444444, false)), Code::kNotFound);
  must(chmod(d.ino, 0744));  // read without search is enough to list
  EXPECT_TRUE(m().readdir(user(), d.ino, true).ok());
}

// Writes the keys mknod writes for a regular file `name` in `dir`, `batch` files per
// transaction. Test-only: one sqlite commit per mknod makes 100,000 files take too long.
std::vector<Ino> bulk_create(Meta& m, Ino dir, const std::vector<std::string>& names,
                             size_t batch) {
  std::vector<Ino> inos;
  for (size_t i = 0; i < names.size(); i++) inos.push_back(testing::MetaTest::must(m.next_inode()));
  for (size_t from = 0; from < names.size(); from += batch) {
    size_t to = std::min(names.size(), from + batch);
    testing::MetaTest::must(m.engine().transact([&](kv::Txn& txn) -> Status {
      Attr a;
      a.mode = 0644;
      a.atime_ns = a.mtime_ns = a.ctime_ns = now_ns();
      for (size_t i = from; i < to; i++) {
        RETURN_IF_ERROR(internal::save_attr(txn, inos[i], a));
        RETURN_IF_ERROR(txn.put(keys::dentry(dir, names[i]), encode_dentry(a.type, inos[i])));
      }
      return internal::add_counter(txn, keys::kUsedInodes, static_cast<int64_t>(to - from));
    }));
  }
  return inos;
}

TEST_P(NamespaceTest, HundredThousandEntries) {
  constexpr int kCount = 100'000;
  Entry d = mkdir(kRootIno, "big");
  // Created in a scrambled order, so that the listing order is the engine's work.
  std::vector<std::string> names;
  for (int i = 0; i < kCount; i++) {
    char name[16];
    snprintf(name, sizeof name, "f%06d", static_cast<int>(int64_t{i} * 7919 % kCount));
    names.push_back(name);
  }
  std::vector<Ino> inos;
  if (GetParam() == "mem") {
    for (const auto& name : names) inos.push_back(mkfile(d.ino, name).ino);
  } else {
    inos = bulk_create(m(), d.ino, names, 10'000);
  }
  std::map<std::string, Ino> want;
  for (int i = 0; i < kCount; i++) want[names[i]] = inos[i];

  auto list = must(m().readdir(root(), d.ino, false));
  ASSERT_EQ(list.size(), want.size());
  auto it = want.begin();
  for (const DirEntry& e : list) {
    ASSERT_EQ(e.name, it->first);
    ASSERT_EQ(e.ino, it->second);
    ++it;
  }
  auto plus = must(m().readdir(root(), d.ino, true));
  ASSERT_EQ(plus.size(), want.size());
  EXPECT_TRUE(std::all_of(plus.begin(), plus.end(), [](const DirEntry& e) {
    return e.attr && e.attr->is_file() && e.attr->nlink == 1;
  }));
  EXPECT_EQ(attr(d.ino).nlink, 2u);
  EXPECT_EQ(used_inodes(), kCount + 1);
}

}  // namespace
}  // namespace sluice::meta
