// getattr and setattr (attr.cc) against Linux rules: who may chmod, chown, chgrp, set
// times and truncate (EPERM vs EACCES), suid/sgid clearing, size and space accounting.
#include <sys/stat.h>

#include "common/clock.h"
#include "meta/internal.h"
#include "meta/keys.h"
#include "meta/slices.h"
#include "meta_fixture.h"

namespace sluice::meta {
namespace {

using testing::code;

class AttrTest : public testing::MetaTest {
 protected:
  // A file owned by uid:gid with the given mode (set by root).
  Entry owned_file(std::string_view name, uint32_t uid, uint32_t gid, uint16_t mode) {
    Entry e = mkfile(kRootIno, name, 0644);
    must(chown(e.ino, uid, gid));
    must(chmod(e.ino, mode));
    return e;
  }
  Entry owned_dir(std::string_view name, uint32_t uid, uint32_t gid, uint16_t mode) {
    Entry e = mkdir(kRootIno, name, 0755);
    must(chown(e.ino, uid, gid));
    must(chmod(e.ino, mode));
    return e;
  }
  Result<Attr> set(const Context& ctx, Ino ino, uint32_t mask, SetAttr s = {}) {
    s.mask = mask;
    return m().setattr(ctx, ino, s);
  }
  Result<Attr> truncate(const Context& ctx, Ino ino, uint64_t size) {
    SetAttr s;
    s.size = size;
    return set(ctx, ino, kSetSize, s);
  }
  int64_t used_space() {
    int64_t v = 0;
    must(engine().read([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(v, internal::get_counter(txn, keys::kUsedSpace));
      return Status::OK();
    }));
    return v;
  }
};
SLUICE_META_ENGINES(AttrTest);

TEST_P(AttrTest, GetattrOfRootAndMissing) {
  Attr r = attr(kRootIno);
  EXPECT_TRUE(r.is_dir());
  EXPECT_EQ(r.nlink, 2u);
  EXPECT_EQ(r.parent, kRootIno);
  EXPECT_EQ(code(m().getattr(424242)), Code::kNotFound);
  EXPECT_EQ(code(m().setattr(root(), 424242, SetAttr{kSetMode})), Code::kNotFound);
}

TEST_P(AttrTest, EmptyMaskChangesNothing) {
  Entry f = mkfile(kRootIno, "f");
  Attr a = must(set(root(), f.ino, 0));
  EXPECT_EQ(a.ctime_ns, f.attr.ctime_ns);
  EXPECT_EQ(attr(f.ino).ctime_ns, f.attr.ctime_ns);
}

TEST_P(AttrTest, ChmodByOwnerOrRootOnly) {
  Entry f = owned_file("f", 1000, 1000, 0644);
  int64_t before = attr(f.ino).ctime_ns;
  EXPECT_EQ(code(chmod(f.ino, 0777, user(1001, 1000))), Code::kPermission);
  // Even with write access to the file, chmod needs ownership.
  must(chmod(f.ino, 0666));
  EXPECT_EQ(code(chmod(f.ino, 0777, user(1001, 1000))), Code::kPermission);
  must(chmod(f.ino, 0600, user(1000, 1000)));
  Attr a = attr(f.ino);
  EXPECT_EQ(a.mode, 0600);
  EXPECT_GT(a.ctime_ns, before);
  must(chmod(f.ino, 0177777));  // only the permission bits are taken
  EXPECT_EQ(attr(f.ino).mode, 07777);
  EXPECT_EQ(attr(f.ino).type, FileType::kRegular);
}

TEST_P(AttrTest, NonOwnerWriterMayOnlyDropSetuidAndSetgid) {
  // What the kernel sends before a non-owner's write to a setuid file (FUSE without
  // HANDLE_KILLPRIV): a chmod that only clears S_ISUID/S_ISGID.
  Entry f = owned_file("f", 1000, 1000, 06777);
  must(chmod(f.ino, 00777, user(1001, 1001)));
  EXPECT_EQ(attr(f.ino).mode, 0777);
  // Anything more than dropping those bits is still the owner's.
  must(chmod(f.ino, 06777));
  EXPECT_EQ(code(chmod(f.ino, 00775, user(1001, 1001))), Code::kPermission);
  EXPECT_EQ(code(chmod(f.ino, 06777 | 01000, user(1001, 1001))), Code::kPermission);
  // Without write access, not even that.
  must(chmod(f.ino, 06755));
  EXPECT_EQ(code(chmod(f.ino, 00755, user(1001, 1001))), Code::kPermission);
  EXPECT_EQ(attr(f.ino).mode, 06755);
}

TEST_P(AttrTest, ChmodDropsSetgidForCallerOutsideTheGroup) {
  Entry f = owned_file("f", 1000, 2000, 0644);
  must(chmod(f.ino, 02755, user(1000, 1000)));  // owner, not in group 2000
  EXPECT_EQ(attr(f.ino).mode, 0755);
  must(chmod(f.ino, 02755, user(1000, 1000, {2000})));  // owner, in the group
  EXPECT_EQ(attr(f.ino).mode, 02755);
  must(chmod(f.ino, 0644));
  must(chmod(f.ino, 06755));  // root keeps both
  EXPECT_EQ(attr(f.ino).mode, 06755);
  // Linux applies the same rule to directories (setattr_prepare has no type test).
  Entry d = owned_dir("d", 1000, 2000, 0755);
  must(chmod(d.ino, 02775, user(1000, 1000)));
  EXPECT_EQ(attr(d.ino).mode, 0775);
}

TEST_P(AttrTest, ChmodWithChgrpChecksTheNewGroup) {
  Entry f = owned_file("f", 1000, 2000, 0644);
  SetAttr s;
  s.mode = 02755;
  s.gid = 3000;
  must(set(user(1000, 1000, {3000}), f.ino, kSetMode | kSetGid, s));
  Attr a = attr(f.ino);
  EXPECT_EQ(a.gid, 3000u);
  EXPECT_EQ(a.mode, 02755);
}

TEST_P(AttrTest, ChownOnlyRootChangesOwner) {
  Entry f = owned_file("f", 1000, 1000, 0644);
  SetAttr s;
  s.uid = 1001;
  EXPECT_EQ(code(set(user(1000, 1000), f.ino, kSetUid, s)), Code::kPermission);
  EXPECT_EQ(code(set(user(1001, 1000), f.ino, kSetUid, s)), Code::kPermission);
  s.uid = 1000;  // "changing" to the current owner is allowed for the owner
  must(set(user(1000, 1000), f.ino, kSetUid, s));
  EXPECT_EQ(code(set(user(1001, 1000), f.ino, kSetUid, s)), Code::kPermission);
  s.uid = 42;
  must(set(root(), f.ino, kSetUid, s));
  EXPECT_EQ(attr(f.ino).uid, 42u);
}

TEST_P(AttrTest, ChgrpByOwnerOnlyToOwnGroups) {
  Entry f = owned_file("f", 1000, 1000, 0644);
  SetAttr s;
  s.gid = 2000;
  EXPECT_EQ(code(set(user(1000, 1000), f.ino, kSetGid, s)), Code::kPermission);
  must(set(user(1000, 1000, {2000}), f.ino, kSetGid, s));
  EXPECT_EQ(attr(f.ino).gid, 2000u);
  s.gid = 2000;  // the current group is always allowed for the owner
  must(set(user(1000, 1000), f.ino, kSetGid, s));
  // Not the owner: EPERM even for a group the caller is in.
  EXPECT_EQ(code(set(user(1001, 2000), f.ino, kSetGid, s)), Code::kPermission);
  s.gid = 7;
  must(set(root(), f.ino, kSetGid, s));
  EXPECT_EQ(attr(f.ino).gid, 7u);
}

TEST_P(AttrTest, ChownClearsSuidAndExecutableSgidEvenForRoot) {
  Entry f = owned_file("f", 1000, 1000, 06755);
  must(chown(f.ino, 1000, 1000));  // same owner and group still clears
  EXPECT_EQ(attr(f.ino).mode, 0755);
  // Without group-exec, S_ISGID means mandatory locking: root keeps it, suid goes.
  must(chmod(f.ino, 06744));
  must(chown(f.ino, 5, 5));
  EXPECT_EQ(attr(f.ino).mode, 02744);
  // Directories keep both.
  Entry d = owned_dir("d", 1000, 1000, 06755);
  must(chown(d.ino, 5, 5));
  EXPECT_EQ(attr(d.ino).mode, 06755);
}

TEST_P(AttrTest, ChgrpByOwnerOutsideOldGroupClearsNonExecSgid) {
  Entry f = owned_file("f", 1000, 3000, 02644);
  SetAttr s;
  s.gid = 4000;
  must(set(user(1000, 1000, {4000}), f.ino, kSetGid, s));
  EXPECT_EQ(attr(f.ino).mode, 0644);
  Entry g = owned_file("g", 1000, 3000, 02644);
  must(set(user(1000, 1000, {3000, 4000}), g.ino, kSetGid, s));
  EXPECT_EQ(attr(g.ino).mode, 02644);
}

TEST_P(AttrTest, ExplicitTimesNeedOwnership) {
  Entry f = owned_file("f", 1000, 1000, 0666);
  SetAttr s;
  s.atime_ns = 111;
  s.mtime_ns = 222;
  // Write access is not enough for explicit times: EPERM, not EACCES.
  EXPECT_EQ(code(set(user(1001, 1001), f.ino, kSetAtime | kSetMtime, s)), Code::kPermission);
  EXPECT_EQ(code(set(user(1001, 1001), f.ino, kSetMtime, s)), Code::kPermission);
  Attr a = must(set(user(1000, 1000), f.ino, kSetAtime | kSetMtime, s));
  EXPECT_EQ(a.atime_ns, 111);
  EXPECT_EQ(a.mtime_ns, 222);
  EXPECT_GT(a.ctime_ns, 222);
  s.atime_ns = 333;
  a = must(set(root(), f.ino, kSetAtime, s));
  EXPECT_EQ(a.atime_ns, 333);
  EXPECT_EQ(a.mtime_ns, 222);
}

TEST_P(AttrTest, TouchToNowNeedsOwnershipOrWriteAccess) {
  Entry f = owned_file("f", 1000, 1000, 0644);
  EXPECT_EQ(code(set(user(1001, 1001), f.ino, kSetAtimeNow | kSetMtimeNow)), Code::kAccess);
  Attr a = must(set(user(1000, 1000), f.ino, kSetAtimeNow | kSetMtimeNow));  // owner
  EXPECT_GT(a.mtime_ns, f.attr.mtime_ns);
  must(chmod(f.ino, 0646));
  a = must(set(user(1001, 1001), f.ino, kSetMtimeNow));  // others may write
  EXPECT_EQ(a.mtime_ns, a.ctime_ns);
  EXPECT_EQ(attr(f.ino).mtime_ns, a.mtime_ns);
}

TEST_P(AttrTest, ExplicitCtime) {
  Entry f = mkfile(kRootIno, "f");
  SetAttr s;
  s.mode = 0600;
  s.ctime_ns = 12345;
  Attr a = must(set(root(), f.ino, kSetMode | kSetCtime, s));
  EXPECT_EQ(a.ctime_ns, 12345);
  EXPECT_EQ(attr(f.ino).ctime_ns, 12345);
}

TEST_P(AttrTest, KillSuid) {
  Entry f = owned_file("f", 1000, 1000, 06755);
  Attr a = must(set(root(), f.ino, kKillSuid));
  EXPECT_EQ(a.mode, 0755);
  must(chmod(f.ino, 06745));  // sgid without group-exec is kept
  a = must(set(root(), f.ino, kKillSuid));
  EXPECT_EQ(a.mode, 02745);
}

TEST_P(AttrTest, TruncateTypesAndAccess) {
  Entry d = mkdir(kRootIno, "d");
  EXPECT_EQ(code(truncate(root(), d.ino, 0)), Code::kIsDir);
  Entry l = must(m().symlink(root(), kRootIno, "l", "target"));
  EXPECT_EQ(code(truncate(root(), l.ino, 0)), Code::kInvalid);
  Entry f = owned_file("f", 1000, 1000, 0644);
  EXPECT_EQ(code(truncate(user(1001, 1001), f.ino, 10)), Code::kAccess);
  EXPECT_EQ(code(truncate(user(1001, 1001, {1000}), f.ino, 10)), Code::kAccess);
  // ftruncate on a handle opened for writing: the vfs passes check_permission=false.
  Context handle = user(1001, 1001);
  handle.check_permission = false;
  EXPECT_EQ(must(truncate(handle, f.ino, 10)).size, 10u);
  EXPECT_EQ(must(truncate(user(1000, 1000), f.ino, 20)).size, 20u);
  // Truncating a directory is EISDIR even without write access.
  EXPECT_EQ(code(truncate(user(1001, 1001), d.ino, 0)), Code::kIsDir);
}

TEST_P(AttrTest, TruncateGrowsAndShrinksAndCountsSpace) {
  Entry f = mkfile(kRootIno, "f");
  EXPECT_EQ(used_space(), 0);
  Attr a = must(truncate(root(), f.ino, 5000));
  EXPECT_EQ(a.size, 5000u);
  EXPECT_GT(a.mtime_ns, f.attr.mtime_ns);
  EXPECT_EQ(a.mtime_ns, a.ctime_ns);
  EXPECT_EQ(used_space(), 8192);
  a = must(truncate(root(), f.ino, 1));
  EXPECT_EQ(a.size, 1u);
  EXPECT_EQ(attr(f.ino).size, 1u);
  EXPECT_EQ(used_space(), 4096);
  must(truncate(root(), f.ino, 0));
  EXPECT_EQ(used_space(), 0);
}

TEST_P(AttrTest, TruncatePastCapacityIsNoSpace) {
  ASSERT_NO_FATAL_FAILURE(reformat([](Format& f) { f.capacity = 1 << 20; }));
  Entry f = mkfile(kRootIno, "f");
  Entry g = mkfile(kRootIno, "g");
  must(truncate(root(), f.ino, 1 << 19));
  EXPECT_EQ(code(truncate(root(), g.ino, (1 << 19) + 1)), Code::kNoSpace);
  EXPECT_EQ(attr(g.ino).size, 0u);
  must(truncate(root(), g.ino, 1 << 19));
  EXPECT_EQ(used_space(), 1 << 20);
  // Shrinking is always allowed at the limit.
  must(truncate(root(), f.ino, 100));
  EXPECT_EQ(used_space(), (1 << 19) + 4096);
}

TEST_P(AttrTest, TruncatePastMaximumFileSize) {
  Entry f = mkfile(kRootIno, "f");
  EXPECT_EQ(code(truncate(root(), f.ino, UINT64_MAX)), Code::kFileTooBig);
}

TEST_P(AttrTest, ShrinkingDropsTheDataPastTheNewEnd) {
  Entry f = mkfile(kRootIno, "f");
  for (uint32_t index : {0u, 1u}) {
    Slice sl{0, must(m().new_slice_id()), 4096, 0, 4096};
    must(m().write_slice(f.ino, index, sl, now_ns()));
  }
  ASSERT_EQ(attr(f.ino).size, kChunkSize + 4096);
  must(truncate(root(), f.ino, 100));
  EXPECT_TRUE(must(m().read_chunk(f.ino, 1)).empty());
  auto segments = resolve_slices(must(m().read_chunk(f.ino, 0)), 4096);
  ASSERT_FALSE(segments.empty());
  EXPECT_NE(segments.front().id, 0u);
  for (const Segment& seg : segments) {
    if (seg.pos >= 100) {
      EXPECT_EQ(seg.id, 0u) << "data past the new end at " << seg.pos;
    }
  }
  // Growing again reads zeros, not the old bytes.
  must(truncate(root(), f.ino, 4096));
  for (const Segment& seg : resolve_slices(must(m().read_chunk(f.ino, 0)), 4096)) {
    if (seg.pos >= 100) {
      EXPECT_EQ(seg.id, 0u);
    }
  }
}

}  // namespace
}  // namespace sluice::meta
