// sqlite3:// specifics: opening and creating files, URL options, busy handling, several
// engines and several processes on one file, durability across reopen.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "kv/engine.h"
#include "kv_test_util.h"

namespace sluice::kv {
namespace {

using testing::get_one;
using testing::increment;
using testing::put_one;
using testing::read_count;
using testing::TempDir;

class SqliteEngineTest : public ::testing::Test {
 protected:
  std::string db_path() const { return dir_.path() + "/meta.db"; }
  std::string url(const std::string& query = "") const {
    return "sqlite3://" + db_path() + (query.empty() ? "" : "?" + query);
  }
  std::shared_ptr<Engine> open(bool create, const std::string& query = "") {
    auto r = open_engine(url(query), create);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : nullptr;
  }

  TempDir dir_;
};

TEST_F(SqliteEngineTest, OpenMissingFileWithoutCreateIsNotFound) {
  auto r = open_engine(url(), false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_EQ(r.status().message(), "metadata database " + db_path() + " does not exist");
  EXPECT_FALSE(std::filesystem::exists(db_path()));  // no file was created as a side effect
}

TEST_F(SqliteEngineTest, CreateInMissingDirectoryNamesIt) {
  std::string dir = dir_.path() + "/no/such";
  auto r = open_engine("sqlite3://" + dir + "/meta.db", true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("directory " + dir + " does not exist"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
}

TEST_F(SqliteEngineTest, RejectsDirectoriesForeignFilesAndBadUrls) {
  auto dir = open_engine("sqlite3://" + dir_.path(), true);
  EXPECT_EQ(dir.status().code(), Code::kIsDir);

  std::ofstream(db_path()) << std::string(4096, 'x');
  auto garbage = open_engine(url(), false);
  EXPECT_EQ(garbage.status().code(), Code::kCorruption) << garbage.status().ToString();

  std::filesystem::remove(db_path());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE other(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto foreign = open_engine(url(), false);
  EXPECT_EQ(foreign.status().code(), Code::kInvalid);
  EXPECT_NE(foreign.status().message().find("no kv table"), std::string::npos);

  EXPECT_EQ(open_engine("sqlite3://", true).status().code(), Code::kInvalid);
  EXPECT_EQ(open_engine(url("sync=sometimes"), true).status().code(), Code::kInvalid);
  EXPECT_EQ(open_engine(url("busy_timeout_ms=soon"), true).status().code(), Code::kInvalid);
  auto unknown = open_engine(url("cache=big"), true);
  EXPECT_EQ(unknown.status().code(), Code::kInvalid);
  EXPECT_NE(unknown.status().message().find("busy_timeout_ms"), std::string::npos);
}

TEST_F(SqliteEngineTest, ReopenSeesCommittedData) {
  {
    auto e = open(true, "sync=normal&busy_timeout_ms=100");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->describe(), "sqlite3://" + db_path());
    ASSERT_TRUE(put_one(*e, "k", "v").ok());
    ASSERT_TRUE(put_one(*e, "gone", "v").ok());
    ASSERT_TRUE(e->transact([](Txn& t) { return t.del("gone"); }).ok());
  }
  auto e = open(false);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(get_one(*e, "k"), "v");
  EXPECT_EQ(get_one(*e, "gone"), std::nullopt);
  // create=true on an existing database keeps its contents.
  auto again = open(true);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(get_one(*again, "k"), "v");
}

TEST_F(SqliteEngineTest, BusyDatabaseIsAConflict) {
  auto e = open(true, "busy_timeout_ms=20");
  ASSERT_NE(e, nullptr);
  e->set_retry_options({.max_attempts = 3, .base_backoff_us = 100, .max_backoff_us = 1000});
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);

  Status st = put_one(*e, "k", "v");
  EXPECT_EQ(st.code(), Code::kConflict) << st.ToString();
  // Readers are not blocked by a writer in WAL mode.
  EXPECT_EQ(get_one(*e, "k"), std::nullopt);

  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_TRUE(put_one(*e, "k", "v").ok());
  EXPECT_EQ(get_one(*e, "k"), "v");
}

TEST_F(SqliteEngineTest, TwoEnginesOnOneFileCountExactly) {
  auto a = open(true);
  auto b = open(false);
  ASSERT_TRUE(a && b);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; i++) {
    threads.emplace_back([&, i] {
      Engine& e = i % 2 ? *a : *b;
      for (int j = 0; j < 100; j++) EXPECT_TRUE(increment(e, "n").ok());
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(read_count(*a, "n"), 400u);
  EXPECT_EQ(read_count(*b, "n"), 400u);
}

// A child process's work: its exit status, 0 when all n increments committed.
int count_in_child(const std::string& url, int n) {
  auto r = open_engine(url, false);
  if (!r.ok()) return 2;
  for (int j = 0; j < n; j++) {
    if (!increment(**r, "n").ok()) return 3;
  }
  return 0;
}

// The parent holds no connection to the file while children run: SQLite connections must
// not cross fork(), so each child opens its own engine.
TEST_F(SqliteEngineTest, TwoProcessesCountExactly) {
  constexpr int kProcs = 2, kPerProc = 200;
  ASSERT_NE(open(true), nullptr);
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; p++) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(count_in_child(url(), kPerProc));
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  auto e = open(false);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(read_count(*e, "n"), uint64_t{kProcs * kPerProc});
}

}  // namespace
}  // namespace sluice::kv
