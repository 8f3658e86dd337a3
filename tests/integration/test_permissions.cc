// POSIX permission semantics through the mount. The mount runs without the kernel's
// default_permissions, so every check here is Sluice's own: forked children switch
// identity (setgroups, setresgid, setresuid) and report the errno of what they tried
// back through a pipe. Covers owner/group/other bits, supplementary groups, EACCES
// versus EPERM, sticky directories, setgid directories, clearing of setuid/setgid on
// write and chown, access(2), and lookups in directories without search permission.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <dirent.h>
#include <grp.h>

#include <functional>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

struct Ident {
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;  // supplementary
};

const Ident kAlice{1000, 1000, {2000}};  // owner of most test files; member of 2000
const Ident kBob{1001, 1001, {}};        // "other" to everything of Alice's
const Ident kCarol{1002, 1002, {1000}};  // in Alice's primary group

// 0 if r >= 0, else errno.
int err_of(long r) { return r < 0 ? errno : 0; }

// Runs fn in a child process as `who` (umask 022) and returns what fn returned (an
// errno, 0 for success), or -1000 - n if the child could not switch identity (n = step).
int as(const Ident& who, const std::function<int()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) return -2000;
  pid_t pid = fork();
  if (pid == 0) {
    ::close(fds[0]);
    int result;
    if (setgroups(who.groups.size(), who.groups.data()) != 0) result = -1001;
    else if (setresgid(who.gid, who.gid, who.gid) != 0) result = -1002;
    else if (setresuid(who.uid, who.uid, who.uid) != 0) result = -1003;
    else {
      umask(022);
      result = fn();
    }
    (void)!write(fds[1], &result, sizeof result);
    _exit(0);
  }
  ::close(fds[1]);
  int result = -2001;
  if (read(fds[0], &result, sizeof result) != sizeof result) result = -2002;
  ::close(fds[0]);
  waitpid(pid, nullptr, 0);
  return result;
}

int open_err(const std::string& p, int flags, mode_t mode = 0644) {
  int fd = ::open(p.c_str(), flags, mode);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

// Opens with `flags`, writes `data` and closes: 0 or the first errno.
int write_err(const std::string& p, const std::string& data, int flags) {
  int fd = ::open(p.c_str(), flags);
  if (fd < 0) return errno;
  int r = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) ? 0 : errno;
  if (::close(fd) != 0 && r == 0) r = errno;
  return r;
}
int append_err(const std::string& p, const std::string& data) {
  return write_err(p, data, O_WRONLY | O_APPEND);
}

class Permissions : public MountFixture {
 protected:
  // Other users reach the mount (allow_other) through a traversable temp directory;
  // zero timeouts so that every lookup is checked by the mount, not the dentry cache.
  std::vector<std::string> MountOptions() const override {
    return {"--allow-other", "--entry-timeout", "0", "--attr-timeout", "0",
            "--dir-entry-timeout", "0"};
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to switch identities";
    MountFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
    ASSERT_EQ(chmod(mnt_.c_str(), 0777), 0);
  }

  std::string P(const std::string& rel) const { return mnt_ + "/" + rel; }

  // A file with `content`, owned by uid:gid, with `mode` (set after the chown).
  void MakeFile(const std::string& rel, uid_t uid, gid_t gid, mode_t mode,
                const std::string& content = "data") {
    write_file(P(rel), content);
    ASSERT_EQ(::chown(P(rel).c_str(), uid, gid), 0) << std::strerror(errno);
    ASSERT_EQ(::chmod(P(rel).c_str(), mode), 0) << std::strerror(errno);
  }
  void MakeDir(const std::string& rel, uid_t uid, gid_t gid, mode_t mode) {
    ASSERT_EQ(::mkdir(P(rel).c_str(), 0755), 0) << std::strerror(errno);
    ASSERT_EQ(::chown(P(rel).c_str(), uid, gid), 0) << std::strerror(errno);
    ASSERT_EQ(::chmod(P(rel).c_str(), mode), 0) << std::strerror(errno);
  }
  mode_t Mode(const std::string& rel) const {
    struct stat st = {};
    EXPECT_EQ(::lstat(P(rel).c_str(), &st), 0) << rel << ": " << std::strerror(errno);
    return st.st_mode & 07777;
  }
  struct stat Stat(const std::string& rel) const {
    struct stat st = {};
    EXPECT_EQ(::lstat(P(rel).c_str(), &st), 0) << rel << ": " << std::strerror(errno);
    return st;
  }
};

