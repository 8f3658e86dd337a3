// DiskCache: round trip and file format, eviction by capacity and by free space (a fake
// statvfs), the index rebuilt after a restart, corrupt files, a directory removed while
// in use, and a real full file system (a 1 MiB tmpfs, when the test may mount one).
#include "cache/disk_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "common/hash.h"

namespace sluice::cache {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string block(char c, size_t n = 1000) { return std::string(n, c); }

class DiskCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-diskcache-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::unique_ptr<DiskCache> open(DiskCacheOptions o) {
    if (o.dirs.empty()) o.dirs = {root_ + "/c"};
    auto c = DiskCache::open(std::move(o));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    (*c)->wait_scan();
    return std::move(c).value();
  }
  // What a crash leaves: no record of the files the closed cache trusted (.trusted).
  void drop_trust_record() { EXPECT_TRUE(fs::remove(root_ + "/c/.trusted")); }
  std::string root_;
};

TEST_F(DiskCacheTest, RoundTripKeepsRawDataAtOffsetZero) {
  auto c = open({});
  const std::string key = "vol/chunks/0/0/7_0_1000";
  EXPECT_FALSE(c->contains(key));
  EXPECT_FALSE(c->get(key).has_value());
  ASSERT_TRUE(c->put(key, block('a')));
  EXPECT_TRUE(c->contains(key));
  auto got = c->get(key);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, block('a'));
  // Raw bytes at offset 0 (spliceable), then the trailer.
  std::string file = read_file(c->path_of(key));
  ASSERT_GT(file.size(), 1000u);
  EXPECT_EQ(file.substr(0, 1000), block('a'));
  EXPECT_EQ(c->path_of(key).find(root_ + "/c/"), 0u);
  DiskCacheStats s = c->stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.blocks, 1u);
  EXPECT_EQ(s.bytes, file.size());
  c->erase(key);
  EXPECT_FALSE(c->contains(key));
  EXPECT_FALSE(fs::exists(c->path_of(key)));
  EXPECT_EQ(c->stats().blocks, 0u);
}

// A caller that knows the data's checksum (the block codec checked it) hands it in: the
// file is the one put() would write after hashing, and a wrong checksum is caught on
// read as corruption, never served.
TEST_F(DiskCacheTest, PutWithAKnownChecksumWritesItAndAWrongOneIsCaught) {
  auto c = open({});
  const std::string data = block('k', 5000);
  ASSERT_TRUE(c->put("k", data));
  const std::string hashed = read_file(c->path_of("k"));
  ASSERT_TRUE(c->put("k", data, checksum64(data)));
  EXPECT_TRUE(read_file(c->path_of("k")) == hashed);
  EXPECT_EQ(c->get("k").value_or(""), data);

  ASSERT_TRUE(c->put("bad", data, checksum64(data) ^ 1));
  EXPECT_FALSE(c->get("bad").has_value());
  EXPECT_EQ(c->stats().corrupt, 1u);
  EXPECT_FALSE(fs::exists(c->path_of("bad")));
}

// Whether dir's file system takes O_DIRECT writes of 4 KiB-aligned buffers.
bool takes_direct_io(const std::string& dir) {
  const std::string path = dir + "/.probe";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_DIRECT, 0644);
  if (fd < 0) return false;
  void* p = nullptr;
  bool ok = posix_memalign(&p, 4096, 4096) == 0;
  if (ok) {
    std::memset(p, 0, 4096);
    ok = ::pwrite(fd, p, 4096, 0) == 4096;
  }
  std::free(p);
  ::close(fd);
  ::unlink(path.c_str());
  return ok;
}

