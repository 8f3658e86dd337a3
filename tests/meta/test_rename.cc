// rename (rename.cc): plain, RENAME_NOREPLACE and RENAME_EXCHANGE, replaced targets,
// directory link counts, cycles, hard links of one inode, permissions and sticky
// directories, each refusal with the errno Linux gives.
#include <fcntl.h>
#include <sys/stat.h>

#include "meta/internal.h"
#include "meta/keys.h"
#include "meta_fixture.h"

namespace sluice::meta {
namespace {

using testing::code;

class RenameTest : public testing::MetaTest {
 protected:
  Status mv(Ino from, std::string_view name, Ino to, std::string_view new_name, uint32_t flags = 0,
            const Context& ctx = root()) {
    return m().rename(ctx, from, name, to, new_name, flags);
  }
  Ino ino_of(Ino parent, std::string_view name) {
    return must(m().lookup(root(), parent, name)).ino;
  }
  bool exists(Ino parent, std::string_view name) { return m().lookup(root(), parent, name).ok(); }
  int64_t used_inodes() {
    int64_t v = 0;
    must(engine().read([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(v, internal::get_counter(txn, keys::kUsedInodes));
      return Status::OK();
    }));
    return v;
  }
};
SLUICE_META_ENGINES(RenameTest);

TEST_P(RenameTest, FileWithinDirectory) {
  Entry f = mkfile(kRootIno, "a");
  Attr dir_before = attr(kRootIno);
  must(mv(kRootIno, "a", kRootIno, "b"));
  EXPECT_FALSE(exists(kRootIno, "a"));
  EXPECT_EQ(ino_of(kRootIno, "b"), f.ino);
  Attr a = attr(f.ino);
  EXPECT_GT(a.ctime_ns, f.attr.ctime_ns);
  EXPECT_EQ(a.nlink, 1u);
  Attr d = attr(kRootIno);
  EXPECT_GT(d.mtime_ns, dir_before.mtime_ns);
  EXPECT_EQ(d.ctime_ns, d.mtime_ns);
  EXPECT_EQ(d.nlink, 2u);
  EXPECT_EQ(names(kRootIno), std::vector<std::string>{"b"});
}

TEST_P(RenameTest, FileAcrossDirectories) {
  Entry x = mkdir(kRootIno, "x");
  Entry y = mkdir(kRootIno, "y");
  Entry f = mkfile(x.ino, "f");
  Attr xb = attr(x.ino), yb = attr(y.ino);
  must(mv(x.ino, "f", y.ino, "g"));
  EXPECT_EQ(ino_of(y.ino, "g"), f.ino);
  EXPECT_TRUE(names(x.ino).empty());
  EXPECT_GT(attr(x.ino).mtime_ns, xb.mtime_ns);
  EXPECT_GT(attr(y.ino).mtime_ns, yb.mtime_ns);
  EXPECT_EQ(attr(x.ino).nlink, 2u);
  EXPECT_EQ(attr(y.ino).nlink, 2u);
  EXPECT_EQ(attr(f.ino).parent, 0u);
}

TEST_P(RenameTest, DirectoryAcrossParentsMovesItsLink) {
  Entry x = mkdir(kRootIno, "x");
  Entry y = mkdir(kRootIno, "y");
  Entry d = mkdir(x.ino, "d");
  mkfile(d.ino, "inside");
  EXPECT_EQ(attr(x.ino).nlink, 3u);
  must(mv(x.ino, "d", y.ino, "d2"));
  EXPECT_EQ(attr(x.ino).nlink, 2u);
  EXPECT_EQ(attr(y.ino).nlink, 3u);
  EXPECT_EQ(attr(d.ino).parent, y.ino);
  EXPECT_EQ(must(m().lookup(root(), d.ino, "..")).ino, y.ino);
  EXPECT_TRUE(exists(d.ino, "inside"));
  EXPECT_EQ(attr(kRootIno).nlink, 4u);
  // Within one directory nothing changes in the link counts.
  must(mv(y.ino, "d2", y.ino, "d3"));
  EXPECT_EQ(attr(y.ino).nlink, 3u);
  EXPECT_EQ(attr(d.ino).parent, y.ino);
}

TEST_P(RenameTest, ReplacingAFileDropsIt) {
  Entry a = mkfile(kRootIno, "a");
  Entry b = mkfile(kRootIno, "b");
  EXPECT_EQ(used_inodes(), 2);
  must(mv(kRootIno, "a", kRootIno, "b"));
  EXPECT_EQ(ino_of(kRootIno, "b"), a.ino);
  EXPECT_FALSE(exists(kRootIno, "a"));
  EXPECT_EQ(code(m().getattr(b.ino)), Code::kNotFound);
  EXPECT_EQ(used_inodes(), 1);
}

TEST_P(RenameTest, ReplacingAHardLinkedFileDropsOneLink) {
  Entry a = mkfile(kRootIno, "a");
  Entry b = mkfile(kRootIno, "b");
  must(m().link(root(), b.ino, kRootIno, "b2"));
  int64_t before = attr(b.ino).ctime_ns;
  must(mv(kRootIno, "a", kRootIno, "b"));
  EXPECT_EQ(ino_of(kRootIno, "b"), a.ino);
  Attr kept = attr(b.ino);
  EXPECT_EQ(kept.nlink, 1u);
  EXPECT_GT(kept.ctime_ns, before);
  EXPECT_EQ(ino_of(kRootIno, "b2"), b.ino);
}

TEST_P(RenameTest, ReplacingAnEmptyDirectory) {
  Entry x = mkdir(kRootIno, "x");
  Entry y = mkdir(kRootIno, "y");
  Entry src = mkdir(x.ino, "s");
  Entry victim = mkdir(y.ino, "t");
  must(mv(x.ino, "s", y.ino, "t"));
  EXPECT_EQ(ino_of(y.ino, "t"), src.ino);
  EXPECT_EQ(code(m().getattr(victim.ino)), Code::kNotFound);
  EXPECT_EQ(attr(x.ino).nlink, 2u);
  EXPECT_EQ(attr(y.ino).nlink, 3u);  // one subdirectory replaced by another
  EXPECT_EQ(attr(src.ino).parent, y.ino);
  // Same parent: the parent loses the replaced directory's link.
  mkdir(y.ino, "u");
  EXPECT_EQ(attr(y.ino).nlink, 4u);
  must(mv(y.ino, "u", y.ino, "t"));
  EXPECT_EQ(attr(y.ino).nlink, 3u);
  EXPECT_EQ(names(y.ino), std::vector<std::string>{"t"});
}

TEST_P(RenameTest, TypeMismatchesAndNonEmptyTarget) {
  mkfile(kRootIno, "f");
  Entry d = mkdir(kRootIno, "d");
  Entry full = mkdir(kRootIno, "full");
  mkfile(full.ino, "x");
  EXPECT_EQ(code(mv(kRootIno, "f", kRootIno, "d")), Code::kIsDir);
  EXPECT_EQ(code(mv(kRootIno, "d", kRootIno, "f")), Code::kNotDir);
  EXPECT_EQ(code(mv(kRootIno, "d", kRootIno, "full")), Code::kNotEmpty);
  EXPECT_TRUE(exists(kRootIno, "d"));
  EXPECT_TRUE(exists(full.ino, "x"));
  EXPECT_EQ(attr(d.ino).parent, kRootIno);
}

TEST_P(RenameTest, MissingSourceAndBadParents) {
  Entry f = mkfile(kRootIno, "f");
  EXPECT_EQ(code(mv(kRootIno, "nope", kRootIno, "x")), Code::kNotFound);
  EXPECT_EQ(code(mv(f.ino, "a", kRootIno, "x")), Code::kNotDir);
  EXPECT_EQ(code(mv(kRootIno, "f", f.ino, "x")), Code::kNotDir);
  EXPECT_EQ(code(mv(kRootIno, "f", 31337, "x")), Code::kNotFound);
  Entry dead = mkdir(kRootIno, "dead");
  must(engine().transact([&](kv::Txn& txn) -> Status {
    Attr a = dead.attr;
    a.nlink = 0;  // as a removed directory kept open
    return internal::save_attr(txn, dead.ino, a);
  }));
  EXPECT_EQ(code(mv(kRootIno, "f", dead.ino, "x")), Code::kNotFound);
}

TEST_P(RenameTest, NameRules) {
  mkfile(kRootIno, "f");
  Entry d = mkdir(kRootIno, "d");
  EXPECT_EQ(code(mv(kRootIno, "f", kRootIno, std::string(256, 'n'))), Code::kNameTooLong);
  EXPECT_EQ(code(mv(kRootIno, std::string(256, 'n'), kRootIno, "x")), Code::kNameTooLong);
  EXPECT_EQ(code(mv(kRootIno, "f", kRootIno, "")), Code::kInvalid);
  EXPECT_EQ(code(mv(kRootIno, "f", kRootIno, "a/b")), Code::kInvalid);
  // Linux refuses "." and ".." with EBUSY (EEXIST for a RENAME_NOREPLACE target).
  EXPECT_EQ(code(mv(d.ino, ".", kRootIno, "x")), Code::kBusy);
  EXPECT_EQ(code(mv(d.ino, "..", kRootIno, "x")), Code::kBusy);
  EXPECT_EQ(code(mv(kRootIno, "f", d.ino, "..")), Code::kBusy);
  EXPECT_EQ(code(mv(kRootIno, "f", d.ino, ".", kRenameNoReplace)), Code::kExists);
  EXPECT_EQ(code(mv(kRootIno, "f", kRootIno, "g", kRenameNoReplace | kRenameExchange)),
            Code::kInvalid);
  EXPECT_EQ(code(mv(kRootIno, "f", kRootIno, "g", 4)), Code::kInvalid);
  EXPECT_TRUE(exists(kRootIno, "f"));
}

TEST_P(RenameTest, NoReplace) {
  Entry a = mkfile(kRootIno, "a");
  mkfile(kRootIno, "b");
  EXPECT_EQ(code(mv(kRootIno, "a", kRootIno, "b", kRenameNoReplace)), Code::kExists);
  EXPECT_EQ(ino_of(kRootIno, "a"), a.ino);
  must(mv(kRootIno, "a", kRootIno, "c", kRenameNoReplace));
  EXPECT_EQ(ino_of(kRootIno, "c"), a.ino);
}

TEST_P(RenameTest, ExchangeFilesInOneDirectory) {
  Entry a = mkfile(kRootIno, "a");
  Entry b = mkfile(kRootIno, "b");
  EXPECT_EQ(code(mv(kRootIno, "a", kRootIno, "zz", kRenameExchange)), Code::kNotFound);
  must(mv(kRootIno, "a", kRootIno, "b", kRenameExchange));
  EXPECT_EQ(ino_of(kRootIno, "a"), b.ino);
  EXPECT_EQ(ino_of(kRootIno, "b"), a.ino);
  EXPECT_EQ(attr(a.ino).nlink, 1u);
  EXPECT_EQ(attr(b.ino).nlink, 1u);
  EXPECT_GT(attr(a.ino).ctime_ns, a.attr.ctime_ns);
  EXPECT_GT(attr(b.ino).ctime_ns, b.attr.ctime_ns);
  EXPECT_EQ(used_inodes(), 2);
}

TEST_P(RenameTest, ExchangeFileAndDirectoryAcrossParents) {
  Entry x = mkdir(kRootIno, "x");
  Entry y = mkdir(kRootIno, "y");
  Entry f = mkfile(x.ino, "f");
  Entry d = mkdir(y.ino, "d");
  mkfile(d.ino, "child");  // exchange does not care whether directories are empty
  EXPECT_EQ(attr(x.ino).nlink, 2u);
  EXPECT_EQ(attr(y.ino).nlink, 3u);
  must(mv(x.ino, "f", y.ino, "d", kRenameExchange));
  Entry in_x = must(m().lookup(root(), x.ino, "f"));
  Entry in_y = must(m().lookup(root(), y.ino, "d"));
  EXPECT_EQ(in_x.ino, d.ino);
  EXPECT_EQ(in_x.attr.type, FileType::kDirectory);
  EXPECT_EQ(in_y.ino, f.ino);
  EXPECT_EQ(in_y.attr.type, FileType::kRegular);
  EXPECT_EQ(attr(d.ino).parent, x.ino);
  EXPECT_EQ(attr(f.ino).parent, 0u);
  EXPECT_EQ(attr(x.ino).nlink, 3u);
  EXPECT_EQ(attr(y.ino).nlink, 2u);
  EXPECT_EQ(must(m().lookup(root(), d.ino, "..")).ino, x.ino);
  auto list = must(m().readdir(root(), x.ino, false));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].type, FileType::kDirectory);
  EXPECT_TRUE(exists(d.ino, "child"));
}