TEST_F(Permissions, ModeBitsOwnerGroupOther) {
  MakeFile("f", 1000, 1000, 0640);
  std::string f = P("f");
  EXPECT_EQ(as(kAlice, [&] { return open_err(f, O_RDWR); }), 0);
  EXPECT_EQ(as(kCarol, [&] { return open_err(f, O_RDONLY); }), 0);  // group r
  EXPECT_EQ(as(kCarol, [&] { return open_err(f, O_WRONLY); }), EACCES);
  EXPECT_EQ(as(kBob, [&] { return open_err(f, O_RDONLY); }), EACCES);
  EXPECT_EQ(as(kBob, [&] { return err_of(::truncate(f.c_str(), 0)); }), EACCES);

  // The most specific class decides, even when a broader class would allow.
  ASSERT_EQ(::chmod(f.c_str(), 0604), 0);
  EXPECT_EQ(as(kCarol, [&] { return open_err(f, O_RDONLY); }), EACCES);
  EXPECT_EQ(as(kBob, [&] { return open_err(f, O_RDONLY); }), 0);
  ASSERT_EQ(::chmod(f.c_str(), 0066), 0);
  EXPECT_EQ(as(kAlice, [&] { return open_err(f, O_RDONLY); }), EACCES);
  EXPECT_EQ(as(kCarol, [&] { return open_err(f, O_RDWR); }), 0);

  // Execute: only where the bit is set (also checked by the kernel on exec).
  MakeFile("script", 1000, 1000, 0750, "#!/bin/sh\nexit 7\n");
  std::string s = P("script");
  EXPECT_EQ(as(kAlice, [&] { return err_of(::access(s.c_str(), X_OK)); }), 0);
  EXPECT_EQ(as(kCarol, [&] { return err_of(::access(s.c_str(), X_OK)); }), 0);
  EXPECT_EQ(as(kBob, [&] { return err_of(::access(s.c_str(), X_OK)); }), EACCES);
  EXPECT_EQ(as(kBob, [&] {
              char* argv[] = {const_cast<char*>(s.c_str()), nullptr};
              execv(s.c_str(), argv);
              return errno;
            }),
            EACCES);

  // Writing in a directory needs w and x on it.
  MakeDir("ro", 1000, 1000, 0755);
  EXPECT_EQ(as(kAlice, [&] { return open_err(P("ro/new"), O_CREAT | O_WRONLY); }), 0);
  EXPECT_EQ(as(kBob, [&] { return open_err(P("ro/other"), O_CREAT | O_WRONLY); }), EACCES);
  EXPECT_EQ(as(kBob, [&] { return err_of(::mkdir(P("ro/d").c_str(), 0755)); }), EACCES);
  EXPECT_EQ(as(kBob, [&] { return err_of(::unlink(P("ro/new").c_str())); }), EACCES);
  EXPECT_EQ(as(kBob, [&] { return err_of(::rename(P("ro/new").c_str(), P("moved").c_str())); }),
            EACCES);
  EXPECT_EQ(Stat("ro/new").st_uid, 1000u);
  EXPECT_EQ(Stat("ro/new").st_gid, 1000u);
  EXPECT_EQ(Mode("ro/new"), 0644u) << "the caller's umask 022 applies";
}