TEST_F(DiskCacheTest, DirectWritesLeaveExactFilesWherever) {
  // Sizes off the 4 KiB alignment: the file is padded for O_DIRECT, then truncated.
  const bool direct = takes_direct_io(root_);
  for (bool use_direct : {true, false}) {
    DiskCacheOptions o;
    o.dirs = {root_ + (use_direct ? "/d" : "/b")};
    o.direct_io = use_direct;
    auto c = open(o);
    const std::string big = block('x', (4u << 20) + 5) + block('y', 4091);
    ASSERT_TRUE(c->put("small", block('s', 1000)));
    ASSERT_TRUE(c->put("big", big));
    ASSERT_TRUE(c->put("page", block('p', 4096)));
    EXPECT_EQ(c->stats().direct_writes, use_direct && direct ? 3u : 0u);
    EXPECT_EQ(*c->get("small"), block('s', 1000));
    EXPECT_EQ(*c->get("big"), big);
    EXPECT_EQ(*c->get("page"), block('p', 4096));
    // Exactly data + trailer (the key, then 24 bytes): no padding is left behind.
    EXPECT_EQ(fs::file_size(c->path_of("big")), big.size() + 3 + 24);
    EXPECT_EQ(fs::file_size(c->path_of("small")), 1000u + 5 + 24);
    EXPECT_EQ(c->stats().write_errors, 0u);
  }
}

TEST_F(DiskCacheTest, EvictsLeastRecentlyUsedOverCapacity) {
  DiskCacheOptions o;
  o.capacity = 3 * 1100;  // three 1000-byte blocks with their trailers
  o.free_ratio = 0;
  auto c = open(o);
  ASSERT_TRUE(c->put("k1", block('1')));
  ASSERT_TRUE(c->put("k2", block('2')));
  ASSERT_TRUE(c->put("k3", block('3')));
  ASSERT_TRUE(c->get("k1").has_value());  // k2 is now the least recently used
  ASSERT_TRUE(c->put("k4", block('4')));
  EXPECT_FALSE(c->contains("k2"));
  EXPECT_FALSE(fs::exists(c->path_of("k2")));
  for (const char* k : {"k1", "k3", "k4"}) EXPECT_TRUE(c->contains(k)) << k;
  DiskCacheStats s = c->stats();
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.blocks, 3u);
  EXPECT_LE(s.bytes, o.capacity);
  // A block larger than the whole capacity is not stored.
  EXPECT_FALSE(c->put("big", block('b', 5000)));
  EXPECT_FALSE(c->contains("big"));
}