TEST_P(RenameTest, ExchangeTwoDirectoriesAcrossParents) {
  Entry x = mkdir(kRootIno, "x");
  Entry y = mkdir(kRootIno, "y");
  Entry a = mkdir(x.ino, "a");
  Entry b = mkdir(y.ino, "b");
  must(mv(x.ino, "a", y.ino, "b", kRenameExchange));
  EXPECT_EQ(attr(a.ino).parent, y.ino);
  EXPECT_EQ(attr(b.ino).parent, x.ino);
  EXPECT_EQ(attr(x.ino).nlink, 3u);
  EXPECT_EQ(attr(y.ino).nlink, 3u);
}

TEST_P(RenameTest, DirectoryIntoItsOwnSubtreeIsInvalid) {
  Entry a = mkdir(kRootIno, "a");
  Entry b = mkdir(a.ino, "b");
  Entry c = mkdir(b.ino, "c");
  EXPECT_EQ(code(mv(kRootIno, "a", a.ino, "x")), Code::kInvalid);
  EXPECT_EQ(code(mv(kRootIno, "a", c.ino, "x")), Code::kInvalid);
  EXPECT_EQ(code(mv(a.ino, "b", c.ino, "x")), Code::kInvalid);
  EXPECT_EQ(code(mv(kRootIno, "a", c.ino, "x", kRenameNoReplace)), Code::kInvalid);
  mkdir(c.ino, "e");
  EXPECT_EQ(code(mv(kRootIno, "a", c.ino, "e", kRenameExchange)), Code::kInvalid);
  // The target is an ancestor of the source: ENOTEMPTY, or EINVAL when exchanging.
  EXPECT_EQ(code(mv(b.ino, "c", kRootIno, "a")), Code::kNotEmpty);
  EXPECT_EQ(code(mv(b.ino, "c", kRootIno, "a", kRenameExchange)), Code::kInvalid);
  // A directory may move up and sideways.
  must(mv(b.ino, "c", kRootIno, "c"));
  EXPECT_EQ(attr(c.ino).parent, kRootIno);
  must(mv(kRootIno, "a", c.ino, "a"));
  EXPECT_EQ(attr(a.ino).parent, c.ino);
  EXPECT_EQ(attr(c.ino).nlink, 4u);  // "e" and "a"
  EXPECT_EQ(attr(kRootIno).nlink, 3u);
  // Files may go anywhere, including next to themselves.
  mkfile(a.ino, "f");
  must(mv(a.ino, "f", b.ino, "f"));
}

