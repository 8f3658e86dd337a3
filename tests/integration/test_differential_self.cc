// Checks the differential tester itself: two local directories must agree, and a
// tampered subject must be caught (so a passing run on a mount means something).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "differential.h"

namespace sluice::testing {
namespace {

std::string make_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / (name + "." + std::to_string(getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

TEST(DifferentialSelfTest, TwoLocalDirectoriesAgree) {
  auto a = make_dir("diff-ref"), b = make_dir("diff-sub");
  auto res = run_differential(a, b, DiffOptions{.seed = 7, .steps = 200});
  EXPECT_TRUE(res.ok) << res.failure;
  EXPECT_EQ(res.steps_run, 200);
  std::filesystem::remove_all(a);
  std::filesystem::remove_all(b);
}

TEST(DifferentialSelfTest, DetectsADivergentSubject) {
  auto a = make_dir("diff-ref2"), b = make_dir("diff-sub2");
  // A stray file on one side only must be reported at the first step.
  int fd = ::open((b + "/stray").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto res = run_differential(a, b, DiffOptions{.seed = 7, .steps = 10});
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.failure.find("stray"), std::string::npos) << res.failure;
  std::filesystem::remove_all(a);
  std::filesystem::remove_all(b);
}

}  // namespace
}  // namespace sluice::testing
