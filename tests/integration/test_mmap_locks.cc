// mmap and file locks through the kernel. mmap: reads of a file written with write(2)
// (whole-file compare and a random page-touch pattern, after a remount so pages come
// from the store), MAP_SHARED writes + msync read back with read(2) and after a remount.
// Locks: flock and fcntl (F_SETLK conflicts, F_GETLK reporting the holder's pid,
// F_SETLKW released by the holder's unlock, release when the holder exits) between two
// processes on one mount and across two mounts of the same volume.
#include <poll.h>
#include <sys/file.h>
#include <sys/mman.h>

#include <chrono>
#include <climits>
#include <functional>
#include <random>
#include <thread>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// ---- a forked helper process that talks in ints over two pipes ----

struct Child {
  pid_t pid = -1;
  int from = -1;  // parent reads what the child sends
  int to = -1;    // parent writes what the child reads

  // The next int from the child, or INT_MIN if none arrives within timeout_ms.
  int recv(int timeout_ms = 10000) const {
    pollfd p{from, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return INT_MIN;
    int v;
    return read(from, &v, sizeof v) == sizeof v ? v : INT_MIN;
  }
  void send(int v) const { (void)!write(to, &v, sizeof v); }
  // Tells the child to finish and reaps it (kills it if it does not exit in time).
  void finish() {
    if (pid < 0) return;
    send(0);
    for (int i = 0; i < 500; i++) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) break;
      if (i == 499) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    close(from);
    close(to);
    pid = -1;
  }
};

// fn(in, out): reads from `in`, writes ints to `out`; the child exits after fn returns.
Child spawn(const std::function<void(int in, int out)>& fn) {
  int up[2], down[2];
  if (pipe(up) != 0 || pipe(down) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(up[0]);
    close(down[1]);
    fn(down[0], up[1]);
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  return Child{pid, up[0], down[1]};
}

void put(int out, int v) { (void)!write(out, &v, sizeof v); }
int get(int in) {
  int v = 0;
  return read(in, &v, sizeof v) == sizeof v ? v : -1;
}

int setlk(int fd, int cmd, short type, off_t start, off_t len) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  return fcntl(fd, cmd, &fl) == 0 ? 0 : errno;
}

bool is_conflict(int err) { return err == EAGAIN || err == EACCES; }

// Polls fn() until it returns true or `seconds` pass.
bool eventually(const std::function<bool()>& fn, int seconds = 10) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!fn()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

class MmapLocks : public MountFixture {
 protected:
  std::string P(const std::string& rel) const { return mnt_ + "/" + rel; }

