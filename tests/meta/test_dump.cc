// Tests of dump and load: a volume with every kind of inode survives a round trip through
// every pair of engines key for key, sessions are left out as closing them would, page
// boundaries do not matter, and malformed dumps fail clearly without leaving a volume
// that can be opened.
#include <fcntl.h>
#include <sys/sysmacros.h>

#include <sstream>

#include "meta/check.h"
#include "meta/dump.h"
#include "meta/dump_codec.h"
#include "meta/keys.h"
#include "meta_fixture.h"

namespace sluice::meta::testing {
namespace {

std::vector<kv::KeyValue> all_keys(kv::Engine& e) {
  std::vector<kv::KeyValue> out;
  Status st = e.read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(out, txn.scan("", ""));
    return Status::OK();
  });
  if (!st.ok()) throw std::runtime_error(st.ToString());
  return out;
}

// A readable difference between two key spaces ("" when equal).
std::string diff(const std::vector<kv::KeyValue>& a, const std::vector<kv::KeyValue>& b) {
  std::map<std::string, std::string> ma, mb;
  for (auto& kv : a) ma[kv.key] = kv.value;
  for (auto& kv : b) mb[kv.key] = kv.value;
  std::string out;
  auto show = [](const std::string& k) {
    std::string s;
    for (unsigned char c : k)
      s += (c >= 0x20 && c < 0x7f) ? std::string(1, char(c)) : "\\x" + std::to_string(c);
    return s;
  };
  for (auto& [k, v] : ma) {
    auto it = mb.find(k);
    if (it == mb.end())
      out += "only in source: " + show(k) + "\n";
    else if (it->second != v)
      out += "different value: " + show(k) + "\n";
  }
  for (auto& [k, v] : mb) {
    if (!ma.count(k)) out += "only in copy: " + show(k) + "\n";
  }
  return out;
}

class DumpTest : public MetaTest {
 protected:
  // A fresh, empty engine of the given kind ("mem" or "sqlite").
  std::shared_ptr<kv::Engine> fresh(const std::string& kind) {
    static std::atomic<int> seq{0};
    std::string url;
    if (kind == "mem") {
      url = "mem://dump-test-" + std::to_string(getpid()) + "-" + std::to_string(seq++);
    } else {
      std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-dump-XXXXXX").string();
      if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
      dirs_.push_back(tmpl);
      url = "sqlite3://" + tmpl + "/meta.db?sync=normal";
    }
    return must(kv::open_engine(url, true));
  }
  void TearDown() override {
    MetaTest::TearDown();
    for (auto& d : dirs_) std::filesystem::remove_all(d);
  }

  std::string dump(kv::Engine& e, DumpOptions opts = {}) {
    std::ostringstream out;
    must(dump_volume(e, out, opts));
    return out.str();
  }
  Result<DumpStats> load(kv::Engine& e, const std::string& text) {
    std::istringstream in(text);
    return load_volume(e, in, LoadOptions{7, 4u << 20, {}});  // small batches: many commits
  }

  uint64_t write(Ino ino, uint32_t index, uint32_t pos, uint32_t len) {
    uint64_t id = must(m().new_slice_id());
    must(m().write_slice(ino, index, Slice{pos, id, len, 0, len}, 1000 + pos));
    return id;
  }

  // Every kind of inode and record the schema has.
  void populate() {
    auto d = mkdir(kRootIno, "dir");
    auto tmp = mkdir(kRootIno, "tmp", 01777);  // sticky
    auto f = mkfile(d.ino, "model.bin", 0644);
    write(f.ino, 0, 0, 4096);
    write(f.ino, 0, 1000, 100);                                    // overlapping slice
    write(f.ino, 2, 5000, 10);                                     // chunk 1 is a hole
    must(m().write_slice(f.ino, 2, Slice{9000, 0, 0, 0, 50}, 7));  // explicit hole slice
    must(m().link(root(), f.ino, tmp.ino, "hardlink"));
    auto suid = mkfile(kRootIno, "suid", 04755);
    must(chown(suid.ino, 1000, 100));
    must(chmod(suid.ino, 04755));  // chown cleared suid
    must(m().symlink(root(), d.ino, "link", "model.bin"));
    must(m().mknod(root(), kRootIno, "fifo", FileType::kFifo, 0600, 0));
    must(m().mknod(root(), kRootIno, "null", FileType::kCharDev, 0666, makedev(1, 3)));
    must(m().mknod(root(), kRootIno, "sock", FileType::kSocket, 0755, 0));
    must(m().mknod(root(), kRootIno, "disk", FileType::kBlockDev, 0660, makedev(8, 1)));
    mkfile(kRootIno, std::string("latin1-\xe9t\xe9", 10));  // not UTF-8
    must(m().setxattr(root(), f.ino, "user.origin", "hub", 0));
    must(m().setxattr(root(), f.ino, "user.bin", std::string("\0\xff\x01", 3), 0));
    must(m().setxattr(root(), d.ino, std::string("user.\xff", 6), "", 0));
    // A removed file whose data awaits deletion (D key, chunks kept).
    auto gone = mkfile(kRootIno, "gone");
    write(gone.ino, 0, 0, 300);
    must(m().unlink(root(), kRootIno, "gone"));
    // A truncate that drops slices (L keys) and masks the rest with a hole.
    auto cut = mkfile(d.ino, "cut");
    write(cut.ino, 0, 0, 8192);
    write(cut.ino, 1, 0, 100);
    SetAttr s;
    s.mask = kSetSize;
    s.size = 4000;
    must(m().setattr(root(), cut.ino, s));
  }