TEST_P(RenameTest, SameInodeIsANoOp) {
  Entry f = mkfile(kRootIno, "f");
  must(m().link(root(), f.ino, kRootIno, "g"));
  int64_t ctime = attr(f.ino).ctime_ns;
  must(mv(kRootIno, "f", kRootIno, "g"));
  EXPECT_EQ(ino_of(kRootIno, "f"), f.ino);  // both names stay
  EXPECT_EQ(ino_of(kRootIno, "g"), f.ino);
  EXPECT_EQ(attr(f.ino).nlink, 2u);
  EXPECT_EQ(attr(f.ino).ctime_ns, ctime);
  must(mv(kRootIno, "f", kRootIno, "g", kRenameExchange));
  EXPECT_EQ(code(mv(kRootIno, "f", kRootIno, "g", kRenameNoReplace)), Code::kExists);
  must(mv(kRootIno, "f", kRootIno, "f"));  // onto itself
  Entry d = mkdir(kRootIno, "d");
  must(mv(kRootIno, "d", kRootIno, "d"));
  EXPECT_EQ(attr(d.ino).parent, kRootIno);
  // Needs no permission at all (vfs_rename returns before may_delete).
  must(chmod(kRootIno, 0755));
  must(mv(kRootIno, "f", kRootIno, "g", 0, user()));
  EXPECT_EQ(attr(f.ino).nlink, 2u);
}

