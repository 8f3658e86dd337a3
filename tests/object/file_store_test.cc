// file:// specifics beyond the conformance suite: on-disk layout, temp files left by a
// crash, directory handling, URL options and errors from the local file system.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "object/store.h"
#include "temp_dir.h"

namespace sluice::object {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

class FileStoreTest : public ::testing::Test {
 protected:
  std::shared_ptr<Store> open(const std::string& query = "") {
    auto s = open_store("file://" + root() + query);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : nullptr;
  }
  std::string root() const { return dir_.path() + "/objects"; }

  testing::TempDir dir_;
};

TEST_F(FileStoreTest, ObjectIsAPlainFileAtItsKeyPath) {
  auto store = open();
  ASSERT_TRUE(store->put("vol/chunks/0/1/1234_0_5", "hello").ok());
  EXPECT_EQ(read_file(root() + "/vol/chunks/0/1/1234_0_5"), "hello");
  EXPECT_EQ(store->describe(), "file://" + root());
}

TEST_F(FileStoreTest, DirectoryIsCreatedOnFirstPut) {
  auto store = open("?fsync=true");
  EXPECT_FALSE(fs::exists(root()));
  auto l = store->list("");
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->empty());
  EXPECT_EQ(store->get("k").status().code(), Code::kNotFound);
  ASSERT_TRUE(store->put("k", "v").ok());
  EXPECT_TRUE(fs::is_directory(root()));
  EXPECT_EQ(*store->get("k"), "v");
}

TEST_F(FileStoreTest, PutLeavesNoTempFiles) {
  auto store = open();
  for (int i = 0; i < 20; i++) ASSERT_TRUE(store->put("d/" + std::to_string(i), "x").ok());
  for (const auto& e : fs::recursive_directory_iterator(root())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST_F(FileStoreTest, LeftoverTempFilesFromACrashAreIgnored) {
  auto store = open();
  ASSERT_TRUE(store->put("d/obj", "complete").ok());
  // What a crash between create and rename leaves behind.
  write_file(root() + "/d/.obj.tmp.0123456789abcdef", "partial");
  write_file(root() + "/.orphan.tmp.fedcba9876543210", "partial");
  auto l = store->list("");
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].key, "d/obj");
  EXPECT_EQ(*store->get("d/obj"), "complete");
  // Names a temp file could have are not keys.
  EXPECT_EQ(store->put("d/.obj.tmp.0123456789abcdef", "x").code(), Code::kInvalid);
  EXPECT_EQ(store->get(".orphan.tmp.fedcba9876543210").status().code(), Code::kInvalid);
  // Names that merely resemble one are.
  ASSERT_TRUE(store->put("d/.obj.tmp.notrandom", "y").ok());
  EXPECT_EQ(store->list("d/")->size(), 2u);
}

TEST_F(FileStoreTest, DeleteRemovesEmptiedDirectoriesButNotTheRoot) {
  auto store = open();
  ASSERT_TRUE(store->put("p/q/r/obj", "x").ok());
  ASSERT_TRUE(store->put("p/keep", "x").ok());
  ASSERT_TRUE(store->del("p/q/r/obj").ok());
  EXPECT_FALSE(fs::exists(root() + "/p/q"));
  EXPECT_TRUE(fs::exists(root() + "/p/keep"));
  ASSERT_TRUE(store->del("p/keep").ok());
  EXPECT_FALSE(fs::exists(root() + "/p"));
  EXPECT_TRUE(fs::is_directory(root()));
}

TEST_F(FileStoreTest, KeyCannotAlsoBeADirectory) {
  auto store = open();
  ASSERT_TRUE(store->put("a", "x").ok());
  EXPECT_EQ(store->put("a/b", "y").code(), Code::kNotDir);
  ASSERT_TRUE(store->put("c/d", "x").ok());
  EXPECT_EQ(store->put("c", "y").code(), Code::kIsDir);
  // A directory is not an object: missing for reads, nothing to delete.
  EXPECT_EQ(store->get("c").status().code(), Code::kNotFound);
  EXPECT_EQ(store->head("c").status().code(), Code::kNotFound);
  EXPECT_TRUE(store->del("c").ok());
  EXPECT_EQ(*store->get("c/d"), "x");
}

TEST_F(FileStoreTest, SymlinksAndOtherFilesAreNotListed) {
  auto store = open();
  ASSERT_TRUE(store->put("real", "x").ok());
  fs::create_symlink(root() + "/real", root() + "/link");
  ASSERT_EQ(::mkfifo((root() + "/fifo").c_str(), 0644), 0);
  auto l = store->list("");
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].key, "real");
}

TEST_F(FileStoreTest, OpenRejectsARegularFileAsDirectory) {
  write_file(root(), "not a dir");
  auto s = open_store("file://" + root());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kNotDir);
  EXPECT_NE(s.status().message().find(root()), std::string::npos) << s.status().ToString();
  // A path through a regular file fails the same way.
  auto below = open_store("file://" + root() + "/sub");
  ASSERT_FALSE(below.ok());
  EXPECT_EQ(below.status().code(), Code::kNotDir);
}

TEST_F(FileStoreTest, OpenValidatesTheUrl) {
  EXPECT_EQ(open_store("file://").status().code(), Code::kInvalid);
  EXPECT_EQ(open_store("file://" + root() + "?fsync=maybe").status().code(), Code::kInvalid);
  auto trailing = open_store("file://" + root() + "//");
  ASSERT_TRUE(trailing.ok());
  EXPECT_EQ((*trailing)->describe(), "file://" + root());
}

TEST_F(FileStoreTest, UnwritableDirectoryIsAnAccessErrorNamingThePath) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores permission bits";
  auto store = open();
  ASSERT_TRUE(store->put("sub/a", "x").ok());
  ASSERT_EQ(::chmod((root() + "/sub").c_str(), 0555), 0);
  Status st = store->put("sub/b", "y");
  EXPECT_EQ(st.code(), Code::kAccess);
  EXPECT_NE(st.message().find(root() + "/sub"), std::string::npos) << st.ToString();
  EXPECT_EQ(*store->get("sub/a"), "x");
  ::chmod((root() + "/sub").c_str(), 0755);  // so that the temp dir can be removed
}

TEST_F(FileStoreTest, PutThroughAFileIsAnErrorNamingThePath) {
  // Works as root too, unlike permission bits.
  auto store = open();
  ASSERT_TRUE(store->put("blocker", "x").ok());
  Status st = store->put("blocker/inner/obj", "y");
  EXPECT_EQ(st.code(), Code::kNotDir);
  EXPECT_NE(st.message().find(root() + "/blocker"), std::string::npos) << st.ToString();
  EXPECT_TRUE(store->list("")->size() == 1);
}

}  // namespace
}  // namespace sluice::object
