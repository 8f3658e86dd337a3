// mdtest: an mdtest-like metadata benchmark on any directory. P processes, each in its own
// subdirectory, run the phases create, stat, readdir, rename and unlink over N files in
// all (N/P each); every phase starts and ends on a barrier across the processes, so its
// rate is the whole group's operations divided by the slowest process's time. Used by
// bench/meta_bench.sh beside the same run on a local directory.
//
//   mdtest DIR [N=10000] [P=1]
//
// Prints one line: create=R/s stat=R/s readdir=R/s rename=R/s unlink=R/s, where readdir
// counts entries returned (each process lists its directory three times).
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kReaddirPasses = 3;
const char* const kPhases[] = {"create", "stat", "readdir", "rename", "unlink"};
constexpr int kNumPhases = 5;

struct Shared {
  pthread_barrier_t barrier;
  int failed;
};

int fail(const char* what, const std::string& path) {
  std::fprintf(stderr, "mdtest: %s %s: %s\n", what, path.c_str(), std::strerror(errno));
  return 1;
}

// One phase over this process's files; returns the number of operations, -1 on error.
long run_phase(int phase, const std::string& dir, const std::vector<std::string>& names,
               const std::vector<std::string>& renamed) {
  switch (phase) {
    case 0:
      for (const auto& p : names) {
        int fd = open(p.c_str(), O_CREAT | O_WRONLY | O_EXCL, 0644);
        if (fd < 0 || close(fd) != 0) return fail("create", p), -1;
      }
      return long(names.size());
    case 1: {
      struct stat st;
      for (const auto& p : names) {
        if (stat(p.c_str(), &st) != 0) return fail("stat", p), -1;
      }
      return long(names.size());
    }
    case 2: {
      long entries = 0;
      for (int pass = 0; pass < kReaddirPasses; pass++) {
        DIR* d = opendir(dir.c_str());
        if (d == nullptr) return fail("opendir", dir), -1;
        while (dirent* e = readdir(d)) {
          if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) entries++;
        }
        closedir(d);
      }
      if (entries != long(names.size()) * kReaddirPasses) {
        std::fprintf(stderr, "mdtest: readdir %s: %ld entries, expected %ld\n", dir.c_str(),
                     entries, long(names.size()) * kReaddirPasses);
        return -1;
      }
      return entries;
    }
    case 3:
      for (size_t i = 0; i < names.size(); i++) {
        if (rename(names[i].c_str(), renamed[i].c_str()) != 0) return fail("rename", names[i]), -1;
      }
      return long(names.size());
    case 4:
      for (const auto& p : renamed) {
        if (unlink(p.c_str()) != 0) return fail("unlink", p), -1;
      }
      return long(names.size());
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: mdtest DIR [N=10000] [P=1]\n");
    return 2;
  }
  const std::string top = std::string(argv[1]) + "/mdtest." + std::to_string(getpid());
  const long n = argc > 2 ? std::atol(argv[2]) : 10000;
  const int procs = argc > 3 ? std::atoi(argv[3]) : 1;
  if (n <= 0 || procs <= 0 || n < procs) {
    std::fprintf(stderr, "mdtest: need N >= P >= 1\n");
    return 2;
  }
  if (mkdir(top.c_str(), 0755) != 0) return fail("mkdir", top);

  auto* sh = static_cast<Shared*>(
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (sh == MAP_FAILED) return fail("mmap", "");
  pthread_barrierattr_t ba;
  pthread_barrierattr_init(&ba);
  pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
  pthread_barrier_init(&sh->barrier, &ba, unsigned(procs) + 1);  // children + this one
  sh->failed = 0;

  // Operations per phase, over all processes.
  long ops[kNumPhases];
  for (int ph = 0; ph < kNumPhases; ph++) ops[ph] = ph == 2 ? n * kReaddirPasses : n;
  std::vector<pid_t> kids;
  for (int p = 0; p < procs; p++) {
    const long mine = n / procs + (p < n % procs ? 1 : 0);
    pid_t pid = fork();
    if (pid < 0) return fail("fork", "");
    if (pid == 0) {
      std::string dir = top + "/p" + std::to_string(p);
      bool ok = mkdir(dir.c_str(), 0755) == 0 || (fail("mkdir", dir), false);
      std::vector<std::string> names, renamed;
      for (long i = 0; i < mine; i++) {
        names.push_back(dir + "/file." + std::to_string(i));
        renamed.push_back(dir + "/renamed." + std::to_string(i));
      }
      for (int ph = 0; ph < kNumPhases; ph++) {
        pthread_barrier_wait(&sh->barrier);
        if (ok && !__atomic_load_n(&sh->failed, __ATOMIC_SEQ_CST)) {
          ok = run_phase(ph, dir, names, renamed) >= 0;
          if (!ok) __atomic_store_n(&sh->failed, 1, __ATOMIC_SEQ_CST);
        }
        pthread_barrier_wait(&sh->barrier);
      }
      if (ok) rmdir(dir.c_str());
      _exit(ok ? 0 : 1);
    }
    kids.push_back(pid);
  }

  double secs[kNumPhases] = {};
  for (int ph = 0; ph < kNumPhases; ph++) {
    pthread_barrier_wait(&sh->barrier);
    auto t0 = std::chrono::steady_clock::now();
    pthread_barrier_wait(&sh->barrier);
    secs[ph] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  int bad = 0;
  for (pid_t k : kids) {
    int status = 0;
    waitpid(k, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bad++;
  }
  rmdir(top.c_str());
  if (bad > 0 || sh->failed) {
    std::fprintf(stderr, "mdtest: %d process(es) failed\n", bad);
    return 1;
  }
  for (int ph = 0; ph < kNumPhases; ph++) {
    std::printf("%s%s=%.0f/s", ph ? " " : "", kPhases[ph], double(ops[ph]) / secs[ph]);
  }
  std::printf("\n");
  return 0;
}
