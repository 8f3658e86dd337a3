// Smoke test through the kernel: write a file on a mount, read it back, see its slices
// and blocks with `sluice info` (and the blocks in the object store), the session with
// `sluice status`, then unmount, mount again and read the same bytes.
#include <nlohmann/json.hpp>
#include <random>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

class Smoke : public MountFixture {};

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST_F(Smoke, WriteReadInfoRemount) {
  // Two blocks at the default 4 MiB block size, plus a small file.
  const std::string big = random_bytes((5 << 20) + 123, 42);
  write_file(mnt_ + "/big.bin", big);
  write_file(mnt_ + "/hello.txt", "hello, sluice\n");
  ASSERT_EQ(mkdir((mnt_ + "/dir").c_str(), 0755), 0);
  EXPECT_EQ(read_file(mnt_ + "/big.bin"), big);
  EXPECT_EQ(read_file(mnt_ + "/hello.txt"), "hello, sluice\n");

  // info (text): the slice and the object keys of its blocks, which exist in the store.
  CliResult info = cli({"info", mnt_ + "/big.bin"});
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("size:   " + std::to_string(big.size())), std::string::npos)
      << info.out;
  EXPECT_NE(info.out.find("slice id="), std::string::npos) << info.out;
  std::istringstream lines(info.out);
  int blocks = 0;
  for (std::string line; std::getline(lines, line);) {
    auto p = line.find("block ");
    if (p == std::string::npos) continue;
    std::string key = line.substr(p + 6);
    EXPECT_EQ(key.rfind(std::string(kVolume) + "/chunks/", 0), 0u) << key;
    EXPECT_TRUE(object_exists(key)) << key;
    blocks++;
  }
  EXPECT_EQ(blocks, 2) << info.out;

  // info --json: the slices cover the file.
  CliResult js = cli({"info", "--json", mnt_ + "/big.bin"});
  ASSERT_EQ(js.code, 0) << js.err;
  auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["size"].get<uint64_t>(), big.size());
  uint64_t covered = 0;
  for (const auto& chunk : j["chunks"]) {
    for (const auto& s : chunk["slices"]) covered += s["len"].get<uint64_t>();
  }
  EXPECT_GE(covered, big.size());

  CliResult dir = cli({"info", mnt_ + "/dir", mnt_});
  ASSERT_EQ(dir.code, 0) << dir.err;
  EXPECT_NE(dir.out.find("entries: 0"), std::string::npos) << dir.out;
  EXPECT_NE(dir.out.find("entries: 3"), std::string::npos) << dir.out;

  // status lists this mount's session.
  CliResult st = cli({"status", meta_url_});
  ASSERT_EQ(st.code, 0) << st.err;
  EXPECT_NE(st.out.find("sessions      1"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find(mnt_), std::string::npos) << st.out;

  // Unmount: the mount process flushes, closes its session and exits.
  Unmount();
  ASSERT_FALSE(is_mounted(mnt_));
  CliResult after = cli({"status", meta_url_});
  EXPECT_NE(after.out.find("sessions      0"), std::string::npos) << after.out;

  Mount();
  EXPECT_EQ(read_file(mnt_ + "/big.bin"), big);
  EXPECT_EQ(read_file(mnt_ + "/hello.txt"), "hello, sluice\n");
  EXPECT_TRUE(std::filesystem::is_directory(mnt_ + "/dir"));
}

// /proc/mounts shows the volume as fuse.sluice with source sluice:META_URL.
TEST_F(Smoke, MountTableEntry) {
  std::ifstream f("/proc/self/mounts");
  bool found = false;
  for (std::string line; std::getline(f, line);) {
    std::istringstream in(line);
    std::string source, target, type;
    in >> source >> target >> type;
    if (target != mnt_) continue;
    found = true;
    EXPECT_EQ(source, "sluice:" + meta_url_);
    EXPECT_EQ(type, "fuse.sluice");
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace sluice::test
