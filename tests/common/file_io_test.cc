// pread_upto / pread_full: whole reads, reads past the end, offsets and errors.
#include "common/file_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace sluice {
namespace {

class FileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-fileio-XXXXXX";
    fd_ = mkstemp(tmpl);
    ASSERT_GE(fd_, 0);
    path_ = tmpl;
    for (int i = 0; i < 100000; i++) data_ += static_cast<char>('a' + i % 26);
    ASSERT_EQ(write(fd_, data_.data(), data_.size()), static_cast<ssize_t>(data_.size()));
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
    unlink(path_.c_str());
  }
  int fd_ = -1;
  std::string path_, data_;
};

TEST_F(FileIoTest, ReadsWhatIsAskedFromTheOffset) {
  std::string buf(5000, '\0');
  ASSERT_TRUE(pread_full(fd_, buf.data(), buf.size(), 777));
  EXPECT_EQ(buf, data_.substr(777, 5000));
  EXPECT_EQ(pread_upto(fd_, buf.data(), buf.size(), 90000), 5000);
  EXPECT_EQ(buf, data_.substr(90000, 5000));
}

TEST_F(FileIoTest, StopsAtTheEndOfTheFile) {
  std::string buf(5000, '\0');
  EXPECT_EQ(pread_upto(fd_, buf.data(), buf.size(), 98000), 2000);
  EXPECT_EQ(buf.substr(0, 2000), data_.substr(98000));
  EXPECT_EQ(pread_upto(fd_, buf.data(), buf.size(), 200000), 0);
  errno = 0;
  EXPECT_FALSE(pread_full(fd_, buf.data(), buf.size(), 98000));
  EXPECT_EQ(errno, EIO);
  EXPECT_TRUE(pread_full(fd_, buf.data(), 0, 200000));  // nothing asked, nothing missing
}

TEST_F(FileIoTest, ReportsErrors) {
  std::string buf(10, '\0');
  const int wr = open(path_.c_str(), O_WRONLY);
  ASSERT_GE(wr, 0);
  errno = 0;
  EXPECT_EQ(pread_upto(wr, buf.data(), buf.size(), 0), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_FALSE(pread_full(wr, buf.data(), buf.size(), 0));
  close(wr);
}

}  // namespace
}  // namespace sluice
