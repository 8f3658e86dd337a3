// The read path under a misbehaving store: a block whose body arrives damaged is fetched
// again (up to three times) before the read fails, and a vfs over the mount's retrying
// store stack returns exactly the data written despite injected errors and truncations.
#include "object/fault_store.h"
#include "object/retry_store.h"
#include "vfs_fixture.h"

namespace sluice::vfs::testing {
namespace {

// Returns the first `bad` gets cut in half.
class TruncateFirstGets : public object::StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override {
    auto r = StoreWrapper::get(key, off, len);
    gets++;
    if (r.ok() && bad.fetch_sub(1) > 0) r->resize(r->size() / 2);
    return r;
  }
  std::atomic<int> bad{0};
  std::atomic<int> gets{0};
};

class StoreFaultsTest : public VfsTest {
 protected:
  Ino write_file(const std::string& name, const std::string& data) {
    auto [ino, fh] = create(name);
    EXPECT_TRUE(write(*vfs_, ino, fh, 0, data));
    EXPECT_OK(vfs_->release(ino, fh));
    return ino;
  }
  std::string read_with(Vfs& v, Ino ino, size_t len) {
    auto h = v.open(ctx_, ino, O_RDONLY);
    EXPECT_OK(h);
    if (!h.ok()) return "<open failed>";
    std::string s = read(v, ino, *h, 0, len);
    EXPECT_OK(v.release(ino, *h));
    return s;
  }
};

TEST_F(StoreFaultsTest, DamagedBodyIsFetchedAgain) {
  const std::string data = pattern(kBlock, 3);
  Ino ino = write_file("f", data);
  auto flaky = std::make_shared<TruncateFirstGets>(store_);
  flaky->bad = 2;
  auto client = mount(test_options(), flaky);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(read_with(*client, ino, data.size()), data);
  EXPECT_EQ(flaky->gets.load(), 3);
  EXPECT_EQ(client->stats().object_errors.load(), 2u);
  EXPECT_OK(client->stop());
}

TEST_F(StoreFaultsTest, PersistentDamageIsEioAfterThreeFetches) {
  Ino ino = write_file("f", pattern(kBlock, 4));
  auto flaky = std::make_shared<TruncateFirstGets>(store_);
  flaky->bad = 3;
  auto client = mount(test_options(), flaky);
  ASSERT_NE(client, nullptr);
  auto h = client->open(ctx_, ino, O_RDONLY);
  ASSERT_OK(h);
  std::string buf(100, '\0');
  auto r = client->read(ctx_, ino, *h, 0, buf.data(), buf.size());
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_EQ(flaky->gets.load(), 3);
  EXPECT_OK(client->release(ino, *h));
  EXPECT_OK(client->stop());
}

TEST_F(StoreFaultsTest, RetryingStackReturnsExactData) {
  auto spec = object::FaultSpec::parse("error_rate=0.2,truncate_rate=0.1,seed=9");
  ASSERT_OK(spec);
  auto faults = std::make_shared<object::FaultStore>(store_, *spec);
  object::RetryOptions ro;
  ro.initial_backoff_ns = 100'000;
  ro.max_backoff_ns = 1'000'000;
  auto client = mount(test_options(), std::make_shared<object::RetryStore>(faults, ro));
  ASSERT_NE(client, nullptr);
  const std::string data = pattern(16 * kBlock + 123, 5);
  auto [ino, fh] = create(*client, "f");
  ASSERT_TRUE(write(*client, ino, fh, 0, data));
  ASSERT_OK(client->release(ino, fh));
  auto reader = mount(test_options(), std::make_shared<object::RetryStore>(faults, ro));
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(read_with(*reader, ino, data.size() + 10), data);
  EXPECT_GT(faults->injected_errors(), 0u);
  EXPECT_GT(faults->truncations(), 0u);
  EXPECT_OK(reader->stop());
  EXPECT_OK(client->stop());
}

}  // namespace
}  // namespace sluice::vfs::testing