TEST_F(Permissions, SupplementaryGroupsGrantAccess) {
  MakeFile("g", 0, 2000, 0060);
  EXPECT_EQ(as(kAlice, [&] { return open_err(P("g"), O_RDWR); }), 0);
  EXPECT_EQ(as(kBob, [&] { return open_err(P("g"), O_RDONLY); }), EACCES);
  MakeDir("team", 0, 2000, 0070);
  EXPECT_EQ(as(kAlice, [&] { return open_err(P("team/a"), O_CREAT | O_WRONLY); }), 0);
  EXPECT_EQ(as(kBob, [&] { return open_err(P("team/b"), O_CREAT | O_WRONLY); }), EACCES);
  // The same user without the supplementary group is "other".
  Ident alice_alone{1000, 1000, {}};
  EXPECT_EQ(as(alice_alone, [&] { return open_err(P("g"), O_RDONLY); }), EACCES);
}

TEST_F(Permissions, EaccesVersusEperm) {
  MakeFile("f", 1000, 1000, 0666);
  std::string f = P("f");
  // Write permission is not ownership: chmod, chown and explicit times need the owner.
  EXPECT_EQ(as(kBob, [&] { return err_of(::chmod(f.c_str(), 0777)); }), EPERM);
  EXPECT_EQ(as(kBob, [&] { return err_of(::chown(f.c_str(), 1001, 1001)); }), EPERM);
  EXPECT_EQ(as(kBob, [&] { return err_of(::chown(f.c_str(), -1, 1001)); }), EPERM);
  timespec t[2] = {{1, 0}, {2, 0}};
  EXPECT_EQ(as(kBob, [&] { return err_of(::utimensat(AT_FDCWD, f.c_str(), t, 0)); }), EPERM);
  // ... but "now" needs only write permission.
  EXPECT_EQ(as(kBob, [&] { return err_of(::utimensat(AT_FDCWD, f.c_str(), nullptr, 0)); }), 0);
  ASSERT_EQ(::chmod(f.c_str(), 0644), 0);
  EXPECT_EQ(as(kBob, [&] { return err_of(::utimensat(AT_FDCWD, f.c_str(), nullptr, 0)); }),
            EACCES);
  EXPECT_EQ(as(kBob, [&] { return err_of(::truncate(f.c_str(), 1)); }), EACCES);

  // The owner may chmod, set times, and chgrp to a group of its own, but not give away.
  EXPECT_EQ(as(kAlice, [&] { return err_of(::chmod(f.c_str(), 0600)); }), 0);
  EXPECT_EQ(as(kAlice, [&] { return err_of(::utimensat(AT_FDCWD, f.c_str(), t, 0)); }), 0);
  EXPECT_EQ(Stat("f").st_mtim.tv_sec, 2);
  EXPECT_EQ(as(kAlice, [&] { return err_of(::chown(f.c_str(), -1, 2000)); }), 0);
  EXPECT_EQ(Stat("f").st_gid, 2000u);
  EXPECT_EQ(as(kAlice, [&] { return err_of(::chown(f.c_str(), -1, 1001)); }), EPERM);
  EXPECT_EQ(as(kAlice, [&] { return err_of(::chown(f.c_str(), 1001, -1)); }), EPERM);
  EXPECT_EQ(as(kAlice, [&] { return err_of(::chown(f.c_str(), 1000, -1)); }), 0);  // no-op
  EXPECT_EQ(Stat("f").st_uid, 1000u);
  EXPECT_EQ(Mode("f"), 0600u);
  // Root may do all of it.
  EXPECT_EQ(::chown(f.c_str(), 1001, 1001), 0);
  EXPECT_EQ(Stat("f").st_uid, 1001u);
}

