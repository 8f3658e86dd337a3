// lock.cc: flock and fcntl record locks between owners and between sessions (two Meta
// instances on one engine), range splitting and merging, getlk reporting, and a random
// sequence checked against a per-byte model of who holds what.
#include <fcntl.h>

#include <array>
#include <random>

#include "meta/keys.h"
#include "meta_fixture.h"

namespace sluice::meta {
namespace {

using testing::code;

constexpr uint64_t kEof = UINT64_MAX;

LockRange range(uint32_t type, uint64_t start, uint64_t end, uint32_t pid = 0) {
  return LockRange{type, start, end, pid};
}

class LockTest : public testing::MetaTest {
 protected:
  void SetUp() override {
    testing::MetaTest::SetUp();
    must(m().new_session(SessionInfo{}));
  }
  std::unique_ptr<Meta> other_client() {
    auto c = must(Meta::open(engine_ptr()));
    must(c->new_session(SessionInfo{}));
    return c;
  }
  // What getlk reports to `owner` asking for a write lock on [start, end].
  LockRange probe(Ino ino, uint64_t owner, uint64_t start, uint64_t end) {
    return must(m().getlk(ino, owner, range(F_WRLCK, start, end)));
  }
};
SLUICE_META_ENGINES(LockTest);

void expect_range(const LockRange& got, uint32_t type, uint64_t start, uint64_t end, uint32_t pid) {
  EXPECT_EQ(got.type, type);
  EXPECT_EQ(got.start, start);
  EXPECT_EQ(got.end, end);
  EXPECT_EQ(got.pid, pid);
}

TEST_P(LockTest, FlockSharedAndExclusive) {
  Ino f = mkfile(kRootIno, "f").ino;
  must(m().flock(f, 1, F_RDLCK));
  must(m().flock(f, 2, F_RDLCK));
  EXPECT_EQ(code(m().flock(f, 3, F_WRLCK)), Code::kAgain);
  EXPECT_EQ(code(m().flock(f, 1, F_WRLCK)), Code::kAgain) << "upgrade while 2 shares it";
  must(m().flock(f, 2, F_UNLCK));
  must(m().flock(f, 1, F_WRLCK));
  EXPECT_EQ(code(m().flock(f, 2, F_RDLCK)), Code::kAgain);
  must(m().flock(f, 1, F_RDLCK));  // downgrade
  must(m().flock(f, 2, F_RDLCK));
  must(m().flock(f, 1, F_UNLCK));
  must(m().flock(f, 1, F_UNLCK));  // unlocking twice is fine
  must(m().flock(f, 2, F_UNLCK));
  must(m().flock(f, 3, F_WRLCK));
}

TEST_P(LockTest, FlockErrors) {
  Ino f = mkfile(kRootIno, "f").ino;
  EXPECT_EQ(code(m().flock(f, 1, 99)), Code::kInvalid);
  EXPECT_EQ(code(m().flock(999999, 1, F_RDLCK)), Code::kNotFound);
  EXPECT_EQ(code(m().setlk(999999, 1, range(F_RDLCK, 0, 1))), Code::kNotFound);
  EXPECT_EQ(code(m().setlk(f, 1, range(F_RDLCK, 5, 4))), Code::kInvalid);
  EXPECT_EQ(code(m().setlk(f, 1, range(99, 0, 4))), Code::kInvalid);
  EXPECT_EQ(code(m().getlk(f, 1, range(F_UNLCK, 0, 4))), Code::kInvalid);
}

TEST_P(LockTest, FlockBetweenSessions) {
  Ino f = mkfile(kRootIno, "f").ino;
  auto other = other_client();
  must(m().flock(f, 1, F_WRLCK));
  EXPECT_EQ(code(other->flock(f, 1, F_RDLCK)), Code::kAgain) << "same owner id, other session";
  must(other->flock(f, 1, F_UNLCK));  // does not touch this session's lock
  EXPECT_EQ(code(other->flock(f, 1, F_RDLCK)), Code::kAgain);
  must(m().flock(f, 1, F_RDLCK));
  must(other->flock(f, 1, F_RDLCK));
}

TEST_P(LockTest, LockHeldKeyFollowsTheLocks) {
  Ino f = mkfile(kRootIno, "f").ino;
  const std::string held = keys::lock_held(m().session_id(), f);
  must(m().flock(f, 1, F_RDLCK));
  must(m().setlk(f, 1, range(F_RDLCK, 0, 9)));
  EXPECT_TRUE(has_key(held));
  must(m().flock(f, 1, F_UNLCK));
  EXPECT_TRUE(has_key(held)) << "the record lock is still held";
  EXPECT_FALSE(has_key(keys::flocks(f)));
  must(m().setlk(f, 1, range(F_UNLCK, 0, kEof)));
  EXPECT_FALSE(has_key(held));
  EXPECT_FALSE(has_key(keys::plocks(f)));
}

TEST_P(LockTest, RecordLocksConflictOnlyWhereTheyOverlap) {
  Ino f = mkfile(kRootIno, "f").ino;
  must(m().setlk(f, 1, range(F_WRLCK, 0, 99, 101)));
  EXPECT_EQ(code(m().setlk(f, 2, range(F_RDLCK, 50, 60))), Code::kAgain);
  EXPECT_EQ(code(m().setlk(f, 2, range(F_RDLCK, 99, 99))), Code::kAgain);
  must(m().setlk(f, 2, range(F_RDLCK, 100, 199, 102)));
  must(m().setlk(f, 3, range(F_RDLCK, 150, kEof, 103)));
  expect_range(probe(f, 2, 0, 10), F_WRLCK, 0, 99, 101);
  expect_range(probe(f, 1, 0, 10), F_UNLCK, 0, 10, 0);  // own locks never conflict
  expect_range(probe(f, 1, 120, 130), F_RDLCK, 100, 199, 102);
  expect_range(probe(f, 1, 300, 400), F_RDLCK, 150, kEof, 103);
  expect_range(must(m().getlk(f, 4, range(F_RDLCK, 120, 130))), F_UNLCK, 120, 130, 0);
}

TEST_P(LockTest, UnlockingTheMiddleSplitsARange) {
  Ino f = mkfile(kRootIno, "f").ino;
  must(m().setlk(f, 1, range(F_WRLCK, 0, 99, 7)));
  must(m().setlk(f, 1, range(F_UNLCK, 40, 59)));
  must(m().setlk(f, 2, range(F_WRLCK, 40, 59, 8)));
  EXPECT_EQ(code(m().setlk(f, 2, range(F_WRLCK, 30, 45))), Code::kAgain);
  expect_range(probe(f, 3, 0, 45), F_WRLCK, 0, 39, 7);
  expect_range(probe(f, 3, 60, 200), F_WRLCK, 60, 99, 7);
  expect_range(probe(f, 3, 45, 45), F_WRLCK, 40, 59, 8);
}

TEST_P(LockTest, ChangingTheTypeOfTheMiddleSplitsARange) {
  Ino f = mkfile(kRootIno, "f").ino;
  must(m().setlk(f, 1, range(F_WRLCK, 0, kEof, 7)));
  must(m().setlk(f, 1, range(F_RDLCK, 40, 59, 7)));
  must(m().setlk(f, 2, range(F_RDLCK, 40, 59)));
  EXPECT_EQ(code(m().setlk(f, 2, range(F_RDLCK, 39, 40))), Code::kAgain);
  EXPECT_EQ(code(m().setlk(f, 2, range(F_RDLCK, 60, 60))), Code::kAgain);
  expect_range(probe(f, 3, 50, 50), F_RDLCK, 40, 59, 7);
  expect_range(probe(f, 3, 1000, 1000), F_WRLCK, 60, kEof, 7);
}

TEST_P(LockTest, TouchingRangesOfOneTypeMerge) {
  Ino f = mkfile(kRootIno, "f").ino;
  must(m().setlk(f, 1, range(F_RDLCK, 0, 9, 7)));
  must(m().setlk(f, 1, range(F_RDLCK, 20, 29, 7)));
  must(m().setlk(f, 1, range(F_RDLCK, 10, 19, 7)));
  expect_range(probe(f, 2, 15, 15), F_RDLCK, 0, 29, 7);
  must(m().setlk(f, 1, range(F_WRLCK, 30, 39, 7)));
  expect_range(probe(f, 2, 35, 35), F_WRLCK, 30, 39, 7);  // different types stay apart
  must(m().setlk(f, 1, range(F_RDLCK, 5, 34, 7)));
  expect_range(probe(f, 2, 0, 34), F_RDLCK, 0, 34, 7);
  expect_range(probe(f, 2, 35, 35), F_WRLCK, 35, 39, 7);
}

TEST_P(LockTest, RecordLocksBetweenSessions) {
  Ino f = mkfile(kRootIno, "f").ino;
  auto other = other_client();
  must(other->setlk(f, 1, range(F_WRLCK, 10, 19, 55)));
  EXPECT_EQ(code(m().setlk(f, 1, range(F_RDLCK, 0, 10))), Code::kAgain);
  expect_range(must(m().getlk(f, 1, range(F_RDLCK, 0, kEof))), F_WRLCK, 10, 19, 55);
  must(other->close_session());
  expect_range(must(m().getlk(f, 1, range(F_RDLCK, 0, kEof))), F_UNLCK, 0, kEof, 0);
  must(m().setlk(f, 1, range(F_WRLCK, 0, kEof)));
}

// Random setlk calls by three owners on bytes [0, 64), against a model holding each
// owner's lock type per byte. getlk must agree on whether a conflict exists, and report
// a maximal run of one owner's bytes of one type (ranges of one owner are merged).
TEST_P(LockTest, RandomSequenceMatchesByteModel) {
  constexpr int kBytes = 64, kOwners = 3;
  Ino f = mkfile(kRootIno, "f").ino;
  std::array<std::array<uint32_t, kBytes>, kOwners> model;
  for (auto& o : model) o.fill(F_UNLCK);
  auto conflict_in_model = [&](int owner, uint32_t type, int s, int e) {
    for (int o = 0; o < kOwners; o++) {
      if (o == owner) continue;
      for (int b = s; b <= e; b++) {
        if (model[o][b] != F_UNLCK && (type == F_WRLCK || model[o][b] == F_WRLCK)) return true;
      }
    }
    return false;
  };
  std::mt19937 rng(GetParam() == "mem" ? 1 : 2);
  const uint32_t types[] = {F_RDLCK, F_WRLCK, F_UNLCK};
  for (int step = 0; step < 300; step++) {
    int owner = static_cast<int>(rng() % kOwners);
    int s = static_cast<int>(rng() % kBytes);
    int e = s + static_cast<int>(rng() % (kBytes - s));
    uint32_t type = types[rng() % 3];
    Status st = m().setlk(f, owner + 1, range(type, s, e, owner + 1));
    bool conflict = type != F_UNLCK && conflict_in_model(owner, type, s, e);
    ASSERT_EQ(st.ok(), !conflict) << "step " << step << ": " << st.ToString();
    if (st.ok()) {
      for (int b = s; b <= e; b++) model[owner][b] = type;
    }

    int asker = static_cast<int>(rng() % kOwners);
    int ps = static_cast<int>(rng() % kBytes);
    int pe = ps + static_cast<int>(rng() % (kBytes - ps));
    uint32_t want = types[rng() % 2];
    LockRange got = must(m().getlk(f, asker + 1, range(want, ps, pe)));
    ASSERT_EQ(got.type != F_UNLCK, conflict_in_model(asker, want, ps, pe)) << "step " << step;
    if (got.type == F_UNLCK) continue;
    int holder = static_cast<int>(got.pid) - 1;
    ASSERT_TRUE(holder >= 0 && holder < kOwners && holder != asker) << "step " << step;
    ASSERT_LT(got.end, static_cast<uint64_t>(kBytes));
    ASSERT_TRUE(got.start <= static_cast<uint64_t>(pe) && static_cast<uint64_t>(ps) <= got.end);
    ASSERT_TRUE(want == F_WRLCK || got.type == F_WRLCK);
    for (uint64_t b = got.start; b <= got.end; b++) ASSERT_EQ(model[holder][b], got.type);
    if (got.start > 0) {
      ASSERT_NE(model[holder][got.start - 1], got.type) << "not maximal";
    }
    if (got.end + 1 < kBytes) {
      ASSERT_NE(model[holder][got.end + 1], got.type) << "not maximal";
    }
  }
}

}  // namespace
}  // namespace sluice::meta