TEST_P(RenameTest, NeedsWriteAndSearchOnBothParents) {
  Entry x = mkdir(kRootIno, "x", 0777);
  Entry y = mkdir(kRootIno, "y", 0755);
  mkfile(x.ino, "f", 0644, user());
  EXPECT_EQ(code(mv(x.ino, "f", y.ino, "f", 0, user())), Code::kAccess);
  must(chmod(y.ino, 0777));
  must(chmod(x.ino, 0755));
  EXPECT_EQ(code(mv(x.ino, "f", y.ino, "f", 0, user())), Code::kAccess);
  must(chmod(x.ino, 0776));  // write without search
  EXPECT_EQ(code(mv(x.ino, "f", y.ino, "f", 0, user())), Code::kAccess);
  must(chmod(x.ino, 0777));
  must(mv(x.ino, "f", y.ino, "f", 0, user()));
  // Replacing needs the same on the target's directory.
  mkfile(x.ino, "g", 0644, user());
  must(chmod(y.ino, 0755));
  EXPECT_EQ(code(mv(x.ino, "g", y.ino, "f", 0, user())), Code::kAccess);
}

TEST_P(RenameTest, MovingADirectoryNeedsWriteOnIt) {
  Entry x = mkdir(kRootIno, "x", 0777);
  Entry y = mkdir(kRootIno, "y", 0777);
  Entry d = mkdir(x.ino, "d", 0555, user());  // the caller's, but not writable
  EXPECT_EQ(code(mv(x.ino, "d", y.ino, "d", 0, user())), Code::kAccess);
  must(mv(x.ino, "d", x.ino, "renamed", 0, user()));  // same parent: ".." unchanged
  must(chmod(d.ino, 0755, user()));
  must(mv(x.ino, "renamed", y.ino, "d", 0, user()));
  EXPECT_EQ(attr(d.ino).parent, y.ino);
  // Exchanging with a directory in another parent needs write on that one too.
  mkfile(x.ino, "f", 0644, user());
  must(chmod(d.ino, 0555, user()));
  EXPECT_EQ(code(mv(x.ino, "f", y.ino, "d", kRenameExchange, user())), Code::kAccess);
  must(mv(x.ino, "f", y.ino, "d", kRenameExchange));  // root may
}

