// Test fixture for the meta layer: every test runs once per kv engine (mem:// with a
// unique name, sqlite3:// in a fresh temporary directory) on a freshly formatted volume.
//
// Use it as
//   class NamespaceTest : public sluice::meta::testing::MetaTest {};
//   SLUICE_META_ENGINES(NamespaceTest);
//   TEST_P(NamespaceTest, Something) { auto e = must(m().mkdir(root(), kRootIno, "d", 0755)); }
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "kv/engine.h"
#include "meta/meta.h"
#include "meta/types.h"

namespace sluice {
// gtest prints codes by name in failure messages.
inline void PrintTo(Code c, std::ostream* os) { *os << code_name(c); }
}  // namespace sluice

namespace sluice::meta::testing {

class MetaTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string url;
    if (GetParam() == "mem") {
      static std::atomic<int> seq{0};
      url = "mem://meta-test-" + std::to_string(getpid()) + "-" + std::to_string(seq++);
    } else {
      std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-meta-XXXXXX").string();
      ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
      dir_ = tmpl;
      // sync=normal: durability across power loss is not under test, speed is welcome.
      url = "sqlite3://" + (dir_ / "meta.db").string() + "?sync=normal";
    }
    auto eng = kv::open_engine(url, /*create=*/true);
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    engine_ = *eng;
    ASSERT_NO_FATAL_FAILURE(reformat([](Format&) {}));
  }

  void TearDown() override {
    meta_.reset();
    engine_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Rewrites the volume settings (format --force keeps the data) and reopens Meta.
  void reformat(const std::function<void(Format&)>& change) {
    Format f;
    f.name = "test";
    f.storage = "mem://x";
    change(f);
    Status st = Meta::format(*engine_, f, /*force=*/meta_ != nullptr);
    ASSERT_TRUE(st.ok()) << st.ToString();
    meta_.reset();
    auto m = Meta::open(engine_);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    meta_ = std::move(*m);
  }

  Meta& m() { return *meta_; }
  kv::Engine& engine() { return *engine_; }
  std::shared_ptr<kv::Engine> engine_ptr() { return engine_; }

 public:
  static Context root() { return Context::root(); }
  // A non-root caller; gid is its primary group, groups its supplementary ones.
  static Context user(uint32_t uid = 1000, uint32_t gid = 1000, std::vector<uint32_t> groups = {}) {
    Context c;
    c.uid = uid;
    c.gid = gid;
    c.gids = std::move(groups);
    return c;
  }

  // Unwraps a Result, failing the test (by exception, which gtest reports) on error.
  template <typename T>
  static T must(Result<T> r) {
    if (!r.ok()) throw std::runtime_error("unexpected error: " + r.status().ToString());
    return std::move(r).value();
  }
  static void must(const Status& st) {
    if (!st.ok()) throw std::runtime_error("unexpected error: " + st.ToString());
  }

 protected:
  // Shorthands that must succeed.
  Entry mkfile(Ino parent, std::string_view name, uint16_t mode = 0644,
               const Context& ctx = root()) {
    return must(m().mknod(ctx, parent, name, FileType::kRegular, mode, 0));
  }
  Entry mkdir(Ino parent, std::string_view name, uint16_t mode = 0755,
              const Context& ctx = root()) {
    return must(m().mkdir(ctx, parent, name, mode));
  }
  Attr attr(Ino ino) { return must(m().getattr(ino)); }
  // Whether a raw kv key exists (to check what an operation left behind).
  bool has_key(const std::string& key) {
    bool found = false;
    must(engine().read([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(auto v, txn.get(key));
      found = v.has_value();
      return Status::OK();
    }));
    return found;
  }
  Status chmod(Ino ino, uint16_t mode, const Context& ctx = root()) {
    SetAttr s;
    s.mask = kSetMode;
    s.mode = mode;
    return m().setattr(ctx, ino, s).status();
  }
  Status chown(Ino ino, uint32_t uid, uint32_t gid, const Context& ctx = root()) {
    SetAttr s;
    s.mask = kSetUid | kSetGid;
    s.uid = uid;
    s.gid = gid;
    return m().setattr(ctx, ino, s).status();
  }
  std::vector<std::string> names(Ino dir) {
    std::vector<std::string> out;
    for (auto& e : must(m().readdir(root(), dir, false))) out.push_back(e.name);
    return out;
  }

 private:
  std::filesystem::path dir_;
  std::shared_ptr<kv::Engine> engine_;
  std::unique_ptr<Meta> meta_;
};

// The status code of a Result or a Status, for EXPECT_EQ(code(...), Code::kX).
template <typename T>
Code code(const Result<T>& r) {
  return r.status().code();
}
inline Code code(const Status& s) { return s.code(); }

}  // namespace sluice::meta::testing

// Runs every TEST_P of `suite` on each engine.
#define SLUICE_META_ENGINES(suite)                                             \
  INSTANTIATE_TEST_SUITE_P(Engines, suite, ::testing::Values("mem", "sqlite"), \
                           [](const auto& info) { return info.param; })