TEST_F(Permissions, StickyDirectory) {
  MakeDir("tmp", 0, 0, 01777);
  std::string a = P("tmp/alice"), b = P("tmp/bob");
  EXPECT_EQ(as(kAlice, [&] { return open_err(a, O_CREAT | O_WRONLY, 0666); }), 0);
  EXPECT_EQ(as(kBob, [&] { return open_err(b, O_CREAT | O_WRONLY, 0666); }), 0);
  EXPECT_EQ(Mode("tmp/alice"), 0644u);
  EXPECT_EQ(as(kBob, [&] { return err_of(::unlink(a.c_str())); }), EPERM);
  EXPECT_EQ(as(kBob, [&] { return err_of(::rename(a.c_str(), P("tmp/stolen").c_str())); }), EPERM);
  EXPECT_EQ(as(kBob, [&] { return err_of(::rename(b.c_str(), a.c_str())); }), EPERM)
      << "replacing another user's entry in a sticky directory";
  EXPECT_EQ(as(kBob, [&] { return err_of(::rename(b.c_str(), P("tmp/bob2").c_str())); }), 0);
  EXPECT_EQ(as(kAlice, [&] { return err_of(::unlink(P("tmp/bob2").c_str())); }), EPERM);
  EXPECT_EQ(as(kAlice, [&] { return err_of(::mkdir(P("tmp/adir").c_str(), 0777)); }), 0);
  EXPECT_EQ(as(kBob, [&] { return err_of(::rmdir(P("tmp/adir").c_str())); }), EPERM);
  EXPECT_EQ(read_file(a), "");  // still there
  // The directory's owner may remove anything in it; so may the entry's owner.
  ASSERT_EQ(::chown(P("tmp").c_str(), 1002, 1002), 0);
  EXPECT_EQ(as(kCarol, [&] { return err_of(::unlink(P("tmp/bob2").c_str())); }), 0);
  EXPECT_EQ(as(kAlice, [&] { return err_of(::unlink(a.c_str())); }), 0);
  EXPECT_EQ(as(kBob, [&] { return err_of(::rmdir(P("tmp/adir").c_str())); }), EPERM);
  EXPECT_EQ(::rmdir(P("tmp/adir").c_str()), 0) << "root: " << std::strerror(errno);
}

TEST_F(Permissions, SetgidDirectoryInheritance) {
  MakeDir("shared", 0, 2000, 02775);
  EXPECT_EQ(as(kAlice, [&] { return open_err(P("shared/file"), O_CREAT | O_WRONLY); }), 0);
  EXPECT_EQ(as(kAlice, [&] { return err_of(::mkdir(P("shared/sub").c_str(), 0755)); }), 0);
  struct stat f = Stat("shared/file"), d = Stat("shared/sub");
  EXPECT_EQ(f.st_uid, 1000u);
  EXPECT_EQ(f.st_gid, 2000u) << "new files take the setgid directory's group";
  EXPECT_EQ(f.st_mode & 07777, 0644u);
  EXPECT_EQ(d.st_gid, 2000u);
  EXPECT_EQ(d.st_mode & 07777, 02755u) << "new subdirectories inherit S_ISGID";
  EXPECT_EQ(as(kAlice, [&] { return open_err(P("shared/sub/deeper"), O_CREAT | O_WRONLY); }), 0);
  EXPECT_EQ(Stat("shared/sub/deeper").st_gid, 2000u);

  // Outside a setgid directory a new file takes the creator's group.
  EXPECT_EQ(as(kAlice, [&] { return open_err(P("plain"), O_CREAT | O_WRONLY); }), 0);
  EXPECT_EQ(Stat("plain").st_gid, 1000u);

  // A non-member creating a setgid file there does not keep S_ISGID.
  ASSERT_EQ(::chmod(P("shared").c_str(), 02777), 0);
  EXPECT_EQ(as(kBob, [&] { return open_err(P("shared/bobs"), O_CREAT | O_WRONLY, 02755); }), 0);
  EXPECT_EQ(Stat("shared/bobs").st_gid, 2000u);
  EXPECT_EQ(Mode("shared/bobs") & S_ISGID, 0u);
}

