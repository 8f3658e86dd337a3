// smallfiles: metadata rates on any directory — creates, stats and unlinks N empty (or
// small) files and prints operations per second for each phase. Used by
// bench/fs_bench.sh beside the same run on a local directory.
//
//   smallfiles DIR [N=10000] [BYTES=0]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int fail(const char* what, const std::string& path) {
  std::perror((std::string(what) + " " + path).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: smallfiles DIR [N=10000] [BYTES=0]\n");
    return 2;
  }
  std::string dir = std::string(argv[1]) + "/smallfiles." + std::to_string(getpid());
  int n = argc > 2 ? std::atoi(argv[2]) : 10000;
  size_t bytes = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 0;
  std::vector<char> payload(bytes, 'x');
  if (mkdir(dir.c_str(), 0755) != 0) return fail("mkdir", dir);

  std::vector<std::string> names;
  names.reserve(n);
  for (int i = 0; i < n; i++) names.push_back(dir + "/f" + std::to_string(i));

  auto t0 = std::chrono::steady_clock::now();
  for (auto& p : names) {
    int fd = open(p.c_str(), O_CREAT | O_WRONLY | O_EXCL, 0644);
    if (fd < 0) return fail("create", p);
    if (bytes && write(fd, payload.data(), bytes) != static_cast<ssize_t>(bytes)) {
      return fail("write", p);
    }
    if (close(fd) != 0) return fail("close", p);
  }
  double create_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  struct stat st;
  for (auto& p : names) {
    if (stat(p.c_str(), &st) != 0) return fail("stat", p);
  }
  double stat_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  for (auto& p : names) {
    if (unlink(p.c_str()) != 0) return fail("unlink", p);
  }
  double unlink_s = seconds_since(t0);
  rmdir(dir.c_str());

  std::printf("files=%d bytes=%zu create=%.0f/s stat=%.0f/s unlink=%.0f/s\n", n, bytes,
              n / create_s, n / stat_s, n / unlink_s);
  return 0;
}