TEST_P(RenameTest, StickyDirectory) {
  Entry tmp = mkdir(kRootIno, "tmp", 01777);
  Context alice = user(1000, 1000), bob = user(1001, 1001);
  mkfile(tmp.ino, "a", 0666, alice);
  mkfile(tmp.ino, "b", 0666, bob);
  EXPECT_EQ(code(mv(tmp.ino, "a", tmp.ino, "x", 0, bob)), Code::kPermission);
  // Replacing bob's file is refused to alice too, even though she owns the source.
  EXPECT_EQ(code(mv(tmp.ino, "a", tmp.ino, "b", 0, alice)), Code::kPermission);
  EXPECT_EQ(code(mv(tmp.ino, "a", tmp.ino, "b", kRenameExchange, alice)), Code::kPermission);
  must(mv(tmp.ino, "a", tmp.ino, "x", 0, alice));
  must(mv(tmp.ino, "b", tmp.ino, "x", 0, root()));
  EXPECT_EQ(attr(ino_of(tmp.ino, "x")).uid, 1001u);
}

TEST_P(RenameTest, ReplacedFileOpenHereSurvivesUntilClose) {
  SessionInfo info;
  info.hostname = "test";
  must(m().new_session(info));
  Entry a = mkfile(kRootIno, "a");
  Entry b = mkfile(kRootIno, "b");
  must(m().open(root(), b.ino, O_RDONLY));
  must(mv(kRootIno, "a", kRootIno, "b"));
  EXPECT_EQ(ino_of(kRootIno, "b"), a.ino);
  EXPECT_EQ(attr(b.ino).nlink, 0u);  // still readable through the open handle
  must(m().close(b.ino));
  EXPECT_EQ(code(m().getattr(b.ino)), Code::kNotFound);
  must(m().close_session());
}

}  // namespace
}  // namespace sluice::meta
