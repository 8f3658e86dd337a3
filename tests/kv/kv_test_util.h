// Helpers shared by the kv tests: a scratch directory, one-key transactions and counters.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "kv/engine.h"

namespace sluice::kv::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-kv-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed for " << tmpl;
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline Status put_one(Engine& e, const std::string& k, const std::string& v) {
  return e.transact([&](Txn& t) { return t.put(k, v); });
}

// The committed value of k (nullopt when missing); a failed read fails the test.
inline std::optional<std::string> get_one(Engine& e, const std::string& k) {
  std::optional<std::string> out;
  Status st = e.read([&](Txn& t) -> Status {
    ASSIGN_OR_RETURN(out, t.get(k));
    return Status::OK();
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

inline uint64_t parse_count(const std::optional<std::string>& v) { return v ? std::stoull(*v) : 0; }

// Adds one to the decimal counter stored at k, in one transaction.
inline Status increment(Engine& e, const std::string& k) {
  return e.transact([&](Txn& t) -> Status {
    ASSIGN_OR_RETURN(auto v, t.get(k));
    return t.put(k, std::to_string(parse_count(v) + 1));
  });
}

inline uint64_t read_count(Engine& e, const std::string& k) { return parse_count(get_one(e, k)); }

}  // namespace sluice::kv::testing