  std::vector<std::string> dirs_;
};
SLUICE_META_ENGINES(DumpTest);

TEST_P(DumpTest, RoundTripThroughEveryEngineIsKeyForKey) {
  populate();
  const auto source = all_keys(engine());
  const std::string text = dump(engine());
  for (const char* kind : {"mem", "sqlite"}) {
    SCOPED_TRACE(kind);
    auto copy = fresh(kind);
    auto st = load(*copy, text);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    EXPECT_EQ(diff(source, all_keys(*copy)), "");
    // And on again, into the other kind.
    auto again = fresh(std::string(kind) == "mem" ? "sqlite" : "mem");
    ASSERT_TRUE(load(*again, dump(*copy)).ok());
    EXPECT_EQ(diff(source, all_keys(*again)), "");
    auto rep = must(check_volume(*again));
    EXPECT_TRUE(rep.problems.empty()) << rep.problems.front();
    auto m2 = must(Meta::open(again));
    EXPECT_EQ(
        must(m2->readlink(
            root(),
            must(m2->lookup(root(), must(m2->lookup(root(), kRootIno, "dir")).ino, "link")).ino)),
        "model.bin");
  }
}

TEST_P(DumpTest, RecordsAreReadable) {
  populate();
  const std::string text = dump(engine());
  EXPECT_NE(text.find(R"("type":"dir","mode":"1777")"), std::string::npos);
  EXPECT_NE(text.find(R"("mode":"4755","uid":1000,"gid":100)"), std::string::npos);
  EXPECT_NE(text.find(R"("name":"model.bin")"), std::string::npos);
  EXPECT_NE(text.find(R"("target":"model.bin")"), std::string::npos);
  EXPECT_NE(text.find(R"("name":"user.origin","value":"hub")"), std::string::npos);
  EXPECT_NE(text.find(R"("value":{"base64":"AP8B"})"), std::string::npos);
  EXPECT_NE(text.find(R"({"deleted":)"), std::string::npos);
  EXPECT_NE(text.find(R"({"dropped":)"), std::string::npos);
  EXPECT_EQ(text.rfind(R"({"sluice_dump":1,"volume":{)", 0), 0u);
}

TEST_P(DumpTest, PageBoundariesAndPagedReadsGiveTheSameDump) {
  populate();
  for (int i = 0; i < 30; i++) write(mkfile(kRootIno, "f" + std::to_string(i)).ino, 0, 0, 10);
  auto body = [](const std::string& t) { return t.substr(t.find('\n')); };  // no header
  const std::string whole = dump(engine());
  for (size_t page : {1, 2, 3, 7}) {
    DumpOptions o;
    o.page = page;
    EXPECT_EQ(body(dump(engine(), o)), body(whole)) << "page " << page;
    o.snapshot = false;
    EXPECT_EQ(body(dump(engine(), o)), body(whole)) << "paged, page " << page;
  }
}

TEST_P(DumpTest, SessionsAreLeftOutAsClosingThemWould) {
  populate();
  must(m().new_session(SessionInfo{}));
  auto f = mkfile(kRootIno, "open-unlinked");
  write(f.ino, 0, 0, 5000);
  must(m().setxattr(root(), f.ino, "user.x", "y", 0));
  must(m().open(root(), f.ino, O_RDONLY));
  must(m().unlink(root(), kRootIno, "open-unlinked"));
  auto locked = mkfile(kRootIno, "locked");
  must(m().flock(locked.ino, 42, F_WRLCK));
  ASSERT_TRUE(has_key(keys::flocks(locked.ino)));

  auto copy = fresh("mem");
  ASSERT_TRUE(load(*copy, dump(engine())).ok());
  must(m().close_session());  // the source now looks as the dump described it
  EXPECT_EQ(diff(all_keys(engine()), all_keys(*copy)), "");
  auto rep = must(check_volume(*copy));
  EXPECT_TRUE(rep.problems.empty()) << rep.problems.front();
}