TEST_F(Permissions, SetuidClearedOnWriteAndChown) {
  MakeFile("suid", 1000, 1000, 06777);
  ASSERT_EQ(Mode("suid"), 06777u);
  // Bob may write (mode 0777); his write clears setuid and (group-executable) setgid.
  EXPECT_EQ(as(kBob, [&] { return write_err(P("suid"), "x", O_WRONLY); }), 0);
  EXPECT_EQ(Mode("suid"), 0777u);
  EXPECT_EQ(read_file(P("suid")), "xata");

  // Truncation by a non-owner clears them too.
  ASSERT_EQ(::chmod(P("suid").c_str(), 04777), 0);
  EXPECT_EQ(as(kBob, [&] { return err_of(::truncate(P("suid").c_str(), 1)); }), 0);
  EXPECT_EQ(Mode("suid"), 0777u);

  // chown clears setuid (even by root) and setgid when group-executable.
  MakeFile("c1", 1000, 1000, 06755);
  ASSERT_EQ(::chown(P("c1").c_str(), 1001, -1), 0);
  EXPECT_EQ(Mode("c1"), 0755u);
  MakeFile("c2", 1000, 1000, 06745);  // setgid without group exec: mandatory-lock marker
  EXPECT_EQ(as(kAlice, [&] { return err_of(::chown(P("c2").c_str(), -1, 2000)); }), 0);
  EXPECT_EQ(Mode("c2"), 02745u);
  // The owner writing its own setuid file keeps nothing either (no CAP_FSETID).
  MakeFile("own", 1000, 1000, 04755);
  EXPECT_EQ(as(kAlice, [&] { return append_err(P("own"), "y"); }), 0);
  EXPECT_EQ(Mode("own"), 0755u);
  // A non-owner's chmod never lands.
  MakeFile("keep", 1000, 1000, 04755);
  EXPECT_EQ(as(kBob, [&] { return err_of(::chmod(P("keep").c_str(), 0755)); }), EPERM);
  EXPECT_EQ(Mode("keep"), 04755u);
}

// Moving a directory to another parent rewrites its "..": that needs write permission
// on the directory itself, not only on both parents. xattrs follow the namespace rules.
TEST_F(Permissions, RenameDirectoryAndXattrRules) {
  MakeDir("s1", 0, 0, 0777);
  MakeDir("s2", 0, 0, 0777);
  MakeDir("s1/adir", 1000, 1000, 0755);
  EXPECT_EQ(as(kBob, [&] { return err_of(::rename(P("s1/adir").c_str(), P("s2/adir").c_str())); }),
            EACCES);
  EXPECT_EQ(as(kBob, [&] { return err_of(::rename(P("s1/adir").c_str(), P("s1/bdir").c_str())); }),
            0);
  EXPECT_EQ(as(kAlice, [&] { return err_of(::rename(P("s1/bdir").c_str(), P("s2/adir").c_str())); }),
            0);
  EXPECT_EQ(Stat("s2/adir/..").st_ino, Stat("s2").st_ino);

  MakeFile("x", 1000, 1000, 0640);
  EXPECT_EQ(::setxattr(P("x").c_str(), "user.k", "v", 1, 0), 0) << std::strerror(errno);
  EXPECT_EQ(::setxattr(P("x").c_str(), "trusted.k", "t", 1, 0), 0) << std::strerror(errno);
  auto get = [&](const char* name) {
    char buf[16];
    return err_of(::getxattr(P("x").c_str(), name, buf, sizeof buf));
  };
  auto set = [&](const char* name) { return err_of(::setxattr(P("x").c_str(), name, "w", 1, 0)); };
  EXPECT_EQ(as(kAlice, [&] { return set("user.k"); }), 0);
  EXPECT_EQ(as(kCarol, [&] { return get("user.k"); }), 0);       // group r
  EXPECT_EQ(as(kCarol, [&] { return set("user.k"); }), EACCES);  // no group w
  EXPECT_EQ(as(kBob, [&] { return get("user.k"); }), EACCES);
  EXPECT_EQ(as(kAlice, [&] { return set("trusted.k"); }), EPERM);   // root only, even the owner
  EXPECT_EQ(as(kAlice, [&] { return get("trusted.k"); }), ENODATA);  // hidden from others
  EXPECT_EQ(as(kAlice, [&] {
              char list[256];
              ssize_t n = ::listxattr(P("x").c_str(), list, sizeof list);
              if (n < 0) return errno;
              return std::string(list, static_cast<size_t>(n)) == std::string("user.k\0", 7) ? 0 : -1;
            }),
            0);
  EXPECT_EQ(get("trusted.k"), 0);  // root sees it

  // chown of a directory keeps its setgid bit (only files lose it).
  MakeDir("sgdir", 0, 2000, 02775);
  ASSERT_EQ(::chown(P("sgdir").c_str(), 1000, 1000), 0);
  EXPECT_EQ(Mode("sgdir"), 02775u);
}