TEST_F(DiskCacheTest, EvictsToKeepFreeSpaceRatio) {
  auto avail = std::make_shared<std::atomic<uint64_t>>(1'000'000);
  DiskCacheOptions o;
  o.capacity = 1ull << 30;
  o.free_ratio = 0.1;  // keep 100000 of 1000000 bytes free
  o.space_check_interval_ns = 0;  // check at every put
  o.statfs = [avail](const std::string&) -> Result<FsSpace> {
    return FsSpace{1'000'000, avail->load()};
  };
  auto c = open(o);
  for (const char* k : {"k1", "k2", "k3"}) ASSERT_TRUE(c->put(k, block('x')));
  // Other users filled the disk: 100500 free, so a 1000-byte block needs one eviction.
  avail->store(100'500);
  ASSERT_TRUE(c->put("k4", block('4')));
  EXPECT_FALSE(c->contains("k1"));
  EXPECT_TRUE(c->contains("k2"));
  EXPECT_TRUE(c->contains("k4"));
  EXPECT_EQ(c->stats().evictions, 1u);
  // Below the ratio with nothing left that helps enough: writes are skipped, counted.
  avail->store(10'000);
  EXPECT_FALSE(c->put("k5", block('5')));
  EXPECT_FALSE(c->contains("k5"));
  EXPECT_EQ(c->stats().skipped_full, 1u);
  EXPECT_EQ(c->stats().blocks, 0u);  // everything was evicted trying
  avail->store(900'000);
  EXPECT_TRUE(c->put("k6", block('6')));
  EXPECT_TRUE(c->get("k6").has_value());
}

TEST_F(DiskCacheTest, RestartFindsOldBlocksAndDropsTempFiles) {
  DiskCacheOptions o;
  o.dirs = {root_ + "/a", root_ + "/b"};
  o.capacity = 1 << 20;
  {
    auto c = open(o);
    for (int i = 0; i < 20; i++) ASSERT_TRUE(c->put("vol/k" + std::to_string(i), block('a' + i % 26)));
  }
  fs::create_directories(root_ + "/a/00");
  std::ofstream(root_ + "/a/00/.tmp-1-1") << "torn";
  ASSERT_TRUE(fs::exists(root_ + "/a/00/.tmp-1-1"));
  auto c = open(o);
  EXPECT_EQ(c->stats().blocks, 20u);
  EXPECT_FALSE(fs::exists(root_ + "/a/00/.tmp-1-1"));
  for (int i = 0; i < 20; i++) {
    auto got = c->get("vol/k" + std::to_string(i));
    ASSERT_TRUE(got.has_value()) << i;
    EXPECT_EQ(*got, block('a' + i % 26));
  }
  // Both directories hold some of the blocks.
  size_t in_a = 0;
  for (int i = 0; i < 20; i++) in_a += c->path_of("vol/k" + std::to_string(i)).find(root_ + "/a/") == 0;
  EXPECT_GT(in_a, 0u);
  EXPECT_LT(in_a, 20u);
}

// Raw files (whole-file copies for passthrough): written by the caller to the temporary
// path raw_begin gives, found by raw_open only at their exact size, evicting blocks to
// make room and evicted like them, found again by the next open's scan, never served as
// blocks.
TEST_F(DiskCacheTest, RawFilesShareTheCapacityAndSurviveARestart) {
  DiskCacheOptions o;
  o.capacity = 4 * 1100;
  o.free_ratio = 0;
  const std::string copy(2000, 'c');
  auto write_raw = [&](DiskCache& c, const std::string& key) {
    auto tmp = c.raw_begin(key, copy.size());
    if (!tmp.ok()) return false;
    std::ofstream(*tmp, std::ios::binary) << copy;
    return c.raw_commit(key, *tmp, copy.size());
  };
  {
    auto c = open(o);
    for (const char* k : {"k1", "k2", "k3"}) ASSERT_TRUE(c->put(k, block('x')));
    ASSERT_TRUE(write_raw(*c, "~copy/7"));  // 2000 bytes: the oldest block makes room
    EXPECT_FALSE(c->contains("k1"));
    EXPECT_TRUE(c->contains("k2"));
    EXPECT_TRUE(c->contains("k3"));
    EXPECT_LE(c->stats().bytes, o.capacity);
    EXPECT_EQ(c->raw_open("~copy/7", 1999), -1);  // not the size asked for
    const int fd = c->raw_open("~copy/7", copy.size());
    ASSERT_GE(fd, 0);
    char buf[2001];
    EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), ssize_t(copy.size()));
    EXPECT_EQ(std::string(buf, copy.size()), copy);
    ::close(fd);
    EXPECT_EQ(c->raw_open("~copy/8", copy.size()), -1);
  }
  auto c = open(o);
  const int fd = c->raw_open("~copy/7", copy.size());
  EXPECT_GE(fd, 0);
  if (fd >= 0) ::close(fd);
  // Blocks put later evict it when it is the least recently used.
  for (const char* k : {"k4", "k5", "k6", "k7"}) ASSERT_TRUE(c->put(k, block('y')));
  EXPECT_EQ(c->raw_open("~copy/7", copy.size()), -1);
  // No room at all: raw_begin says so and the caller writes nothing.
  EXPECT_FALSE(c->raw_begin("~copy/9", 1 << 20).ok());
  // Never served as a block: it has no trailer to verify.
  ASSERT_TRUE(write_raw(*c, "~copy/10"));
  EXPECT_FALSE(c->get("~copy/10").has_value());
}

TEST_F(DiskCacheTest, ScanEnforcesASmallerCapacity) {
  DiskCacheOptions o;
  o.capacity = 1 << 20;
  {
    auto c = open(o);
    for (int i = 0; i < 10; i++) ASSERT_TRUE(c->put("k" + std::to_string(i), block('z')));
  }
  o.capacity = 5 * 1100;
  auto c = open(o);
  EXPECT_EQ(c->stats().blocks, 5u);
  EXPECT_LE(c->stats().bytes, o.capacity);
}

TEST_F(DiskCacheTest, CorruptOrTruncatedFileIsAMissAndRemoved) {
  auto c = open({});
  ASSERT_TRUE(c->put("bad", block('q')));
  ASSERT_TRUE(c->put("short", block('s')));
  {
    std::fstream f(c->path_of("bad"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(500);
    f.put('X');
  }
  fs::resize_file(c->path_of("short"), 700);
  EXPECT_FALSE(c->get("bad").has_value());
  EXPECT_FALSE(c->get("short").has_value());
  EXPECT_FALSE(fs::exists(c->path_of("bad")));
  EXPECT_FALSE(fs::exists(c->path_of("short")));
  EXPECT_FALSE(c->contains("bad"));
  DiskCacheStats s = c->stats();
  EXPECT_EQ(s.corrupt, 2u);
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.blocks, 0u);
  // The key is cached again by the next put.
  ASSERT_TRUE(c->put("bad", block('q')));
  EXPECT_EQ(*c->get("bad"), block('q'));
}

// The bytes of an open_file() result, read from its fd.
std::string file_bytes(const FileBlock& f) {
  std::string out(f->len, '\0');
  EXPECT_EQ(pread(f->fd, out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
  return out;
}

TEST_F(DiskCacheTest, OpenFileHandsOutFilesThisProcessWroteOrVerified) {
  {
    auto c = open({});  // kOnce, the default
    ASSERT_TRUE(c->put("w", block('w', 5000)));
    FileBlock f = c->open_file("w");  // written here: no check needed
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->len, 5000u);
    EXPECT_EQ(file_bytes(f), block('w', 5000));
    EXPECT_EQ(c->open_file("absent"), nullptr);
    EXPECT_EQ(c->stats().file_opens, 1u);
    EXPECT_EQ(c->stats().hits, 0u);  // opens are no verified reads
  }
  drop_trust_record();
  {
    // After a restart without the record of a clean close (a crash), nothing is trusted
    // until get() has verified it.
    auto c = open({});
    EXPECT_EQ(c->open_file("w"), nullptr);
    ASSERT_TRUE(c->get("w").has_value());
    FileBlock f = c->open_file("w");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(file_bytes(f), block('w', 5000));
    // The open file outlives its eviction (unlink): a read under way finishes.
    c->erase("w");
    EXPECT_EQ(c->open_file("w"), nullptr);
    EXPECT_EQ(file_bytes(f), block('w', 5000));
  }
  {
    DiskCacheOptions o;
    o.verify = CacheVerify::kFull;
    auto c = open(o);
    ASSERT_TRUE(c->put("x", block('x')));
    ASSERT_TRUE(c->get("x").has_value());
    EXPECT_EQ(c->open_file("x"), nullptr);  // every read verifies
    EXPECT_EQ(c->stats().file_opens, 0u);
  }
}

// A clean close records the files it trusted; the next open trusts each of them that is
// unchanged without hashing it again, checks the others (changed in place, replaced),
// keeps remembering those it did not read, and ignores a damaged record.
TEST_F(DiskCacheTest, ACleanCloseIsRememberedFileByFile) {
  const std::string record = root_ + "/c/.trusted";
  {
    auto c = open({});
    for (char k : {'a', 'b', 'c', 'd'}) ASSERT_TRUE(c->put(std::string(1, k), block(k, 6000)));
  }
  ASSERT_TRUE(fs::exists(record));
  {
    auto c = open({});
    EXPECT_FALSE(fs::exists(record));  // taken: a crash of this mount leaves none behind
    {
      std::fstream f(c->path_of("b"), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(100);
      f.put('X');  // changed in place, same size
    }
    const std::string c_file = read_file(c->path_of("c"));
    fs::remove(c->path_of("c"));  // replaced by a copy of the same bytes
    std::ofstream(c->path_of("c"), std::ios::binary) << c_file;

    FileBlock a = c->open_file("a");  // unchanged: handed out without a check
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(file_bytes(a), block('a', 6000));
    EXPECT_EQ(c->open_file("b"), nullptr);  // changed: checked, and found bad
    EXPECT_FALSE(c->ready_file("b"));
    EXPECT_EQ(c->stats().corrupt, 1u);
    EXPECT_EQ(c->open_file("c"), nullptr);  // another file: checked, and good
    EXPECT_TRUE(c->ready_file("c"));
    EXPECT_TRUE(c->ready_file("a"));
    const DiskCacheStats s = c->stats();
    EXPECT_EQ(s.remembered, 1u);
    EXPECT_EQ(s.hits, 2u);  // a remembered, c hashed
  }
  {
    auto c = open({});  // d, not read by the last mount, is still remembered
    EXPECT_TRUE(c->ready_file("d"));
    EXPECT_TRUE(c->ready_file("a"));
    EXPECT_TRUE(c->ready_file("c"));
    EXPECT_EQ(c->stats().remembered, 3u);
    EXPECT_EQ(c->stats().corrupt, 0u);
  }
  {
    std::fstream f(record, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x7f');
  }
  auto c = open({});
  EXPECT_TRUE(c->ready_file("a"));
  EXPECT_EQ(c->stats().remembered, 0u);
  EXPECT_EQ(c->stats().hits, 1u);
}

// A record that is too large to be one (64 GiB here, sparse: more than this machine's
// memory, so reading it whole would fail), or not a file at all (a FIFO, which a blocking
// open would wait on forever), is removed unread; every file is then verified.
TEST_F(DiskCacheTest, ARecordTooLargeOrNotAFileIsIgnoredUnread) {
  const std::string record = root_ + "/c/.trusted";
  {
    auto c = open({});
    ASSERT_TRUE(c->put("a", block('a', 6000)));
  }
  ASSERT_TRUE(fs::exists(record));
  fs::resize_file(record, uint64_t(64) << 30);
  {
    auto c = open({});
    EXPECT_FALSE(fs::exists(record));
    EXPECT_EQ(c->stats().remembered, 0u);
    EXPECT_EQ(c->open_file("a"), nullptr);  // not trusted: verified first
    EXPECT_TRUE(c->ready_file("a"));
    EXPECT_EQ(c->stats().remembered, 0u);
  }
  ASSERT_TRUE(fs::exists(record));  // that close recorded "a" again
  fs::remove(record);
  ASSERT_EQ(mkfifo(record.c_str(), 0644), 0);
  auto c = open({});
  EXPECT_FALSE(fs::exists(record));
  EXPECT_EQ(c->open_file("a"), nullptr);
  EXPECT_TRUE(c->ready_file("a"));
  EXPECT_EQ(c->stats().remembered, 0u);
}

// ready_file readies a file for open_file ahead of its reader, or for the reader at hand:
// after a restart it verifies it where it lies (a bad or cut one is removed, not handed
// out) and hands it out; with kFull it does nothing.
TEST_F(DiskCacheTest, ReadyFileVerifiesAheadSoThatOpenFileHandsItOut) {
  {
    auto c = open({});
    ASSERT_TRUE(c->put("good", block('g', 6000)));
    ASSERT_TRUE(c->put("bad", block('b', 6000)));
    ASSERT_TRUE(c->put("cut", block('c', 6000)));
  }
  drop_trust_record();
  {
    auto c = open({});  // a restart after a crash: nothing trusted
    std::fstream f(c->path_of("bad"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('X');
    f.close();
    EXPECT_EQ(c->open_file("good"), nullptr);
    FileBlock r = c->ready_file("good");  // the file it readied, open
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(file_bytes(r), block('g', 6000));
    FileBlock g = c->open_file("good");
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(file_bytes(g), block('g', 6000));
    EXPECT_TRUE(c->ready_file("good"));  // trusted now: no second check
    EXPECT_EQ(c->stats().hits, 1u);
    EXPECT_FALSE(c->ready_file("bad"));
    EXPECT_EQ(c->open_file("bad"), nullptr);
    EXPECT_FALSE(fs::exists(c->path_of("bad")));
    EXPECT_EQ(c->stats().corrupt, 1u);
    fs::resize_file(c->path_of("cut"), 10);  // shorter than a trailer
    EXPECT_FALSE(c->ready_file("cut"));
    EXPECT_FALSE(fs::exists(c->path_of("cut")));
    EXPECT_EQ(c->stats().corrupt, 2u);
    EXPECT_FALSE(c->ready_file("absent"));
  }
  DiskCacheOptions o;
  o.verify = CacheVerify::kFull;
  auto c = open(o);
  EXPECT_FALSE(c->ready_file("good"));  // every read verifies: nothing to ready
  EXPECT_EQ(c->stats().hits, 0u);
}

// Right after a restart, before the scan has indexed the directory, ready_file finds a
// block's file where it lies, checks it and hands it out; the scan then indexes only the
// others (each file counted once).
TEST_F(DiskCacheTest, ReadyFileBeforeTheScanFindsTheFileWhereItLies) {
  uint64_t size = 0;
  {
    auto c = open({});
    ASSERT_TRUE(c->put("k", block('k', 6000)));
    ASSERT_TRUE(c->put("other", block('o', 6000)));
    size = c->stats().bytes / 2;
  }
  std::atomic<bool> scan{false};
  DiskCacheOptions o;
  o.dirs = {root_ + "/c"};
  o.before_scan = [&scan] {
    while (!scan.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  auto opened = DiskCache::open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<DiskCache> c = std::move(opened).value();
  struct Release {  // the scan goes on even when a check below fails
    std::atomic<bool>& scan;
    ~Release() { scan = true; }
  } release{scan};
  EXPECT_FALSE(c->scan_done());
  EXPECT_EQ(c->open_file("k"), nullptr);  // not checked since the restart
  FileBlock f = c->ready_file("k");
  EXPECT_NE(f, nullptr);
  if (f) {
    EXPECT_EQ(file_bytes(f), block('k', 6000));
  }
  EXPECT_NE(c->open_file("k"), nullptr);
  EXPECT_EQ(c->ready_file("absent"), nullptr);
  EXPECT_EQ(c->stats().blocks, 1u);
  EXPECT_EQ(c->stats().hits, 1u);
  EXPECT_FALSE(c->scan_done());
  scan = true;
  c->wait_scan();
  EXPECT_EQ(c->stats().blocks, 2u);
  EXPECT_EQ(c->stats().bytes, 2 * size);
  EXPECT_NE(c->ready_file("other"), nullptr);
}

// Readers that ready one unchecked file at once check it once: the others take that
// check's verdict (one hit counted, every reader gets the file).
TEST_F(DiskCacheTest, ConcurrentReadiesOfOneFileCheckItOnce) {
  {
    auto c = open({});
    ASSERT_TRUE(c->put("k", block('k', 1 << 20)));
  }
  auto c = open({});  // a restart: nothing trusted
  std::vector<std::thread> ts;
  std::atomic<int> got{0};
  for (int i = 0; i < 8; i++) {
    ts.emplace_back([&] {
      if (FileBlock f = c->ready_file("k"); f && file_bytes(f) == block('k', 1 << 20)) got++;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(got.load(), 8);
  EXPECT_EQ(c->stats().hits, 1u);
  EXPECT_EQ(c->stats().corrupt, 0u);
}

TEST_F(DiskCacheTest, OpenFileRefusesAFileOfTheWrongSizeOrFraming) {
  {
    auto c = open({});
    for (const char* k : {"grown", "cut", "framed", "keyed", "fine"}) {
      ASSERT_TRUE(c->put(k, block('a', 3000)));
    }
  }
  DiskCacheOptions o;
  o.verify = CacheVerify::kNone;
  auto c = open(o);
  // Not verified in this process, yet handed out (kNone): the size and trailer are right.
  FileBlock fine = c->open_file("fine");
  ASSERT_NE(fine, nullptr);
  EXPECT_EQ(file_bytes(fine), block('a', 3000));
  // A file whose size is not the one indexed was changed behind the cache's back.
  {
    std::ofstream f(c->path_of("grown"), std::ios::app | std::ios::binary);
    f << "more";
  }
  fs::resize_file(c->path_of("cut"), 2000);
  EXPECT_EQ(c->open_file("grown"), nullptr);
  EXPECT_EQ(c->open_file("cut"), nullptr);
  // A damaged trailer (the magic; the key) is refused without verifying the data.
  auto damage = [&](const std::string& key, off_t from_end) {
    const std::string path = c->path_of(key);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<off_t>(fs::file_size(path)) - from_end);
    f.put('!');
  };
  damage("framed", 1);                          // the magic, last in the file
  damage("keyed", 24 + 1);                      // the key's last byte, before the footer
  EXPECT_EQ(c->open_file("framed"), nullptr);
  EXPECT_EQ(c->open_file("keyed"), nullptr);
  // get() then finds them bad, removes them and counts them.
  EXPECT_FALSE(c->get("framed").has_value());
  EXPECT_FALSE(c->get("keyed").has_value());
  EXPECT_EQ(c->stats().corrupt, 2u);
  EXPECT_EQ(c->stats().file_opens, 1u);
}

TEST_F(DiskCacheTest, RemovedDirectoryIsBypassedThenRecreated) {
  auto c = open({});
  ASSERT_TRUE(c->put("k1", block('1')));
  fs::remove_all(root_ + "/c");
  EXPECT_FALSE(c->get("k1").has_value());
  EXPECT_GE(c->stats().dir_errors, 1u);
  EXPECT_EQ(c->stats().blocks, 0u);
  ASSERT_TRUE(c->put("k2", block('2')));  // recreates the directory
  EXPECT_EQ(*c->get("k2"), block('2'));
  EXPECT_EQ(c->stats().write_errors, 0u);
}

TEST_F(DiskCacheTest, UnwritableDirectoryOnlyCountsErrors) {
  auto c = open({});
  // A file where the hash subdirectory should be: every write there fails.
  const std::string sub = fs::path(c->path_of("k1")).parent_path();
  fs::remove_all(sub);
  std::ofstream(sub) << "in the way";
  EXPECT_FALSE(c->put("k1", block('1')));
  EXPECT_FALSE(c->get("k1").has_value());
  EXPECT_EQ(c->stats().write_errors, 1u);
}

TEST_F(DiskCacheTest, FullFileSystemFailsWritesNotReads) {
  const std::string mnt = root_ + "/tmpfs";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  {
    DiskCacheOptions o;
    o.dirs = {mnt + "/c"};
    o.free_ratio = 0;  // only ENOSPC stops writes
    auto c = open(o);
    int stored = 0;
    for (int i = 0; i < 8; i++) stored += c->put("k" + std::to_string(i), block('a' + i, 300'000));
    DiskCacheStats s = c->stats();
    EXPECT_GE(s.write_errors, 1u);  // 1 MiB holds at most three
    EXPECT_LE(stored, 5);           // every ENOSPC is followed by evictions, then success
    EXPECT_GE(stored, 3);
    // Whatever is indexed reads back intact; no temp files are left behind.
    for (int i = 0; i < 8; i++) {
      auto got = c->get("k" + std::to_string(i));
      if (got) {
        EXPECT_EQ(*got, block('a' + i, 300'000));
      }
    }
    for (auto& e : fs::recursive_directory_iterator(mnt)) {
      EXPECT_EQ(e.path().filename().string().rfind(".tmp-", 0), std::string::npos) << e.path();
    }
  }
  ASSERT_EQ(::umount(mnt.c_str()), 0);
}

}  // namespace
}  // namespace sluice::cache