  // flock between this process (on `mine`) and a child (on `theirs`): the same file
  // through one mount or two.
  void FlockScenario(const std::string& mine, const std::string& theirs) {
    write_file(mine, "locked");
    int fd = ::open(mine.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(flock(fd, LOCK_EX), 0) << std::strerror(errno);
    Child c = spawn([&](int in, int out) {
      int fd2 = ::open(theirs.c_str(), O_RDWR);
      put(out, fd2 < 0 ? -errno : 0);
      put(out, flock(fd2, LOCK_EX | LOCK_NB) == 0 ? 0 : errno);
      put(out, flock(fd2, LOCK_SH | LOCK_NB) == 0 ? 0 : errno);
      put(out, 1000);  // about to block
      put(out, flock(fd2, LOCK_EX) == 0 ? 0 : errno);
      get(in);
    });
    EXPECT_EQ(c.recv(), 0);
    EXPECT_EQ(c.recv(), EWOULDBLOCK);
    EXPECT_EQ(c.recv(), EWOULDBLOCK);
    EXPECT_EQ(c.recv(), 1000);
    EXPECT_EQ(c.recv(300), INT_MIN) << "flock(LOCK_EX) did not wait for the holder";
    ASSERT_EQ(flock(fd, LOCK_UN), 0);
    EXPECT_EQ(c.recv(), 0) << "the waiter did not get the lock after the unlock";
    EXPECT_EQ(flock(fd, LOCK_SH | LOCK_NB), -1);
    EXPECT_EQ(errno, EWOULDBLOCK);
    c.finish();  // its descriptor closes: the lock goes with it
    EXPECT_TRUE(eventually([&] { return flock(fd, LOCK_EX | LOCK_NB) == 0; }))
        << "the lock of an exited process was not released";
    ::close(fd);
  }

  void FcntlScenario(const std::string& mine, const std::string& theirs) {
    write_file(mine, std::string(1000, 'l'));
    int fd = ::open(mine.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(setlk(fd, F_SETLK, F_WRLCK, 0, 100), 0);
    Child c = spawn([&](int in, int out) {
      int fd2 = ::open(theirs.c_str(), O_RDWR);
      put(out, fd2 < 0 ? -errno : 0);
      put(out, setlk(fd2, F_SETLK, F_WRLCK, 50, 10));
      put(out, setlk(fd2, F_SETLK, F_RDLCK, 0, 10));
      put(out, setlk(fd2, F_SETLK, F_WRLCK, 200, 10));  // no overlap
      struct flock fl = {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      fl.l_start = 0;
      fl.l_len = 100;
      put(out, fcntl(fd2, F_GETLK, &fl) == 0 ? 0 : errno);
      put(out, fl.l_type);
      put(out, fl.l_pid);
      put(out, static_cast<int>(fl.l_start));
      put(out, static_cast<int>(fl.l_len));
      put(out, 1000);  // about to block
      put(out, setlk(fd2, F_SETLKW, F_WRLCK, 0, 100));
      get(in);
    });
    EXPECT_EQ(c.recv(), 0);
    int e1 = c.recv(), e2 = c.recv();
    EXPECT_TRUE(is_conflict(e1)) << std::strerror(e1);
    EXPECT_TRUE(is_conflict(e2)) << std::strerror(e2);
    EXPECT_EQ(c.recv(), 0) << "a lock on a range nobody holds";
    EXPECT_EQ(c.recv(), 0);
    EXPECT_EQ(c.recv(), F_WRLCK);
    EXPECT_EQ(c.recv(), getpid()) << "F_GETLK must report the holder's pid";
    EXPECT_EQ(c.recv(), 0);
    EXPECT_EQ(c.recv(), 100);
    // Our view of the child's lock.
    struct flock fl = {};
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 205;
    fl.l_len = 1;
    ASSERT_EQ(fcntl(fd, F_GETLK, &fl), 0) << std::strerror(errno);
    EXPECT_EQ(fl.l_type, F_WRLCK);
    EXPECT_EQ(fl.l_pid, c.pid);
    EXPECT_EQ(fl.l_start, 200);
    EXPECT_EQ(fl.l_len, 10);
    EXPECT_EQ(c.recv(), 1000);
    EXPECT_EQ(c.recv(300), INT_MIN) << "F_SETLKW did not wait for the holder";
    ASSERT_EQ(setlk(fd, F_SETLK, F_UNLCK, 0, 100), 0);
    EXPECT_EQ(c.recv(), 0) << "the waiter did not get the lock after the unlock";
    EXPECT_TRUE(is_conflict(setlk(fd, F_SETLK, F_RDLCK, 99, 1)));
    c.finish();  // exiting drops its POSIX locks
    EXPECT_TRUE(eventually([&] { return setlk(fd, F_SETLK, F_WRLCK, 0, 0) == 0; }))
        << "the locks of an exited process were not released";
    ::close(fd);
  }
};

TEST_F(MmapLocks, MmapReadsMatchWrites) {
  const size_t size = (8 << 20) + 123;
  const std::string data = random_bytes(size, 77);
  write_file(P("m"), data);
  Unmount();  // pages come from the store, not the cache of the write
  Mount();
  int fd = ::open(P("m").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED) << std::strerror(errno);
  const char* m = static_cast<const char*>(map);
  // Random page touches first (the access pattern of a model loader), then everything.
  std::mt19937_64 rng(5);
  for (int i = 0; i < 3000; i++) {
    size_t off = rng() % size;
    size_t len = std::min<size_t>(64, size - off);
    ASSERT_EQ(std::memcmp(m + off, data.data() + off, len), 0) << "at offset " << off;
  }
  EXPECT_EQ(std::memcmp(m, data.data(), size), 0);
  // The last partial page is zero-filled past EOF.
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t mapped_end = (size + page - 1) / page * page;
  for (size_t i = size; i < mapped_end; i++) ASSERT_EQ(m[i], 0);
  ASSERT_EQ(munmap(map, size), 0);

  void* priv = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ASSERT_NE(priv, MAP_FAILED) << std::strerror(errno);
  static_cast<char*>(priv)[0] = static_cast<char>(~data[0]);  // private: not written back
  EXPECT_EQ(std::memcmp(static_cast<char*>(priv) + 1, data.data() + 1, size - 1), 0);
  ASSERT_EQ(munmap(priv, size), 0);
  ::close(fd);
  EXPECT_EQ(read_file(P("m")), data);
}

TEST_F(MmapLocks, SharedMmapWritesReachTheFile) {
  const size_t size = (3 << 20) + 333;
  const std::string data = random_bytes(size, 9);
  int fd = ::open(P("w").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED) << std::strerror(errno);
  char* m = static_cast<char*>(map);
  std::memcpy(m, data.data(), size);
  ASSERT_EQ(msync(map, size, MS_SYNC), 0) << std::strerror(errno);
  EXPECT_EQ(read_file(P("w")), data);

  // write(2) and the mapping see one another.
  ASSERT_EQ(pwrite(fd, "WXYZ", 4, 4096), 4);
  EXPECT_EQ(std::string(m + 4096, 4), "WXYZ");
  std::memcpy(m + size - 5, "end!!", 5);
  ASSERT_EQ(msync(map, size, MS_SYNC), 0);
  ASSERT_EQ(munmap(map, size), 0);
  ASSERT_EQ(close(fd), 0);
  std::string want = data;
  want.replace(4096, 4, "WXYZ");
  want.replace(size - 5, 5, "end!!");
  EXPECT_EQ(read_file(P("w")), want);
  struct stat st;
  ASSERT_EQ(stat(P("w").c_str(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), size);

  Unmount();
  Mount();
  EXPECT_EQ(read_file(P("w")), want) << "mmap writes lost across a remount";
}

TEST_F(MmapLocks, FlockBetweenProcesses) { FlockScenario(P("flock"), P("flock")); }

TEST_F(MmapLocks, FcntlBetweenProcesses) { FcntlScenario(P("fcntl"), P("fcntl")); }

TEST_F(MmapLocks, FlockAcrossMounts) {
  MountAt(meta_url_, path("mnt2"));
  FlockScenario(P("flock"), path("mnt2/flock"));
}

TEST_F(MmapLocks, FcntlAcrossMounts) {
  MountAt(meta_url_, path("mnt2"));
  FcntlScenario(P("fcntl"), path("mnt2/fcntl"));
}

// POSIX locks belong to the process: closing any descriptor of the file drops them,
// while flock locks belong to the open file description.
TEST_F(MmapLocks, CloseDropsPosixLocksNotFlock) {
  write_file(P("f"), "x");
  int a = ::open(P("f").c_str(), O_RDWR), b = ::open(P("f").c_str(), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_EQ(setlk(a, F_SETLK, F_WRLCK, 0, 0), 0);
  ASSERT_EQ(flock(a, LOCK_EX), 0);
  ::close(b);  // drops the POSIX lock taken through a
  Child c = spawn([&](int in, int out) {
    int fd = ::open(P("f").c_str(), O_RDWR);
    put(out, setlk(fd, F_SETLK, F_WRLCK, 0, 0));
    put(out, flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno);
    get(in);
  });
  EXPECT_EQ(c.recv(), 0) << "closing another descriptor must drop the POSIX lock";
  EXPECT_EQ(c.recv(), EWOULDBLOCK) << "the flock lock of the open description must stay";
  c.finish();
  ::close(a);
}

}  // namespace
}  // namespace sluice::test
