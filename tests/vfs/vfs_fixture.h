// Test fixture for the vfs layer: a Vfs over real meta on a fresh mem:// kv engine and a
// fresh mem:// object store, with 64 KiB blocks so multi-block files stay small.
// Further clients of the same volume come from mount(); a store decorator can be slid
// under a client to inject faults.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "kv/engine.h"
#include "meta/meta.h"
#include "object/store.h"
#include "vfs/vfs.h"

namespace sluice {
// gtest prints codes by name in failure messages.
inline void PrintTo(Code c, std::ostream* os) { *os << code_name(c); }
}  // namespace sluice

namespace sluice::vfs::testing {

inline const Status& status_of(const Status& s) { return s; }
template <typename T>
const Status& status_of(const Result<T>& r) {
  return r.status();
}

#define ASSERT_OK(expr)                                                       \
  do {                                                                        \
    const auto& _r = (expr);                                                  \
    ASSERT_TRUE(_r.ok()) << ::sluice::vfs::testing::status_of(_r).ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                                       \
  do {                                                                        \
    const auto& _r = (expr);                                                  \
    EXPECT_TRUE(_r.ok()) << ::sluice::vfs::testing::status_of(_r).ToString(); \
  } while (0)

constexpr uint32_t kBlock = 64 << 10;
constexpr uint64_t kChunk = meta::kChunkSize;

inline std::string unique_url(const char* kind) {
  static std::atomic<int> seq{0};
  return std::string("mem://vfs-") + kind + "-" + std::to_string(getpid()) + "-" +
         std::to_string(seq++);
}

// Deterministic bytes that differ by offset and seed, so misplaced data shows.
inline std::string pattern(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

inline VfsOptions test_options() {
  VfsOptions o;
  o.memory_cache_size = 64 << 20;
  o.upload_threads = 4;
  o.download_threads = 4;
  o.background_jobs = false;
  return o;
}

class VfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto eng = kv::open_engine(unique_url("meta"), /*create=*/true);
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    engine_ = *eng;
    auto st = object::open_store(unique_url("data"));
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = *st;
    meta::Format fmt;
    fmt.name = "vol";
    fmt.uuid = "00000000-0000-0000-0000-000000000001";
    fmt.storage = "mem://";
    fmt.block_size = kBlock;
    adjust_format(fmt);
    ASSERT_OK(meta::Meta::format(*engine_, fmt, false));
    vfs_ = mount();
    ASSERT_NE(vfs_, nullptr);
  }

  // Subclasses change the volume's settings here.
  virtual void adjust_format(meta::Format& fmt) {}

  void TearDown() override {
    if (vfs_) EXPECT_OK(vfs_->stop());
  }

  // A new client of the volume (own Meta and session), over `store` if given.
  std::unique_ptr<Vfs> mount(VfsOptions opts = test_options(),
                             std::shared_ptr<object::Store> store = nullptr) {
    auto m = meta::Meta::open(engine_);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    if (!m.ok()) return nullptr;
    auto v = std::make_unique<Vfs>(std::shared_ptr<meta::Meta>(std::move(m).value()),
                                   store ? store : store_, opts);
    meta::SessionInfo info;
    info.hostname = "test";
    Status s = v->start(info);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return s.ok() ? std::move(v) : nullptr;
  }

  // Creates /name for reading and writing; returns {ino, fh}.
  std::pair<Ino, uint64_t> create(Vfs& v, const std::string& name, int flags = O_RDWR) {
    auto r = v.create(ctx_, meta::kRootIno, name, 0644, flags);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::make_pair(r->first.ino, r->second) : std::make_pair(Ino{0}, uint64_t{0});
  }
  std::pair<Ino, uint64_t> create(const std::string& name) { return create(*vfs_, name); }

  Ino lookup(Vfs& v, const std::string& name) {
    auto e = v.lookup(ctx_, meta::kRootIno, name);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? e->ino : 0;
  }

  ::testing::AssertionResult write(Vfs& v, Ino ino, uint64_t fh, uint64_t off,
                                   const std::string& data) {
    auto n = v.write(ctx_, ino, fh, off, data.data(), data.size());
    if (!n.ok()) return ::testing::AssertionFailure() << n.status().ToString();
    if (*n != data.size()) return ::testing::AssertionFailure() << "short write " << *n;
    return ::testing::AssertionSuccess();
  }

  // Reads up to len bytes at off; a failed read is reported as "<error: ...>".
  std::string read(Vfs& v, Ino ino, uint64_t fh, uint64_t off, size_t len) {
    std::string buf(len, '\xAA');
    auto n = v.read(ctx_, ino, fh, off, buf.data(), len);
    if (!n.ok()) return "<error: " + n.status().ToString() + ">";
    buf.resize(*n);
    return buf;
  }

  std::vector<std::string> object_keys() {
    auto l = store_->list("vol/chunks/");
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    std::vector<std::string> keys;
    if (l.ok()) {
      for (const auto& o : *l) keys.push_back(o.key);
    }
    return keys;
  }

  meta::Context ctx_ = meta::Context::root();
  std::shared_ptr<kv::Engine> engine_;
  std::shared_ptr<object::Store> store_;
  std::unique_ptr<Vfs> vfs_;
};

}  // namespace sluice::vfs::testing
