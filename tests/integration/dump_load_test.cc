// `sluice dump` and `sluice load` through the real binary, for every ordered pair of the
// metadata engines dump_load_engines() lists: a volume written through a mount is dumped,
// loaded into a fresh engine, and the copy, mounted over the same object store, holds the
// same files byte for byte (modes, links, xattrs too), passes fsck, and dumps to the same
// records. Also: a truncated dump leaves a copy that mount refuses, load refuses a volume
// that is not empty, dump/load through stdout and stdin.
#include <sys/stat.h>
#include <sys/xattr.h>

#include <functional>
#include <random>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

// A metadata engine to test dump/load on: fresh_url returns the URL of a new, empty
// namespace (dir: the test's scratch directory; unique: a name no other call uses).
// Add networked engines here (with their test servers) to test every pair.
struct DumpEngine {
  std::string name;
  std::function<BackendUrl(const std::string& dir, const std::string& unique)> fresh_url;
};

std::vector<DumpEngine> dump_load_engines() {
  using sluice::testing::EtcdCluster;
  using sluice::testing::PostgresServer;
  using sluice::testing::RedisServer;
  return {
      {"sqlite3",
       [](const std::string& dir, const std::string& unique) {
         return BackendUrl{"sqlite3://" + dir + "/" + unique + ".db", ""};
       }},
      {"postgres",
       [](const std::string&, const std::string&) {
         PostgresServer* pg = PostgresServer::get();
         if (pg == nullptr) return BackendUrl{"", "PostgreSQL cannot run: " + PostgresServer::why()};
         return BackendUrl{pg->fresh_url(), ""};
       }},
      {"redis",
       [](const std::string&, const std::string&) {
         RedisServer* r = RedisServer::get();
         if (r == nullptr) return BackendUrl{"", "redis-server cannot run: " + RedisServer::why()};
         return BackendUrl{r->fresh_url(), ""};
       }},
      {"etcd",
       [](const std::string&, const std::string&) {
         EtcdCluster* e = EtcdCluster::get();
         if (e == nullptr) return BackendUrl{"", "etcd cannot run: " + EtcdCluster::why()};
         return BackendUrl{e->fresh_url(), ""};
       }},
  };
}

struct EnginePair {
  DumpEngine from, to;
};
void PrintTo(const EnginePair& p, std::ostream* os) { *os << p.from.name << " to " << p.to.name; }