// The dump with one line replaced (n counts from 0; "" drops the line).
std::string edit_line(const std::string& text, size_t n, const std::string& with) {
  std::istringstream in(text);
  std::string out, l;
  for (size_t i = 0; std::getline(in, l); i++) {
    if (i != n)
      out += l + "\n";
    else if (!with.empty())
      out += with + "\n";
  }
  return out;
}

TEST_P(DumpTest, MalformedDumpsFailClearlyAndLeaveNoUsableVolume) {
  populate();
  const std::string text = dump(engine());
  const size_t lines = std::count(text.begin(), text.end(), '\n');
  const std::string inode_line =
      R"({"inode":99,"type":"file","mode":"0644","uid":0,"gid":0,"nlink":1,"size":0,"rdev":0,"atime":0,"mtime":0,"ctime":0,"parent":0)";
  struct Case {
    std::string name, input, message;
  };
  std::vector<Case> cases = {
      {"empty", "", "the dump is empty"},
      {"not json", "hello\n", "dump line 1: not JSON"},
      {"not a dump", "{\"a\":1}\n", "not a Sluice dump"},
      {"newer version", edit_line(text, 0, R"({"sluice_dump":2})"), "version 2 is not supported"},
      {"no trailer", edit_line(text, lines - 1, ""), "the dump is truncated"},
      {"cut mid-line", text.substr(0, text.find('\n', text.size() / 2) - 5), "not JSON"},
      {"lost record", edit_line(text, 2, ""), "records but"},
      {"unknown field", edit_line(text, 3, inode_line + R"(,"colour":"red"})"),
       "dump line 4: inode record: unknown field 'colour'"},
      {"bad type", edit_line(text, 3, R"({"dir":1,"name":"x","ino":5,"type":"pipe"})"),
       "field 'type' must be one of"},
      {"bad name", edit_line(text, 3, R"({"dir":1,"name":"a/b","ino":5,"type":"file"})"),
       "bad name"},
      {"unknown record", edit_line(text, 3, R"({"quota":1})"), "unknown record"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto target = fresh("mem");
    auto r = load(*target, c.input);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalid) << r.status().ToString();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
    auto opened = Meta::open(target);
    EXPECT_FALSE(opened.ok()) << "a failed load left a volume that opens";
  }
  // A failed load that got past the header says so, and mount (Meta::open) refuses it.
  auto target = fresh("sqlite");
  auto r = load(*target, edit_line(text, lines - 1, ""));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("incomplete volume"), std::string::npos);
  auto opened = Meta::open(target);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("unfinished 'sluice load'"), std::string::npos);
  // ... and so does load, which wants an empty database.
  EXPECT_EQ(load(*target, text).status().code(), Code::kExists);

  auto full = fresh("mem");
  r = load(*full, text + "{\"inode\":1}\n");
  EXPECT_NE(r.status().message().find("data after the end record"), std::string::npos);
}

TEST_P(DumpTest, LoadRefusesANonEmptyEngineAndLeavesItAlone) {
  populate();
  const auto before = all_keys(engine());
  auto r = load(engine(), dump(engine()));
  ASSERT_EQ(r.status().code(), Code::kExists);
  EXPECT_NE(r.status().message().find("is not empty"), std::string::npos);
  EXPECT_EQ(diff(before, all_keys(engine())), "");
}

TEST_P(DumpTest, DumpRefusesToLeaveOutAKeyItDoesNotKnow) {
  must(engine().transact([](kv::Txn& txn) { return txn.put("Qfuture", "x"); }));
  std::ostringstream out;
  auto r = dump_volume(engine(), out, {});
  ASSERT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find("Qfuture"), std::string::npos);
}

TEST_P(DumpTest, DumpRefusesAnUnformattedEngine) {
  auto empty = fresh(GetParam());
  std::ostringstream out;
  EXPECT_EQ(dump_volume(*empty, out, {}).status().code(), Code::kInvalid);
}

TEST(DumpCodec, Base64AndUtf8) {
  for (std::string s : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("\0\xff\x10\x80", 4)}) {
    EXPECT_EQ(dump::base64_decode(dump::base64_encode(s)), s);
  }
  EXPECT_EQ(dump::base64_encode("foob"), "Zm9vYg==");
  EXPECT_FALSE(dump::base64_decode("Zm9=Yg=="));
  EXPECT_FALSE(dump::base64_decode("Zm9"));
  EXPECT_TRUE(dump::valid_utf8("plain \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  EXPECT_FALSE(dump::valid_utf8("\xe9t\xe9"));
  EXPECT_FALSE(dump::valid_utf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(dump::valid_utf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(dump::valid_utf8("\xe2\x82"));      // truncated
}

}  // namespace
}  // namespace sluice::meta::testing
