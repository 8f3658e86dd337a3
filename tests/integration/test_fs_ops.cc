// File-system operations through the kernel on a real mount, with exact errno checks:
// open flags, read/write/pread/pwrite/append, truncate, directories, rename and
// renameat2, hard and symbolic links, name limits, special files, attributes with
// nanosecond times, xattrs, statfs with capacity and inode limits (ENOSPC), sparse files
// across chunks, a large random round trip, big and changing directories, and unlink of
// an open file.
#include <dirent.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

#define ASSERT_OK(expr) ASSERT_NE(static_cast<long>(expr), -1L) << #expr << ": " << std::strerror(errno)
#define EXPECT_OK(expr) EXPECT_NE(static_cast<long>(expr), -1L) << #expr << ": " << std::strerror(errno)

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string pread_str(int fd, size_t len, off_t off) {
  std::string buf(len, '\0');
  ssize_t r = ::pread(fd, buf.data(), len, off);
  if (r < 0) return "<error " + std::string(std::strerror(errno)) + ">";
  buf.resize(static_cast<size_t>(r));
  return buf;
}

class FsOps : public MountFixture {
 protected:
  std::string P(const std::string& rel) const { return mnt_ + "/" + rel; }
  struct stat Stat(const std::string& rel) const {
    struct stat st = {};
    EXPECT_EQ(::lstat(P(rel).c_str(), &st), 0) << rel << ": " << std::strerror(errno);
    return st;
  }
};

