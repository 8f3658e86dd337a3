// The read path through the kernel: a safetensors file mmapped and touched in shuffled
// tensor order after a remount (cold cache) reads back exactly, and the mount's exit
// log shows the header was parsed and tensor prefetch ran; --prefetch 0 (no readahead)
// still reads a file sequentially.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <random>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

// A safetensors file of U8 tensors of the given sizes; ranges gets their file ranges.
std::string safetensors_file(const std::vector<uint64_t>& sizes,
                             std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  std::string h = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t at = 0;
  for (size_t i = 0; i < sizes.size(); i++) {
    h += ",\"layer." + std::to_string(i) + "\":{\"dtype\":\"U8\",\"shape\":[" +
         std::to_string(sizes[i]) + "],\"data_offsets\":[" + std::to_string(at) + "," +
         std::to_string(at + sizes[i]) + "]}";
    at += sizes[i];
  }
  h += "}";
  std::string file(8, '\0');
  for (int i = 0; i < 8; i++) file[i] = static_cast<char>(uint64_t(h.size()) >> (8 * i));
  file += h;
  ranges.clear();
  uint64_t pos = file.size();
  for (uint64_t s : sizes) {
    ranges.emplace_back(pos, pos + s);
    pos += s;
  }
  return file + random_bytes(at, 7);
}

// The value of `name N` on the mount log's "read path:" line, or -1.
long long read_path_counter(const std::string& log, const std::string& name) {
  return log_counter(log, "read path", name);
}

class ReadPathTest : public MountFixture {
 protected:
  // Reads the header, maps the file and touches 12 of its first 20 tensors out of order
  // (a shuffled loader), then waits until the last 5 MiB, never touched, are resident in
  // the kernel's page cache, and checks the whole mapping against data.
  static void load_shuffled_and_wait_for_the_tail(
      const std::string& file, const std::string& data,
      const std::vector<std::pair<uint64_t, uint64_t>>& r) {
    int fd = open(file.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    std::string head(r[0].first, '\0');
    ASSERT_EQ(pread(fd, head.data(), head.size(), 0), ssize_t(head.size()));
    void* p = mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
    const char* m = static_cast<const char*>(p);
    // 12 of the first 20 tensors, never two neighbours in a row: past a fifth of 30.
    for (size_t i : {0, 10, 4, 14, 2, 12, 6, 16, 8, 18, 1, 11}) {
      ASSERT_EQ(std::memcmp(m + r[i].first, data.data() + r[i].first, 4096), 0) << i;
    }
    // The last 5 MiB were never touched: they become resident.
    const uint64_t from = (data.size() - (5 << 20)) / 4096 * 4096;
    const size_t pages = (data.size() - from + 4095) / 4096;
    std::vector<unsigned char> vec(pages);
    size_t resident = 0;
    for (int t = 0; t < 200 && resident < pages; t++) {
      ASSERT_EQ(mincore(const_cast<char*>(m) + from, data.size() - from, vec.data()), 0)
          << std::strerror(errno);
      resident = std::count_if(vec.begin(), vec.end(), [](unsigned char c) { return c & 1; });
      if (resident < pages) usleep(50000);
    }
    // Which pages are missing (file offsets of runs of them), should any be.
    std::string missing;
    for (size_t i = 0; i < pages; i++) {
      if ((vec[i] & 1) || (i > 0 && !(vec[i - 1] & 1))) continue;
      size_t j = i;
      while (j < pages && !(vec[j] & 1)) j++;
      missing += " " + std::to_string(from + i * 4096) + "+" + std::to_string(j - i);
    }
    EXPECT_EQ(resident, pages) << "file size " << data.size()
                               << "; missing (offset+pages):" << missing;
    EXPECT_EQ(std::memcmp(m, data.data(), data.size()), 0);
    munmap(p, data.size());
    close(fd);
  }

  static void write_whole(const std::string& file, const std::string& data) {
    int fd = open(file.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size()));
    ASSERT_EQ(close(fd), 0);
  }
};

