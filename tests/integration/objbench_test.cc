// sluice objbench against file://: every operation is reported (as a table and as JSON),
// nothing is left in the store afterwards, and a bad URL is a one-line error.
#include <nlohmann/json.hpp>
#include <set>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

class Objbench : public TempDirTest {
 protected:
  std::vector<std::string> args(const std::vector<std::string>& extra) {
    std::vector<std::string> a = {"objbench", "file://" + path("objects"), "--count", "6",
                                  "--block-size", "256K", "--small-size", "4K", "--threads",
                                  "3"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // Regular files left under the store's directory.
  size_t files_left() {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(path("objects"), ec)) {
      if (e.is_regular_file()) n++;
    }
    return n;
  }
};

TEST_F(Objbench, PrintsEveryOperationAndCleansUp) {
  CliResult r = cli(args({}));
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* op : {"put", "get", "head", "list", "delete"}) {
    bool found = false;
    std::istringstream lines(r.out);
    for (std::string l; std::getline(lines, l);) found = found || l.rfind(op, 0) == 0;
    EXPECT_TRUE(found) << "no row for " << op << " in:\n" << r.out;
  }
  EXPECT_NE(r.out.find("256 KiB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("__sluice_objbench_"), std::string::npos) << r.out;
  EXPECT_EQ(files_left(), 0u);
}

TEST_F(Objbench, JsonHasARowPerPhase) {
  CliResult r = cli(args({"--json"}));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  std::multiset<std::string> ops;
  for (const auto& row : j["results"]) {
    ops.insert(row["operation"].get<std::string>());
    EXPECT_GT(row["ops_per_s"].get<double>(), 0) << row.dump();
    EXPECT_LE(row["p50_ms"].get<double>(), row["p99_ms"].get<double>()) << row.dump();
  }
  EXPECT_EQ(ops, (std::multiset<std::string>{"put", "put", "get", "get", "head", "list",
                                             "delete"}));
  EXPECT_EQ(j["results"][0]["objects"].get<int>(), 6);
  EXPECT_EQ(files_left(), 0u);
}

TEST_F(Objbench, BadUrlIsOneLineError) {
  expect_one_line_error(cli({"objbench", "nosuch://x"}), "unsupported storage URL scheme");
  expect_one_line_error(cli({"objbench", "file://" + path("o"), "--block-size", "lots"}),
                        "--block-size");
}

TEST_F(Objbench, UnusableStoreIsOneLineError) {
  write_file(path("plain"), "not a directory");
  expect_one_line_error(cli({"objbench", "file://" + path("plain"), "--count", "2"}),
                        "is not a directory");
}

}  // namespace
}  // namespace sluice::test
