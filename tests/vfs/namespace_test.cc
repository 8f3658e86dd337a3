// Namespace operations through the vfs: directory handles with stable offsets,
// forwarded operations, sizes that include buffered writes, xattrs and blocking locks.
#include <sys/xattr.h>

#include <chrono>
#include <thread>

#include "vfs_fixture.h"

namespace sluice::vfs::testing {
namespace {

class NamespaceTest : public VfsTest {
 protected:
  std::vector<std::string> names(const std::vector<DirEntry>& es) {
    std::vector<std::string> out;
    for (const auto& e : es) out.push_back(e.name);
    return out;
  }
  void mkfile(const std::string& name) {
    ASSERT_OK(vfs_->mknod(ctx_, meta::kRootIno, name, meta::FileType::kRegular, 0644, 0));
  }
};

TEST_F(NamespaceTest, ReaddirOffsetsAreStableWhileTheDirectoryChanges) {
  for (int i = 0; i < 6; i++) mkfile("f" + std::to_string(i));
  auto dh = vfs_->opendir(ctx_, meta::kRootIno);
  ASSERT_OK(dh);
  auto first = vfs_->readdir(ctx_, meta::kRootIno, *dh, 0, 4, false);
  ASSERT_OK(first);
  EXPECT_EQ(names(*first), (std::vector<std::string>{".", "..", "f0", "f1"}));
  EXPECT_EQ((*first)[0].ino, meta::kRootIno);
  EXPECT_EQ((*first)[1].ino, meta::kRootIno) << "the root is its own parent";

  mkfile("a_new");  // sorts before the rest
  ASSERT_OK(vfs_->unlink(ctx_, meta::kRootIno, "f3"));
  auto rest = vfs_->readdir(ctx_, meta::kRootIno, *dh, 4, 100, false);
  ASSERT_OK(rest);
  EXPECT_EQ(names(*rest), (std::vector<std::string>{"f2", "f3", "f4", "f5"}));
  auto again = vfs_->readdir(ctx_, meta::kRootIno, *dh, 3, 2, false);
  ASSERT_OK(again);
  EXPECT_EQ(names(*again), (std::vector<std::string>{"f1", "f2"})) << "seeking back";
  auto end = vfs_->readdir(ctx_, meta::kRootIno, *dh, 8, 100, false);
  ASSERT_OK(end);
  EXPECT_TRUE(end->empty());

  // plus: attributes filled; the vanished f3 is dropped and the numbering closes up.
  auto plus = vfs_->readdir(ctx_, meta::kRootIno, *dh, 4, 100, true);
  ASSERT_OK(plus);
  EXPECT_EQ(names(*plus), (std::vector<std::string>{"f2", "f4", "f5"}));
  for (const auto& e : *plus) {
    ASSERT_TRUE(e.attr.has_value());
    EXPECT_TRUE(e.attr->is_file());
  }
  EXPECT_OK(vfs_->releasedir(meta::kRootIno, *dh));
  EXPECT_EQ(vfs_->readdir(ctx_, meta::kRootIno, *dh, 0, 1, false).status().code(), Code::kBadFd);

  auto fresh = vfs_->opendir(ctx_, meta::kRootIno);
  ASSERT_OK(fresh);
  auto all = vfs_->readdir(ctx_, meta::kRootIno, *fresh, 2, 0, false);
  ASSERT_OK(all);
  EXPECT_EQ(names(*all), (std::vector<std::string>{"a_new", "f0", "f1", "f2", "f4", "f5"}));
  EXPECT_OK(vfs_->releasedir(meta::kRootIno, *fresh));
}

TEST_F(NamespaceTest, OpendirNeedsADirectory) {
  mkfile("f");
  Ino f = lookup(*vfs_, "f");
  EXPECT_EQ(vfs_->opendir(ctx_, f).status().code(), Code::kNotDir);
  EXPECT_EQ(vfs_->opendir(ctx_, 9999).status().code(), Code::kNotFound);
}

TEST_F(NamespaceTest, SubdirectoryDotDotIsTheParent) {
  auto d = vfs_->mkdir(ctx_, meta::kRootIno, "d", 0755);
  ASSERT_OK(d);
  auto dh = vfs_->opendir(ctx_, d->ino);
  ASSERT_OK(dh);
  auto es = vfs_->readdir(ctx_, d->ino, *dh, 0, 0, true);
  ASSERT_OK(es);
  ASSERT_EQ(es->size(), 2u);
  EXPECT_EQ((*es)[1].ino, meta::kRootIno);
  ASSERT_TRUE((*es)[1].attr.has_value());
  EXPECT_TRUE((*es)[1].attr->is_dir());
  EXPECT_OK(vfs_->releasedir(d->ino, *dh));
}

TEST_F(NamespaceTest, SizesIncludeBufferedWrites) {
  auto [ino, fh] = create("f");
  ASSERT_TRUE(write(*vfs_, ino, fh, 1000, "abc"));
  auto a = vfs_->getattr(ctx_, ino);
  ASSERT_OK(a);
  EXPECT_EQ(a->size, 1003u);
  auto e = vfs_->lookup(ctx_, meta::kRootIno, "f");
  ASSERT_OK(e);
  EXPECT_EQ(e->attr.size, 1003u);
  auto dh = vfs_->opendir(ctx_, meta::kRootIno);
  ASSERT_OK(dh);
  auto es = vfs_->readdir(ctx_, meta::kRootIno, *dh, 2, 0, true);
  ASSERT_OK(es);
  ASSERT_EQ(es->size(), 1u);
  EXPECT_EQ((*es)[0].attr->size, 1003u);
  EXPECT_OK(vfs_->releasedir(meta::kRootIno, *dh));
  meta::SetAttr chmod;
  chmod.mask = meta::kSetMode;
  chmod.mode = 0600;
  auto after = vfs_->setattr(ctx_, ino, chmod);
  ASSERT_OK(after);
  EXPECT_EQ(after->size, 1003u);
  EXPECT_EQ(after->mode, 0600);
  EXPECT_OK(vfs_->release(ino, fh));
}

TEST_F(NamespaceTest, ForwardedOperations) {
  auto d = vfs_->mkdir(ctx_, meta::kRootIno, "d", 0755);
  ASSERT_OK(d);
  auto s = vfs_->symlink(ctx_, d->ino, "s", "/target");
  ASSERT_OK(s);
  auto target = vfs_->readlink(ctx_, s->ino);
  ASSERT_OK(target);
  EXPECT_EQ(*target, "/target");
  auto [ino, fh] = create("f");
  ASSERT_TRUE(write(*vfs_, ino, fh, 0, "12345"));
  auto l = vfs_->link(ctx_, ino, d->ino, "hard");
  ASSERT_OK(l);
  EXPECT_EQ(l->attr.size, 5u);
  EXPECT_EQ(l->attr.nlink, 2u);
  ASSERT_OK(vfs_->rename(ctx_, meta::kRootIno, "f", d->ino, "g", 0));
  EXPECT_EQ(lookup(*vfs_, "d"), d->ino);
  EXPECT_EQ(vfs_->lookup(ctx_, d->ino, "g")->ino, ino);
  EXPECT_EQ(vfs_->rmdir(ctx_, meta::kRootIno, "d").code(), Code::kNotEmpty);
  EXPECT_OK(vfs_->access(ctx_, ino, R_OK | W_OK));
  auto fs = vfs_->statfs(ctx_);
  ASSERT_OK(fs);
  EXPECT_GE(fs->used_inodes, 3u);

  ASSERT_OK(vfs_->setxattr(ctx_, ino, "user.k", "v", 0));
  EXPECT_EQ(vfs_->setxattr(ctx_, ino, "user.k", "w", XATTR_CREATE).code(), Code::kExists);
  EXPECT_EQ(*vfs_->getxattr(ctx_, ino, "user.k"), "v");
  EXPECT_EQ(*vfs_->listxattr(ctx_, ino), std::vector<std::string>{"user.k"});
  ASSERT_OK(vfs_->removexattr(ctx_, ino, "user.k"));
  EXPECT_EQ(vfs_->getxattr(ctx_, ino, "user.k").status().code(), Code::kNoAttr);
  EXPECT_OK(vfs_->release(ino, fh));
}

TEST_F(NamespaceTest, CreateOpensEvenWithoutWritePermission) {
  Context user = ctx_;
  user.uid = user.gid = 1000;
  auto d = vfs_->mkdir(ctx_, meta::kRootIno, "d", 0777);
  ASSERT_OK(d);
  auto c = vfs_->create(user, d->ino, "ro", 0444, O_WRONLY | O_CREAT);
  ASSERT_OK(c);
  ASSERT_TRUE(write(*vfs_, c->first.ino, c->second, 0, "x"));
  EXPECT_OK(vfs_->release(c->first.ino, c->second));
  EXPECT_EQ(vfs_->open(user, c->first.ino, O_WRONLY).status().code(), Code::kAccess);
  EXPECT_EQ(vfs_->create(user, d->ino, "ro", 0644, O_WRONLY).status().code(), Code::kExists);
}

TEST_F(NamespaceTest, FtruncateThroughAWritableHandleSkipsThePermissionCheck) {
  Context user = ctx_;
  user.uid = user.gid = 1000;
  auto d = vfs_->mkdir(ctx_, meta::kRootIno, "d", 0777);
  ASSERT_OK(d);
  auto c = vfs_->create(user, d->ino, "f", 0444, O_WRONLY);
  ASSERT_OK(c);
  meta::SetAttr req;
  req.mask = meta::kSetSize;
  req.size = 10;
  EXPECT_EQ(vfs_->setattr(user, c->first.ino, req).status().code(), Code::kAccess);
  auto a = vfs_->setattr(user, c->first.ino, req, c->second);
  ASSERT_OK(a);
  EXPECT_EQ(a->size, 10u);
  EXPECT_OK(vfs_->release(c->first.ino, c->second));
}

TEST_F(NamespaceTest, BlockingFlockWaitsForTheHolder) {
  mkfile("f");
  Ino ino = lookup(*vfs_, "f");
  ASSERT_OK(vfs_->flock(ino, 1, F_WRLCK, false));
  EXPECT_EQ(vfs_->flock(ino, 2, F_WRLCK, false).code(), Code::kAgain);
  std::atomic<bool> granted{false};
  std::thread waiter([&] {
    EXPECT_OK(vfs_->flock(ino, 2, F_WRLCK, true));
    granted = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(granted.load());
  ASSERT_OK(vfs_->flock(ino, 1, F_UNLCK, false));
  waiter.join();
  EXPECT_TRUE(granted.load());
  EXPECT_EQ(vfs_->flock(ino, 1, F_RDLCK, false).code(), Code::kAgain);
}

TEST_F(NamespaceTest, BlockingSetlkCanBeInterrupted) {
  mkfile("f");
  Ino ino = lookup(*vfs_, "f");
  meta::LockRange lock{F_WRLCK, 0, 99, 1};
  ASSERT_OK(vfs_->setlk(ino, 1, lock, false));
  auto conflict = vfs_->getlk(ino, 2, meta::LockRange{F_RDLCK, 50, 60, 2});
  ASSERT_OK(conflict);
  EXPECT_EQ(conflict->type, static_cast<uint32_t>(F_WRLCK));
  int polls = 0;
  Status s =
      vfs_->setlk(ino, 2, meta::LockRange{F_RDLCK, 50, 60, 2}, true, [&] { return ++polls >= 3; });
  EXPECT_EQ(s.code(), Code::kInterrupted);
  EXPECT_EQ(polls, 3);
  EXPECT_OK(vfs_->setlk(ino, 2, meta::LockRange{F_RDLCK, 100, 200, 2}, true));
}

TEST_F(NamespaceTest, StopWakesBlockedLockWaiters) {
  auto other = mount();
  mkfile("f");
  Ino ino = lookup(*vfs_, "f");
  ASSERT_OK(vfs_->flock(ino, 1, F_WRLCK, false));
  Status waited;
  std::thread waiter([&] { waited = other->flock(ino, 2, F_WRLCK, true); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ASSERT_OK(other->stop());
  waiter.join();
  EXPECT_EQ(waited.code(), Code::kInterrupted);
}

}  // namespace
}  // namespace sluice::vfs::testing