TEST_F(ReadPathTest, ShuffledTensorsThroughMmapReadBackAndArePrefetched) {
  std::vector<uint64_t> sizes;
  std::mt19937_64 rng(3);
  // Small tensors, and tensors over several 4 MiB blocks (those get prefetched).
  for (int i = 0; i < 12; i++) sizes.push_back(100000 + rng() % (1 << 20));
  for (int i = 0; i < 8; i++) sizes.push_back((6 << 20) + rng() % (6 << 20));
  std::shuffle(sizes.begin(), sizes.end(), rng);
  std::vector<std::pair<uint64_t, uint64_t>> r;
  const std::string data = safetensors_file(sizes, r);
  const std::string file = mnt_ + "/model.safetensors";
  ASSERT_NO_FATAL_FAILURE(write_whole(file, data));
  Unmount();
  MountAt(meta_url_, mnt_, {"--prefetch", "4", "--max-readahead", "1M"});
  {
    int fd = open(file.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    // The loader reads the length and the header, then maps the file.
    std::string head(8 + (r[0].first - 8), '\0');
    ASSERT_EQ(pread(fd, head.data(), head.size(), 0), ssize_t(head.size()));
    EXPECT_EQ(head, data.substr(0, head.size()));
    void* p = mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
    const char* m = static_cast<const char*>(p);
    std::vector<size_t> order(r.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      const auto [a, b] = r[i];
      EXPECT_EQ(std::memcmp(m + a, data.data() + a, b - a), 0) << "tensor " << i;
    }
    munmap(p, data.size());
    close(fd);
  }
  UnmountAt(mnt_);
  const std::string text = read_file(mnt_ + ".log");
  EXPECT_EQ(read_path_counter(text, "safetensors_parsed"), 1) << text;
  EXPECT_GT(read_path_counter(text, "tensor_prefetches"), 0) << text;
  // Whole tensors were fetched once: no more bytes than the file and its block headers.
  EXPECT_LE(read_path_counter(text, "object_get_bytes"), (long long)(data.size() + (64 << 10)))
      << text;
}

// A loader going through the tensors of a file in its own order gets the whole file
// fetched ahead, into the kernel's page cache (notify_store): pages it never touched
// become resident without a read reaching the mount, and read back exactly.
TEST_F(ReadPathTest, AShuffledLoadGetsTheRestOfTheFileIntoThePageCache) {
  // 3 MiB tensors: a fault in one is a random entry (its read-around is far from the
  // last read), not a stream. About 22 blocks of 4 MiB.
  std::vector<uint64_t> sizes(30, 3 << 20);
  sizes.back() += 1000;  // the file ends off a page boundary
  std::vector<std::pair<uint64_t, uint64_t>> r;
  const std::string data = safetensors_file(sizes, r);
  const std::string file = mnt_ + "/model.safetensors";
  ASSERT_NO_FATAL_FAILURE(write_whole(file, data));
  Unmount();
  MountAt(meta_url_, mnt_, {"--cache-dir", path("cache-pages")});
  ASSERT_NO_FATAL_FAILURE(load_shuffled_and_wait_for_the_tail(file, data, r));
  UnmountAt(mnt_);
  const std::string text = read_file(mnt_ + ".log");
  EXPECT_GE(read_path_counter(text, "page_store_bytes"), 5 << 20) << text;
  // Fetched about once: the entries before the whole-file load fetched ranges, some of
  // them fetched again with their blocks.
  EXPECT_LE(read_path_counter(text, "object_get_bytes"), (long long)(data.size() * 21 / 20))
      << text;
}

// A shuffled load of a model in the disk cache (warmed up through an earlier mount) gets
// the rest of the file readied after a remount, and its blocks go from their cache files
// into the kernel's page cache: pages the loader never touched become resident, nothing
// is fetched from the store, and the file reads back exactly.
TEST_F(ReadPathTest, AShuffledLoadOfADiskCachedModelGetsItIntoThePageCacheFromTheFiles) {
  std::vector<uint64_t> sizes(30, 3 << 20);
  sizes.back() += 1000;
  std::vector<std::pair<uint64_t, uint64_t>> r;
  const std::string data = safetensors_file(sizes, r);
  const std::string file = mnt_ + "/model.safetensors";
  ASSERT_NO_FATAL_FAILURE(write_whole(file, data));
  Unmount();
  const std::string cache = path("cache-warm");
  MountAt(meta_url_, mnt_, {"--cache-dir", cache});
  CliResult w = cli({"warmup", file});  // every block into the disk cache
  ASSERT_EQ(w.code, 0) << w.err;
  UnmountAt(mnt_);
  MountAt(meta_url_, mnt_, {"--cache-dir", cache});
  ASSERT_NO_FATAL_FAILURE(load_shuffled_and_wait_for_the_tail(file, data, r));
  UnmountAt(mnt_);
  const std::string text = read_file(mnt_ + ".log");
  EXPECT_EQ(read_path_counter(text, "object_gets"), 0) << text;
  EXPECT_GE(read_path_counter(text, "page_store_bytes"), (long long)(data.size() - (4 << 20)))
      << text;
  // A page left out of the page cache: the mount's counters (page_store_dropped) say why.
  if (HasFailure()) std::cout << "mount log:\n" << text;
}

TEST_F(ReadPathTest, LazyLoaderTouchingARandomSubsetReadsExactDataRanged) {
  std::vector<uint64_t> sizes;
  std::mt19937_64 rng(5);
  // Small tensors (a few 64 KiB sub-blocks of a 4 MiB block) and multi-block ones.
  for (int i = 0; i < 16; i++) sizes.push_back(20000 + rng() % (600 << 10));
  for (int i = 0; i < 6; i++) sizes.push_back((5 << 20) + rng() % (4 << 20));
  std::shuffle(sizes.begin(), sizes.end(), rng);
  std::vector<std::pair<uint64_t, uint64_t>> r;
  const std::string data = safetensors_file(sizes, r);
  const std::string file = mnt_ + "/model.safetensors";
  ASSERT_NO_FATAL_FAILURE(write_whole(file, data));
  Unmount();
  MountAt(meta_url_, mnt_, {});
  {
    int fd = open(file.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    std::string head(r[0].first, '\0');
    ASSERT_EQ(pread(fd, head.data(), head.size(), 0), ssize_t(head.size()));
    EXPECT_EQ(head, data.substr(0, head.size()));
    void* p = mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
    const char* m = static_cast<const char*>(p);
    // As bench/load_safetensors lazy: a random quarter of the tensors, each page touched.
    std::vector<size_t> order(r.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    order.resize(order.size() / 4);
    for (size_t i : order) {
      const auto [a, b] = r[i];
      for (uint64_t o = a; o < b; o = (o | 4095) + 1) {
        ASSERT_EQ(m[o], data[o]) << "tensor " << i << " offset " << o;
      }
      EXPECT_EQ(std::memcmp(m + a, data.data() + a, b - a), 0) << "tensor " << i;
    }
    munmap(p, data.size());
    close(fd);
  }
  UnmountAt(mnt_);
  const std::string text = read_file(mnt_ + ".log");
  EXPECT_GT(read_path_counter(text, "ranged_gets"), 0) << text;
  EXPECT_GT(read_path_counter(text, "ranged_get_bytes"), 0) << text;
  // A quarter of the tensors never needs the whole file.
  EXPECT_LT(read_path_counter(text, "object_get_bytes"), (long long)data.size()) << text;
}

TEST_F(ReadPathTest, NoReadaheadStillReadsSequentially) {
  const std::string data = random_bytes(9 << 20, 11);
  const std::string file = mnt_ + "/plain";
  ASSERT_NO_FATAL_FAILURE(write_whole(file, data));
  Unmount();
  MountAt(meta_url_, mnt_, {"--prefetch", "0"});
  EXPECT_EQ(read_file(file), data);
  UnmountAt(mnt_);
  const std::string text = read_file(mnt_ + ".log");
  EXPECT_EQ(read_path_counter(text, "prefetch_issued"), 0) << text;
  // Each block once, whole: its 32-byte header and its table of sub-block checksums (8
  // bytes per 64 KiB: 4, 4 and 1 MiB blocks), no ranged reads of a sequential reader.
  EXPECT_EQ(read_path_counter(text, "object_get_bytes"),
            (long long)(data.size() + 3 * 32 + (64 + 64 + 16) * 8))
      << text;
  EXPECT_EQ(read_path_counter(text, "ranged_gets"), 0) << text;
}

}  // namespace
}  // namespace sluice::test
