// Observability and warmup on a real mount: --metrics serves Prometheus text whose
// counters move with the traffic, `sluice stats` reads the same counters over the control
// socket, and `sluice warmup` fills, checks and evicts the mount's cache.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

// GET http://127.0.0.1:port/path; the whole response (headers and body).
std::string http_get(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: x\r\n\r\n";
  (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// The value of a sample line "name value" in Prometheus text; -1 when absent.
double sample(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

class Observe : public MountFixture {
 protected:
  void SetUp() override {
    port_ = sluice::testing::free_loopback_port();
    MountFixture::SetUp();
  }
  std::vector<std::string> MountOptions() const override {
    return {"--metrics", "127.0.0.1:" + std::to_string(port_)};
  }
  int port_ = 0;
};

TEST_F(Observe, MetricsAndStatsCountTheTraffic) {
  const std::string data(3 << 20, 'x');
  write_file(mnt_ + "/f", data);
  ASSERT_EQ(read_file(mnt_ + "/f").size(), data.size());

  std::string resp = http_get(port_, "/metrics");
  ASSERT_NE(resp.find("200 OK"), std::string::npos) << resp;
  EXPECT_NE(resp.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(resp.find("# TYPE sluice_write_bytes_total counter"), std::string::npos);
  EXPECT_GE(sample(resp, "sluice_write_bytes_total"), static_cast<double>(data.size()));
  EXPECT_GE(sample(resp, "sluice_object_put_bytes_total"), static_cast<double>(data.size()));
  EXPECT_GT(sample(resp, "sluice_meta_txn_total{kind=\"write\"}"), 0);
  EXPECT_GT(sample(resp, "sluice_process_resident_bytes"), 0);
  EXPECT_NE(http_get(port_, "/nosuch").find("404"), std::string::npos);

  CliResult js = cli({"stats", "--json", mnt_});
  ASSERT_EQ(js.code, 0) << js.err;
  auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["volume"], kVolume);
  EXPECT_GE(j["samples"]["sluice_write_bytes_total"].get<double>(), data.size());

  // A path inside the mount finds it too; the live view prints its rows and exits.
  CliResult live = cli({"stats", mnt_ + "/f", "--interval", "0.2", "--count", "2"});
  ASSERT_EQ(live.code, 0) << live.err;
  std::istringstream rows(live.out);
  int lines = 0;
  for (std::string l; std::getline(rows, l);) lines++;
  EXPECT_EQ(lines, 4) << live.out;  // two header lines, two rows
}

TEST_F(Observe, WarmupFillsChecksAndEvicts) {
  ASSERT_EQ(mkdir((mnt_ + "/model").c_str(), 0755), 0);
  for (int i = 0; i < 3; i++) write_file(mnt_ + "/model/shard" + std::to_string(i), std::string(5 << 20, 'a' + i));
  Unmount();
  Mount(MountOptions());  // a fresh mount: nothing cached

  CliResult c0 = cli({"warmup", "--check", mnt_ + "/model"});
  ASSERT_EQ(c0.code, 0) << c0.err;
  EXPECT_NE(c0.out.find("(0.0%) in 3 files"), std::string::npos) << c0.out;

  CliResult w = cli({"warmup", "-p", "4", mnt_ + "/model"});
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_NE(w.out.find("warmed up 3 files, 15 MiB"), std::string::npos) << w.out;
  EXPECT_NE(w.out.find("0 errors"), std::string::npos) << w.out;
  double gets = sample(http_get(port_, "/metrics"), "sluice_object_get_total");

  CliResult c1 = cli({"warmup", "--check", mnt_ + "/model"});
  EXPECT_NE(c1.out.find("15 MiB of 15 MiB cached (100.0%)"), std::string::npos) << c1.out;
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(read_file(mnt_ + "/model/shard" + std::to_string(i)), std::string(5 << 20, 'a' + i));
  }
  // Every block came from the cache that warmup filled.
  EXPECT_EQ(sample(http_get(port_, "/metrics"), "sluice_object_get_total"), gets);

  CliResult e = cli({"warmup", "--evict", mnt_ + "/model/shard1"});
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("evicted 1 files"), std::string::npos) << e.out;
  CliResult c2 = cli({"warmup", "--check", mnt_ + "/model"});
  EXPECT_NE(c2.out.find("10 MiB of 15 MiB cached"), std::string::npos) << c2.out;
}

TEST_F(Observe, CommandsOutsideAMountFailWithOneLine) {
  expect_one_line_error(cli({"warmup", dir_}), "is not inside a Sluice mount");
  expect_one_line_error(cli({"stats", dir_}), "is not inside a Sluice mount");
  expect_one_line_error(cli({"warmup", mnt_ + "/nosuch"}), "cannot access");
  expect_one_line_error(cli({"warmup", "--check", "--evict", mnt_}), "exclude each other");
}

TEST_F(Observe, MetricsPortInUseFailsTheMount) {
  std::string other = path("other");
  mkdir(other.c_str(), 0755);
  CliResult r = cli({"mount", meta_url_, other, "--metrics", "127.0.0.1:" + std::to_string(port_),
           "--log", path("other.log")});
  if (is_mounted(other)) extra_mounts_.push_back(other);  // TearDown unmounts a failure
  expect_one_line_error(r, "cannot serve metrics on 127.0.0.1:" + std::to_string(port_));
  EXPECT_FALSE(is_mounted(other));
}

}  // namespace
}  // namespace sluice::test