std::vector<EnginePair> engine_pairs() {
  std::vector<EnginePair> out;
  for (const auto& a : dump_load_engines()) {
    for (const auto& b : dump_load_engines()) out.push_back({a, b});
  }
  return out;
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string xattr_of(const std::string& path, const char* name) {
  char buf[256];
  ssize_t n = lgetxattr(path.c_str(), name, buf, sizeof buf);
  return n < 0 ? "<" + std::string(std::strerror(errno)) + ">" : std::string(buf, size_t(n));
}

// The dump without its header line (which names the source engine and the time).
std::string body(const std::string& dump) { return dump.substr(dump.find('\n') + 1); }

class DumpLoad : public MountFixture, public ::testing::WithParamInterface<EnginePair> {
 protected:
  // A fresh URL on one of the pair's engines (MountFixture's own volume is on the engine
  // the environment picks).
  std::string fresh(const DumpEngine& e, const std::string& unique) {
    BackendUrl u = e.fresh_url(dir_, unique);
    if (u.url.empty()) ADD_FAILURE() << e.name << ": " << u.error;
    return u.url;
  }

  // Writes one of everything through the mount, and remembers what it wrote.
  void populate(const std::string& root) {
    big_ = random_bytes((9 << 20) + 77, 7);  // three 4 MiB blocks
    small_ = "tokenizer config\n";
    ASSERT_EQ(mkdir((root + "/models").c_str(), 0755), 0);
    ASSERT_EQ(mkdir((root + "/shared").c_str(), 0755), 0);
    ASSERT_EQ(chmod((root + "/shared").c_str(), 01777), 0);  // sticky, past the umask
    write_file(root + "/models/big.bin", big_);
    write_file(root + "/models/config.json", small_);
    write_file(root + "/empty", "");
    // A sparse file: 100 bytes at 70 MiB (past the first 64 MiB chunk), rest holes.
    int fd = open((root + "/sparse").c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, small_.data(), small_.size(), 70 << 20), ssize_t(small_.size()));
    close(fd);
    ASSERT_EQ(link((root + "/models/config.json").c_str(), (root + "/shared/hard").c_str()), 0);
    ASSERT_EQ(symlink("models/big.bin", (root + "/latest").c_str()), 0);
    ASSERT_EQ(mkfifo((root + "/fifo").c_str(), 0640), 0);
    ASSERT_EQ(chmod((root + "/empty").c_str(), 04755), 0);
    ASSERT_EQ(setxattr((root + "/models/big.bin").c_str(), "user.origin", "hub", 3, 0), 0);
    write_file(root + "/gone", "removed before the dump");
    ASSERT_EQ(unlink((root + "/gone").c_str()), 0);
  }

  void expect_same_files(const std::string& root) {
    EXPECT_EQ(list_dir(root),
              (std::set<std::string>{"models", "shared", "empty", "sparse", "latest", "fifo"}));
    EXPECT_EQ(read_file(root + "/models/big.bin"), big_);
    EXPECT_EQ(read_file(root + "/models/config.json"), small_);
    EXPECT_EQ(read_file(root + "/shared/hard"), small_);
    std::string sparse = read_file(root + "/sparse");
    ASSERT_EQ(sparse.size(), (70u << 20) + small_.size());
    EXPECT_EQ(sparse.substr(70 << 20), small_);
    EXPECT_EQ(sparse.find_first_not_of('\0'), size_t(70) << 20);
    struct stat a {
    }, b{}, st{};
    ASSERT_EQ(stat((root + "/models/config.json").c_str(), &a), 0);
    ASSERT_EQ(stat((root + "/shared/hard").c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
    EXPECT_EQ(a.st_nlink, 2u);
    ASSERT_EQ(stat((root + "/empty").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 04755u);
    ASSERT_EQ(stat((root + "/shared").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 01777u);
    ASSERT_EQ(lstat((root + "/fifo").c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    char target[64] = {};
    ASSERT_GT(readlink((root + "/latest").c_str(), target, sizeof target - 1), 0);
    EXPECT_STREQ(target, "models/big.bin");
    EXPECT_EQ(xattr_of(root + "/models/big.bin", "user.origin"), "hub");
  }

  std::string big_, small_;
};

TEST_P(DumpLoad, CopyOnAnotherEngineHoldsTheSameFiles) {
  const EnginePair& p = GetParam();
  // The fixture formatted and mounted a volume on SLUICE_TEST_META; this test wants its
  // own pair, so it formats the source on p.from and mounts that instead.
  Unmount();
  const std::string src = fresh(p.from, "source"), dst = fresh(p.to, "copy");
  ASSERT_FALSE(src.empty() || dst.empty());
  CliResult f = cli({"format", src, "dumped", "--storage", storage_url_});
  ASSERT_EQ(f.code, 0) << f.err;
  const std::string m1 = path("m1"), m2 = path("m2");
  ASSERT_NO_FATAL_FAILURE(MountAt(src, m1));
  ASSERT_NO_FATAL_FAILURE(populate(m1));
  UnmountAt(m1);

  CliResult d = cli({"dump", src, path("vol.jsonl")});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_FALSE(std::filesystem::exists(path("vol.jsonl.partial")));
  CliResult l = cli({"load", dst, path("vol.jsonl")});
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_NE(l.err.find("loaded "), std::string::npos) << l.err;

  CliResult fsck = cli({"fsck", dst});
  EXPECT_EQ(fsck.code, 0) << fsck.out << fsck.err;
  EXPECT_NE(fsck.out.find("consistent"), std::string::npos) << fsck.out;

  // The copy dumps to the same records.
  CliResult d2 = cli({"dump", dst, path("copy.jsonl")});
  ASSERT_EQ(d2.code, 0) << d2.err;
  EXPECT_EQ(body(read_file(path("copy.jsonl"))), body(read_file(path("vol.jsonl"))));

  ASSERT_NO_FATAL_FAILURE(MountAt(dst, m2));
  expect_same_files(m2);
  // The copy is a working volume: it takes new files too.
  write_file(m2 + "/new", "after the move");
  EXPECT_EQ(read_file(m2 + "/new"), "after the move");
  UnmountAt(m2);
}

TEST_P(DumpLoad, ThroughStdoutAndStdin) {
  const EnginePair& p = GetParam();
  ASSERT_NO_FATAL_FAILURE(populate(mnt_));
  Unmount();
  const std::string dst = fresh(p.to, "piped");
  CliResult r = run_program("sh",
                            {"-c", std::string(SLUICE_BINARY) + " dump '" + meta_url_ + "' - | " +
                                       SLUICE_BINARY + " load '" + dst + "' -"},
                            dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  CliResult fsck = cli({"fsck", dst});
  EXPECT_EQ(fsck.code, 0) << fsck.out << fsck.err;
  const std::string m2 = path("m2");
  ASSERT_NO_FATAL_FAILURE(MountAt(dst, m2));
  expect_same_files(m2);
  UnmountAt(m2);
}

TEST_P(DumpLoad, TruncatedDumpLeavesACopyThatMountRefuses) {
  const EnginePair& p = GetParam();
  write_file(mnt_ + "/a", "a");
  Unmount();
  CliResult d = cli({"dump", meta_url_, path("vol.jsonl")});
  ASSERT_EQ(d.code, 0) << d.err;
  std::string text = read_file(path("vol.jsonl"));
  text.resize(text.rfind("{\"end\""));  // the trailer is lost
  write_file(path("cut.jsonl"), text);

  const std::string dst = fresh(p.to, "half");
  CliResult l = cli({"load", dst, path("cut.jsonl")});
  expect_one_line_error(l, "the dump is truncated");
  CliResult m = cli({"mount", dst, path("m2"), "--log", path("m2.log")});
  expect_one_line_error(m, "unfinished 'sluice load'");
  EXPECT_FALSE(is_mounted(path("m2")));
  expect_one_line_error(cli({"load", dst, path("vol.jsonl")}), "holds an unfinished load");
  // And a volume that is in use is never overwritten.
  expect_one_line_error(cli({"load", meta_url_, path("vol.jsonl")}), "is not empty");
}

INSTANTIATE_TEST_SUITE_P(Engines, DumpLoad, ::testing::ValuesIn(engine_pairs()),
                         [](const auto& info) {
                           return info.param.from.name + "_to_" + info.param.to.name;
                         });

TEST(DumpLoadErrors, OneLineErrors) {
  char tmpl[] = "/tmp/sluice-dl-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto cli = [&](const std::vector<std::string>& args) {
    return run_program(SLUICE_BINARY, args, dir);
  };
  expect_one_line_error(cli({"dump", "sqlite3://" + dir + "/none.db", dir + "/x.jsonl"}),
                        "none.db");
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.jsonl"));
  write_file(dir + "/bad.jsonl", "{\"sluice_dump\":9}\n");
  expect_one_line_error(cli({"load", "sqlite3://" + dir + "/new.db", dir + "/bad.jsonl"}),
                        "version 9 is not supported");
  expect_one_line_error(cli({"load", "sqlite3://" + dir + "/new.db", dir + "/missing.jsonl"}),
                        "cannot open");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::test