TEST_F(FsOps, OpenReadWriteAppendExclTrunc) {
  int fd = ::open(P("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_OK(fd);
  EXPECT_EQ(::write(fd, "hello world", 11), 11);
  EXPECT_EQ(::pwrite(fd, "HELLO", 5, 0), 5);
  EXPECT_EQ(pread_str(fd, 100, 0), "HELLO world");
  EXPECT_EQ(::pwrite(fd, "!", 1, 20), 1);  // past the end: a hole of zeros
  EXPECT_EQ(pread_str(fd, 100, 0), std::string("HELLO world") + std::string(9, '\0') + "!");
  EXPECT_EQ(pread_str(fd, 10, 100), "");  // past EOF
  struct stat st;
  ASSERT_OK(::fstat(fd, &st));
  EXPECT_EQ(st.st_size, 21);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  ASSERT_OK(::close(fd));

  // O_APPEND writes at the end whatever the offset.
  fd = ::open(P("f").c_str(), O_WRONLY | O_APPEND);
  ASSERT_OK(fd);
  ASSERT_OK(::lseek(fd, 0, SEEK_SET));
  EXPECT_EQ(::write(fd, "AB", 2), 2);
  EXPECT_EQ(::write(fd, "CD", 2), 2);
  ASSERT_OK(::close(fd));
  EXPECT_EQ(read_file(P("f")).substr(21), "ABCD");

  EXPECT_ERRNO(::open(P("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
  EXPECT_ERRNO(::open(P("missing").c_str(), O_RDONLY), ENOENT);
  EXPECT_ERRNO(::open(P("f/x").c_str(), O_RDONLY), ENOTDIR);
  ASSERT_OK(::mkdir(P("d").c_str(), 0755));
  EXPECT_ERRNO(::open(P("d").c_str(), O_WRONLY), EISDIR);
  EXPECT_ERRNO(::open(P("d").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);

  // O_TRUNC empties; O_CREAT without O_EXCL opens the existing file.
  fd = ::open(P("f").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  ASSERT_OK(fd);
  ASSERT_OK(::fstat(fd, &st));
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "O_CREAT of an existing file must keep its mode";
  ASSERT_OK(::close(fd));
  EXPECT_EQ(read_file(P("f")), "");

  // Reads of a write-only descriptor and writes of a read-only one fail in the kernel.
  fd = ::open(P("f").c_str(), O_RDONLY);
  ASSERT_OK(fd);
  EXPECT_ERRNO(::write(fd, "x", 1), EBADF);
  ASSERT_OK(::close(fd));
}

TEST_F(FsOps, TruncateGrowAndShrink) {
  const std::string data = random_bytes(10000, 1);
  write_file(P("t"), data);
  ASSERT_OK(::truncate(P("t").c_str(), 100));
  EXPECT_EQ(Stat("t").st_size, 100);
  EXPECT_EQ(read_file(P("t")), data.substr(0, 100));

  int fd = ::open(P("t").c_str(), O_RDWR);
  ASSERT_OK(fd);
  ASSERT_OK(::ftruncate(fd, 1 << 20));  // grow: a hole
  struct stat st;
  ASSERT_OK(::fstat(fd, &st));
  EXPECT_EQ(st.st_size, 1 << 20);
  std::string all = pread_str(fd, 2 << 20, 0);
  ASSERT_EQ(all.size(), size_t{1} << 20);
  EXPECT_EQ(all.substr(0, 100), data.substr(0, 100));
  EXPECT_EQ(all.substr(100), std::string((1 << 20) - 100, '\0'));

  // Data cut off by a shrink must not come back when the file grows again.
  EXPECT_EQ(::pwrite(fd, data.data(), 5000, 500000), 5000);
  ASSERT_OK(::fsync(fd));
  ASSERT_OK(::ftruncate(fd, 500010));
  ASSERT_OK(::ftruncate(fd, 600000));
  std::string back = pread_str(fd, 200000, 500000);
  ASSERT_EQ(back.size(), 100000u);
  EXPECT_EQ(back.substr(0, 10), data.substr(0, 10));
  EXPECT_EQ(back.substr(10), std::string(100000 - 10, '\0'));
  ASSERT_OK(::close(fd));
  fd = ::open(P("t").c_str(), O_RDONLY);  // again through a fresh open
  ASSERT_OK(fd);
  EXPECT_EQ(pread_str(fd, 100, 500005), data.substr(5, 5) + std::string(95, '\0'));
  ASSERT_OK(::close(fd));

  ASSERT_OK(::truncate(P("t").c_str(), 0));
  EXPECT_EQ(Stat("t").st_size, 0);
  ASSERT_OK(::mkdir(P("d").c_str(), 0755));
  EXPECT_ERRNO(::truncate(P("d").c_str(), 0), EISDIR);
  EXPECT_ERRNO(::truncate(P("none").c_str(), 0), ENOENT);
}

TEST_F(FsOps, MkdirRmdirUnlink) {
  ASSERT_OK(::mkdir(P("d").c_str(), 0750));
  struct stat st = Stat("d");
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_OK(::mkdir(P("d/sub").c_str(), 0755));
  EXPECT_EQ(Stat("d").st_nlink, 3u);
  write_file(P("d/file"), "x");
  EXPECT_ERRNO(::mkdir(P("d").c_str(), 0755), EEXIST);
  EXPECT_ERRNO(::mkdir(P("d/file/x").c_str(), 0755), ENOTDIR);
  EXPECT_ERRNO(::mkdir(P("nope/x").c_str(), 0755), ENOENT);
  EXPECT_ERRNO(::rmdir(P("d").c_str()), ENOTEMPTY);
  EXPECT_ERRNO(::rmdir(P("d/file").c_str()), ENOTDIR);
  EXPECT_ERRNO(::rmdir(P("d/none").c_str()), ENOENT);
  EXPECT_ERRNO(::unlink(P("d/sub").c_str()), EISDIR);
  EXPECT_ERRNO(::unlink(P("d/none").c_str()), ENOENT);
  ASSERT_OK(::rmdir(P("d/sub").c_str()));
  EXPECT_EQ(Stat("d").st_nlink, 2u);
  ASSERT_OK(::unlink(P("d/file").c_str()));
  ASSERT_OK(::rmdir(P("d").c_str()));
  EXPECT_ERRNO(::access(P("d").c_str(), F_OK), ENOENT);
  EXPECT_TRUE(list_dir(mnt_).empty());
}

TEST_F(FsOps, Rename) {
  write_file(P("a"), "content a");
  write_file(P("b"), "content b");
  ino_t ino_a = Stat("a").st_ino;
  ASSERT_OK(::rename(P("a").c_str(), P("b").c_str()));  // replaces b
  EXPECT_ERRNO(::access(P("a").c_str(), F_OK), ENOENT);
  EXPECT_EQ(read_file(P("b")), "content a");
  EXPECT_EQ(Stat("b").st_ino, ino_a);
  ASSERT_OK(::rename(P("b").c_str(), P("b").c_str()));  // same name: nothing happens
  EXPECT_EQ(read_file(P("b")), "content a");

  ASSERT_OK(::mkdir(P("d1").c_str(), 0755));
  ASSERT_OK(::mkdir(P("d2").c_str(), 0755));
  write_file(P("d1/inner"), "in");
  ASSERT_OK(::rename(P("d1").c_str(), P("d2").c_str()));  // replaces the empty d2
  EXPECT_EQ(read_file(P("d2/inner")), "in");
  EXPECT_ERRNO(::access(P("d1").c_str(), F_OK), ENOENT);

  ASSERT_OK(::mkdir(P("d3").c_str(), 0755));
  EXPECT_ERRNO(::rename(P("d3").c_str(), P("d2").c_str()), ENOTEMPTY);
  EXPECT_ERRNO(::rename(P("b").c_str(), P("d3").c_str()), EISDIR);
  EXPECT_ERRNO(::rename(P("d3").c_str(), P("b").c_str()), ENOTDIR);
  EXPECT_ERRNO(::rename(P("none").c_str(), P("x").c_str()), ENOENT);
  ASSERT_OK(::mkdir(P("d2/deep").c_str(), 0755));
  EXPECT_ERRNO(::rename(P("d2").c_str(), P("d2/deep/moved").c_str()), EINVAL);
  EXPECT_ERRNO(::rename(P("d2").c_str(), P("d2/moved").c_str()), EINVAL);

  // Moving a directory between parents fixes both link counts and "..".
  ASSERT_OK(::rename(P("d3").c_str(), P("d2/deep/d3").c_str()));
  EXPECT_EQ(Stat("d2/deep").st_nlink, 3u);
  EXPECT_EQ(Stat("d2/deep/d3/..").st_ino, Stat("d2/deep").st_ino);
  EXPECT_EQ(list_dir(mnt_), (std::set<std::string>{"b", "d2"}));
}

TEST_F(FsOps, Renameat2NoReplaceAndExchange) {
  write_file(P("x"), "xx");
  write_file(P("y"), "yyy");
  ASSERT_OK(::mkdir(P("d").c_str(), 0755));
  write_file(P("d/inside"), "i");
  EXPECT_ERRNO(syscall(SYS_renameat2, AT_FDCWD, P("x").c_str(), AT_FDCWD, P("y").c_str(),
                       RENAME_NOREPLACE),
               EEXIST);
  EXPECT_EQ(read_file(P("y")), "yyy");
  ASSERT_OK(syscall(SYS_renameat2, AT_FDCWD, P("x").c_str(), AT_FDCWD, P("z").c_str(),
                    RENAME_NOREPLACE));
  EXPECT_EQ(read_file(P("z")), "xx");

  ino_t iy = Stat("y").st_ino, iz = Stat("z").st_ino;
  ASSERT_OK(syscall(SYS_renameat2, AT_FDCWD, P("y").c_str(), AT_FDCWD, P("z").c_str(),
                    RENAME_EXCHANGE));
  EXPECT_EQ(read_file(P("y")), "xx");
  EXPECT_EQ(read_file(P("z")), "yyy");
  EXPECT_EQ(Stat("y").st_ino, iz);
  EXPECT_EQ(Stat("z").st_ino, iy);

  // A file and a directory trade places (also across parents).
  ASSERT_OK(syscall(SYS_renameat2, AT_FDCWD, P("y").c_str(), AT_FDCWD, P("d").c_str(),
                    RENAME_EXCHANGE));
  EXPECT_TRUE(S_ISDIR(Stat("y").st_mode));
  EXPECT_EQ(read_file(P("y/inside")), "i");
  EXPECT_EQ(read_file(P("d")), "xx");
  ASSERT_OK(syscall(SYS_renameat2, AT_FDCWD, P("d").c_str(), AT_FDCWD, P("y/inside").c_str(),
                    RENAME_EXCHANGE));
  EXPECT_EQ(read_file(P("d")), "i");
  EXPECT_EQ(read_file(P("y/inside")), "xx");
  EXPECT_ERRNO(syscall(SYS_renameat2, AT_FDCWD, P("z").c_str(), AT_FDCWD, P("none").c_str(),
                       RENAME_EXCHANGE),
               ENOENT);
  EXPECT_ERRNO(syscall(SYS_renameat2, AT_FDCWD, P("y").c_str(), AT_FDCWD, P("y/sub").c_str(),
                       RENAME_NOREPLACE),
               EINVAL);
}

TEST_F(FsOps, HardLinks) {
  write_file(P("orig"), "shared");
  ASSERT_OK(::link(P("orig").c_str(), P("alias").c_str()));
  struct stat a = Stat("orig"), b = Stat("alias");
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  EXPECT_EQ(b.st_nlink, 2u);
  int fd = ::open(P("alias").c_str(), O_WRONLY | O_APPEND);
  ASSERT_OK(fd);
  EXPECT_EQ(::write(fd, "+more", 5), 5);
  ASSERT_OK(::close(fd));
  EXPECT_EQ(read_file(P("orig")), "shared+more");
  EXPECT_ERRNO(::link(P("orig").c_str(), P("alias").c_str()), EEXIST);
  EXPECT_ERRNO(::link(P("none").c_str(), P("x").c_str()), ENOENT);
  ASSERT_OK(::mkdir(P("dir").c_str(), 0755));
  EXPECT_ERRNO(::link(P("dir").c_str(), P("dirlink").c_str()), EPERM);
  ASSERT_OK(::unlink(P("orig").c_str()));
  EXPECT_EQ(Stat("alias").st_nlink, 1u);
  EXPECT_EQ(read_file(P("alias")), "shared+more");
}

TEST_F(FsOps, SymlinksAndLoops) {
  write_file(P("target"), "through the link");
  ASSERT_OK(::symlink("target", P("ln").c_str()));
  char buf[256];
  ssize_t n = ::readlink(P("ln").c_str(), buf, sizeof buf);
  ASSERT_EQ(n, 6);
  EXPECT_EQ(std::string(buf, 6), "target");
  struct stat st = Stat("ln");
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_size, 6);
  EXPECT_EQ(read_file(P("ln")), "through the link");
  EXPECT_ERRNO(::readlink(P("target").c_str(), buf, sizeof buf), EINVAL);
  EXPECT_ERRNO(::open(P("ln").c_str(), O_RDONLY | O_NOFOLLOW), ELOOP);
  EXPECT_ERRNO(::symlink("other", P("ln").c_str()), EEXIST);

  const std::string long_target(1000, 'a');  // longer than a name, shorter than PATH_MAX
  ASSERT_OK(::symlink(long_target.c_str(), P("longln").c_str()));
  std::string lbuf(4096, '\0');
  EXPECT_EQ(::readlink(P("longln").c_str(), lbuf.data(), lbuf.size()), 1000);

  ASSERT_OK(::symlink("loop2", P("loop1").c_str()));
  ASSERT_OK(::symlink("loop1", P("loop2").c_str()));
  EXPECT_ERRNO(::open(P("loop1").c_str(), O_RDONLY), ELOOP);
  EXPECT_ERRNO(::stat(P("loop1").c_str(), &st), ELOOP);
  ASSERT_OK(::symlink("missing", P("dangling").c_str()));
  EXPECT_ERRNO(::open(P("dangling").c_str(), O_RDONLY), ENOENT);
  ASSERT_OK(::unlink(P("ln").c_str()));  // removes the link, not the target
  EXPECT_EQ(read_file(P("target")), "through the link");
}

TEST_F(FsOps, NameLengthLimit) {
  const std::string ok(255, 'n'), too_long(256, 'n');
  write_file(P(ok), "x");
  EXPECT_EQ(read_file(P(ok)), "x");
  EXPECT_TRUE(list_dir(mnt_).count(ok));
  EXPECT_ERRNO(::open(P(too_long).c_str(), O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
  EXPECT_ERRNO(::mkdir(P(too_long).c_str(), 0755), ENAMETOOLONG);
  EXPECT_ERRNO(::symlink("t", P(too_long).c_str()), ENAMETOOLONG);
  EXPECT_ERRNO(::rename(P(ok).c_str(), P(too_long).c_str()), ENAMETOOLONG);
  EXPECT_ERRNO(::link(P(ok).c_str(), P(too_long).c_str()), ENAMETOOLONG);
  struct stat st;
  EXPECT_ERRNO(::stat(P(too_long).c_str(), &st), ENAMETOOLONG);
  struct statvfs sv;
  ASSERT_OK(::statvfs(mnt_.c_str(), &sv));
  EXPECT_EQ(sv.f_namemax, 255u);
}

TEST_F(FsOps, SpecialFiles) {
  ASSERT_OK(::mkfifo(P("fifo").c_str(), 0640));
  struct stat st = Stat("fifo");
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);

  ASSERT_OK(::mknod(P("sock").c_str(), S_IFSOCK | 0600, 0));
  EXPECT_TRUE(S_ISSOCK(Stat("sock").st_mode));

  // bind() of an AF_UNIX socket creates the node through the mount.
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_OK(s);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::string sp = P("bound.sock");
  ASSERT_LT(sp.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, sp.c_str(), sp.size() + 1);
  EXPECT_OK(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
  ::close(s);
  EXPECT_TRUE(S_ISSOCK(Stat("bound.sock").st_mode));

  ASSERT_OK(::mknod(P("null").c_str(), S_IFCHR | 0666, makedev(1, 3)));
  st = Stat("null");
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  ASSERT_OK(::mknod(P("blk").c_str(), S_IFBLK | 0660, makedev(8, 17)));
  st = Stat("blk");
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 8u);
  EXPECT_EQ(minor(st.st_rdev), 17u);
  ASSERT_OK(::mknod(P("regular").c_str(), S_IFREG | 0644, 0));
  EXPECT_TRUE(S_ISREG(Stat("regular").st_mode));
  EXPECT_ERRNO(::mknod(P("fifo").c_str(), S_IFIFO | 0644, 0), EEXIST);
  EXPECT_EQ(list_dir(mnt_),
            (std::set<std::string>{"fifo", "sock", "bound.sock", "null", "blk", "regular"}));
}

TEST_F(FsOps, ChmodChownAndNanosecondTimes) {
  write_file(P("f"), "x");
  ASSERT_OK(::chmod(P("f").c_str(), 0640));
  EXPECT_EQ(Stat("f").st_mode & 07777, 0640u);
  ASSERT_OK(::chmod(P("f").c_str(), 04751));
  EXPECT_EQ(Stat("f").st_mode & 07777, 04751u);
  ASSERT_OK(::chown(P("f").c_str(), 1234, 5678));
  struct stat st = Stat("f");
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  ASSERT_OK(::chown(P("f").c_str(), static_cast<uid_t>(-1), 42));  // group only
  st = Stat("f");
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 42u);

  timespec times[2] = {{1234567890, 123456789}, {987654321, 999999999}};
  ASSERT_OK(::utimensat(AT_FDCWD, P("f").c_str(), times, 0));
  st = Stat("f");
  EXPECT_EQ(st.st_atim.tv_sec, 1234567890);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_mtim.tv_sec, 987654321);
  EXPECT_EQ(st.st_mtim.tv_nsec, 999999999);

  timespec omit_atime[2] = {{0, UTIME_OMIT}, {5, 1}};
  ASSERT_OK(::utimensat(AT_FDCWD, P("f").c_str(), omit_atime, 0));
  st = Stat("f");
  EXPECT_EQ(st.st_atim.tv_sec, 1234567890);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_mtim.tv_sec, 5);
  EXPECT_EQ(st.st_mtim.tv_nsec, 1);

  // UTIME_NOW sets the current time; ctime moves with every change.
  timespec before;
  clock_gettime(CLOCK_REALTIME, &before);
  timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  ASSERT_OK(::utimensat(AT_FDCWD, P("f").c_str(), now, 0));
  st = Stat("f");
  EXPECT_GE(st.st_mtim.tv_sec, before.tv_sec - 1);
  EXPECT_LE(st.st_mtim.tv_sec, before.tv_sec + 5);
  EXPECT_GE(st.st_ctim.tv_sec, before.tv_sec - 1);

  // Through a descriptor too.
  int fd = ::open(P("f").c_str(), O_RDWR);
  ASSERT_OK(fd);
  ASSERT_OK(::fchmod(fd, 0600));
  timespec t2[2] = {{100, 200}, {300, 400}};
  ASSERT_OK(::futimens(fd, t2));
  ASSERT_OK(::fstat(fd, &st));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_mtim.tv_sec, 300);
  EXPECT_EQ(st.st_mtim.tv_nsec, 400);
  ASSERT_OK(::close(fd));

  // A symlink's own times (AT_SYMLINK_NOFOLLOW) leave the target alone.
  ASSERT_OK(::symlink("f", P("ln").c_str()));
  timespec t3[2] = {{7, 7}, {8, 8}};
  ASSERT_OK(::utimensat(AT_FDCWD, P("ln").c_str(), t3, AT_SYMLINK_NOFOLLOW));
  EXPECT_EQ(Stat("ln").st_mtim.tv_nsec, 8);
  EXPECT_EQ(Stat("f").st_mtim.tv_sec, 300);
}

TEST_F(FsOps, Xattrs) {
  write_file(P("f"), "x");
  const std::string fp = P("f");
  const char* f = fp.c_str();
  ASSERT_OK(::setxattr(f, "user.one", "v1", 2, 0));
  ASSERT_OK(::setxattr(f, "user.empty", "", 0, 0));
  char buf[256];
  EXPECT_EQ(::getxattr(f, "user.one", nullptr, 0), 2);  // size query
  ASSERT_EQ(::getxattr(f, "user.one", buf, sizeof buf), 2);
  EXPECT_EQ(std::string(buf, 2), "v1");
  EXPECT_EQ(::getxattr(f, "user.empty", buf, sizeof buf), 0);
  EXPECT_ERRNO(::getxattr(f, "user.one", buf, 1), ERANGE);

  EXPECT_ERRNO(::setxattr(f, "user.one", "v2", 2, XATTR_CREATE), EEXIST);
  EXPECT_ERRNO(::setxattr(f, "user.two", "v2", 2, XATTR_REPLACE), ENODATA);
  ASSERT_OK(::setxattr(f, "user.one", "value two", 9, XATTR_REPLACE));
  ASSERT_EQ(::getxattr(f, "user.one", buf, sizeof buf), 9);
  EXPECT_EQ(std::string(buf, 9), "value two");
  ASSERT_OK(::setxattr(f, "user.two", "2", 1, XATTR_CREATE));

  ssize_t n = ::listxattr(f, buf, sizeof buf);
  ASSERT_GT(n, 0) << std::strerror(errno);
  std::set<std::string> names;
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(buf + i)) + 1) names.insert(buf + i);
  EXPECT_EQ(names, (std::set<std::string>{"user.one", "user.empty", "user.two"}));
  EXPECT_EQ(::listxattr(f, nullptr, 0), n);
  EXPECT_ERRNO(::listxattr(f, buf, 3), ERANGE);

  ASSERT_OK(::removexattr(f, "user.one"));
  EXPECT_ERRNO(::getxattr(f, "user.one", buf, sizeof buf), ENODATA);
  EXPECT_ERRNO(::removexattr(f, "user.one"), ENODATA);
  EXPECT_ERRNO(::getxattr(f, "user.never", buf, sizeof buf), ENODATA);

  // Directories carry them too; values survive a remount.
  ASSERT_OK(::mkdir(P("d").c_str(), 0755));
  std::string big(4000, 'v');
  ASSERT_OK(::setxattr(P("d").c_str(), "user.big", big.data(), big.size(), 0));
  Unmount();
  Mount();
  std::string got(8000, '\0');
  ASSERT_EQ(::getxattr(P("d").c_str(), "user.big", got.data(), got.size()), 4000);
  EXPECT_EQ(got.substr(0, 4000), big);
  ASSERT_EQ(::getxattr(f, "user.two", buf, sizeof buf), 1);
}

// Several descriptors of one file in one mount behave as on a local file system, even
// while writes are still buffered in the mount: later writes win, truncation discards
// what was written before it, sizes and bytes are visible before any close.
TEST_F(FsOps, BufferedWritesThroughSeveralDescriptors) {
  int a = ::open(P("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_OK(a);
  EXPECT_EQ(::write(a, "1111", 4), 4);
  int b = ::open(P("f").c_str(), O_RDWR);
  ASSERT_OK(b);
  EXPECT_EQ(pread_str(b, 10, 0), "1111");
  EXPECT_EQ(::write(b, "22", 2), 2);
  ASSERT_OK(::close(b));  // b's slice commits first, a's later: a's older bytes must not win
  ASSERT_OK(::close(a));
  EXPECT_EQ(read_file(P("f")), "2211");

  a = ::open(P("g").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_OK(a);
  EXPECT_EQ(::write(a, "AAAAAAAA", 8), 8);
  ASSERT_OK(::truncate(P("g").c_str(), 2));
  EXPECT_EQ(::pwrite(a, "B", 1, 5), 1);
  ASSERT_OK(::close(a));
  EXPECT_EQ(read_file(P("g")), std::string("AA\0\0\0B", 6));

  a = ::open(P("h").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_OK(a);
  EXPECT_EQ(::write(a, "CCCC", 4), 4);
  b = ::open(P("h").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_OK(b);
  struct stat st;
  ASSERT_OK(::stat(P("h").c_str(), &st));
  EXPECT_EQ(st.st_size, 0);
  ASSERT_OK(::close(b));
  ASSERT_OK(::close(a));
  EXPECT_EQ(read_file(P("h")), "");
}

// Times and block counts: writes move mtime, namespace changes move the parent's mtime
// and ctime and the inode's ctime; st_blocks counts the data (tools such as cp and du
// rely on it).
TEST_F(FsOps, TimesAndBlocks) {
  ASSERT_OK(::mkdir(P("d").c_str(), 0755));
  auto reset = [&](const std::string& rel) {
    timespec old[2] = {{1000, 0}, {1000, 0}};
    ASSERT_OK(::utimensat(AT_FDCWD, P(rel).c_str(), old, AT_SYMLINK_NOFOLLOW));
  };
  auto changed = [&](const std::string& rel) { return Stat(rel).st_mtim.tv_sec > 1000; };
  reset("d");
  write_file(P("d/f"), "x");
  EXPECT_TRUE(changed("d")) << "create must update the parent's mtime";
  reset("d");
  ASSERT_OK(::mkdir(P("d/sub").c_str(), 0755));
  EXPECT_TRUE(changed("d")) << "mkdir";
  reset("d");
  ASSERT_OK(::rename(P("d/f").c_str(), P("d/g").c_str()));
  EXPECT_TRUE(changed("d")) << "rename";
  reset("d");
  ASSERT_OK(::unlink(P("d/g").c_str()));
  EXPECT_TRUE(changed("d")) << "unlink";

  write_file(P("f"), "data");
  reset("f");
  struct stat before = Stat("f");
  int fd = ::open(P("f").c_str(), O_WRONLY);
  ASSERT_OK(fd);
  EXPECT_EQ(::pwrite(fd, "more", 4, 4), 4);
  ASSERT_OK(::close(fd));
  struct stat after = Stat("f");
  EXPECT_GT(after.st_mtim.tv_sec, 1000) << "write must update mtime";
  EXPECT_GE(after.st_ctim.tv_sec, before.st_ctim.tv_sec);
  timespec c0 = Stat("f").st_ctim;
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_OK(::link(P("f").c_str(), P("f2").c_str()));
  timespec c1 = Stat("f").st_ctim;
  EXPECT_TRUE(c1.tv_sec > c0.tv_sec || (c1.tv_sec == c0.tv_sec && c1.tv_nsec > c0.tv_nsec))
      << "link must update the inode's ctime";

  const std::string mib(1 << 20, 'b');
  write_file(P("big"), mib);
  struct stat st = Stat("big");
  EXPECT_GE(st.st_blocks * 512, static_cast<blkcnt_t>(mib.size()));
  EXPECT_LE(st.st_blocks * 512, static_cast<blkcnt_t>(mib.size()) + (64 << 10));
  EXPECT_GT(st.st_blksize, 0);
}

TEST_F(FsOps, UnlinkOpenFile) {
  struct statvfs before;
  ASSERT_OK(::statvfs(mnt_.c_str(), &before));
  const uint64_t used_before = before.f_files - before.f_ffree;
  int fd = ::open(P("ghost").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_OK(fd);
  const std::string data = random_bytes(300000, 5);
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  int fd2 = ::open(P("ghost").c_str(), O_RDONLY);
  ASSERT_OK(fd2);
  ASSERT_OK(::unlink(P("ghost").c_str()));
  struct stat st;
  EXPECT_ERRNO(::stat(P("ghost").c_str(), &st), ENOENT);
  EXPECT_TRUE(list_dir(mnt_).empty());
  ASSERT_OK(::fstat(fd, &st));
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(pread_str(fd, data.size(), 0), data);
  EXPECT_EQ(::pwrite(fd, "tail", 4, static_cast<off_t>(data.size())), 4);
  ASSERT_OK(::fsync(fd));
  EXPECT_EQ(pread_str(fd2, 10, static_cast<off_t>(data.size()) - 2), data.substr(data.size() - 2) + "tail");
  ASSERT_OK(::close(fd));
  EXPECT_EQ(pread_str(fd2, 4, 0), data.substr(0, 4)) << "still open through fd2";
  ASSERT_OK(::close(fd2));
  // A new file of the same name is a different, empty file.
  write_file(P("ghost"), "new");
  EXPECT_EQ(read_file(P("ghost")), "new");
  ASSERT_OK(::unlink(P("ghost").c_str()));
  // After the last close the inode is released (the release reaches the mount
  // asynchronously: poll).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  uint64_t used = 0;
  do {
    struct statvfs sv;
    ASSERT_OK(::statvfs(mnt_.c_str(), &sv));
    used = sv.f_files - sv.f_ffree;
    if (used == used_before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(used, used_before);
}

}  // namespace
}  // namespace sluice::test