TEST_F(Permissions, AccessSyscall) {
  MakeFile("f", 1000, 1000, 0750);
  std::string f = P("f");
  auto access_as = [&](const Ident& who, int mode) {
    return as(who, [&] { return err_of(::access(f.c_str(), mode)); });
  };
  EXPECT_EQ(access_as(kAlice, R_OK | W_OK | X_OK), 0);
  EXPECT_EQ(access_as(kCarol, R_OK | X_OK), 0);
  EXPECT_EQ(access_as(kCarol, W_OK), EACCES);
  EXPECT_EQ(access_as(kBob, F_OK), 0);
  EXPECT_EQ(access_as(kBob, R_OK), EACCES);
  EXPECT_EQ(access_as(kBob, X_OK), EACCES);
  EXPECT_EQ(as(kBob, [&] { return err_of(::access(P("none").c_str(), F_OK)); }), ENOENT);
  // Root: read and write always, execute only if some execute bit is set.
  MakeFile("noexec", 1000, 1000, 0000);
  EXPECT_EQ(err_of(::access(P("noexec").c_str(), R_OK | W_OK)), 0);
  EXPECT_EQ(err_of(::access(P("noexec").c_str(), X_OK)), EACCES);
  EXPECT_EQ(err_of(::access(f.c_str(), X_OK)), 0);
}

TEST_F(Permissions, DirectoryWithoutSearchPermission) {
  MakeDir("private", 1000, 1000, 0700);
  MakeFile("private/f", 1000, 1000, 0644, "secret");
  std::string f = P("private/f");
  EXPECT_EQ(as(kAlice, [&] { return open_err(f, O_RDONLY); }), 0);
  EXPECT_EQ(as(kBob, [&] {
              struct stat st;
              return err_of(::stat(f.c_str(), &st));
            }),
            EACCES);
  EXPECT_EQ(as(kBob, [&] { return open_err(f, O_RDONLY); }), EACCES);
  EXPECT_EQ(as(kBob, [&] { return open_err(P("private/new"), O_CREAT | O_WRONLY); }), EACCES);
  EXPECT_EQ(as(kBob, [&] { return err_of(::chdir(P("private").c_str())); }), EACCES);
  EXPECT_EQ(as(kBob, [&] { return open_err(P("private"), O_RDONLY | O_DIRECTORY); }), EACCES);

  // r without x: names can be listed, but not looked up.
  ASSERT_EQ(::chmod(P("private").c_str(), 0744), 0);
  EXPECT_EQ(as(kBob, [&] {
              DIR* d = opendir(P("private").c_str());
              if (d == nullptr) return errno;
              int names = 0;
              while (dirent* e = readdir(d)) names += std::string(e->d_name) == "f";
              closedir(d);
              return names == 1 ? 0 : -1;
            }),
            0);
  EXPECT_EQ(as(kBob, [&] { return open_err(f, O_RDONLY); }), EACCES);

  // x without r: lookups work, listing does not.
  ASSERT_EQ(::chmod(P("private").c_str(), 0711), 0);
  EXPECT_EQ(as(kBob, [&] { return open_err(f, O_RDONLY); }), 0);
  EXPECT_EQ(as(kBob, [&] { return open_err(P("private"), O_RDONLY | O_DIRECTORY); }), EACCES);
  EXPECT_EQ(as(kBob, [&] { return err_of(::chdir(P("private").c_str())); }), 0);
}

}  // namespace
}  // namespace sluice::test
