// session.cc: sessions and heartbeats, open/close with access checks, open-unlinked files
// kept until their last close, and cleanup of closed and stale sessions. A second Meta
// opened on the same engine plays a second client.
#include <fcntl.h>

#include <chrono>
#include <thread>

#include "meta/keys.h"
#include "meta_fixture.h"

namespace sluice::meta {
namespace {

using testing::code;

class SessionTest : public testing::MetaTest {
 protected:
  std::unique_ptr<Meta> client() { return must(Meta::open(engine_ptr())); }
  SessionInfo info(std::string host) {
    SessionInfo i;
    i.hostname = std::move(host);
    i.pid = 42;
    i.mountpoint = "/mnt/x";
    return i;
  }
  // A file with one slice, unlinked while `client` has it open.
  Ino open_unlinked(Meta& client, std::string_view name) {
    Entry f = mkfile(kRootIno, name);
    must(client.write_slice(f.ino, 0, Slice{0, 77, 10, 0, 10}, 1));
    must(client.open(root(), f.ino, O_RDWR));
    must(client.unlink(root(), kRootIno, name));
    return f.ino;
  }
};
SLUICE_META_ENGINES(SessionTest);

TEST_P(SessionTest, SessionsAreNumberedAndListed) {
  EXPECT_EQ(m().session_id(), 0u);
  must(m().new_session(info("a")));
  auto other = client();
  must(other->new_session(info("b")));
  EXPECT_NE(m().session_id(), 0u);
  EXPECT_NE(m().session_id(), other->session_id());
  EXPECT_EQ(code(m().new_session(info("again"))), Code::kExists);

  auto list = must(m().list_sessions());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, m().session_id());
  EXPECT_EQ(list[0].hostname, "a");
  EXPECT_EQ(list[0].mountpoint, "/mnt/x");
  EXPECT_GT(list[0].started_ns, 0);
  EXPECT_EQ(list[1].hostname, "b");

  must(other->close_session());
  EXPECT_EQ(other->session_id(), 0u);
  EXPECT_EQ(must(m().list_sessions()).size(), 1u);
}

TEST_P(SessionTest, HeartbeatMovesForward) {
  EXPECT_EQ(code(m().heartbeat()), Code::kInvalid) << "no session yet";
  must(m().new_session(info("a")));
  int64_t first = must(m().list_sessions())[0].heartbeat_ns;
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  must(m().heartbeat());
  EXPECT_GT(must(m().list_sessions())[0].heartbeat_ns, first);
}

TEST_P(SessionTest, OpenChecksAccessAndType) {
  Entry f = mkfile(kRootIno, "f", 0644);
  Entry d = mkdir(kRootIno, "d");
  Entry secret = mkfile(kRootIno, "secret", 0600);
  EXPECT_EQ(must(m().open(user(), f.ino, O_RDONLY)).size, 0u);
  EXPECT_EQ(code(m().open(user(), f.ino, O_WRONLY)), Code::kAccess);
  EXPECT_EQ(code(m().open(user(), f.ino, O_RDONLY | O_TRUNC)), Code::kAccess);
  EXPECT_EQ(code(m().open(user(), secret.ino, O_RDONLY)), Code::kAccess);
  must(m().open(root(), secret.ino, O_RDWR | O_TRUNC));
  must(m().open(user(), d.ino, O_RDONLY));
  EXPECT_EQ(code(m().open(root(), d.ino, O_WRONLY)), Code::kIsDir);
  EXPECT_EQ(code(m().open(root(), d.ino, O_RDWR)), Code::kIsDir);
  EXPECT_EQ(code(m().open(root(), 999999, O_RDONLY)), Code::kNotFound);
  EXPECT_EQ(code(m().close(999999)), Code::kBadFd);
  EXPECT_TRUE(m().is_open_here(f.ino));
  must(m().close(f.ino));
  EXPECT_FALSE(m().is_open_here(f.ino));
  EXPECT_EQ(code(m().close(f.ino)), Code::kBadFd);
}

TEST_P(SessionTest, OpenUnlinkedFileSurvivesUntilLastClose) {
  must(m().new_session(info("a")));
  Ino ino = open_unlinked(m(), "f");
  must(m().open(root(), ino, O_RDONLY));  // a second handle

  Attr a = attr(ino);
  EXPECT_EQ(a.nlink, 0u);
  EXPECT_EQ(a.size, 10u);
  EXPECT_EQ(must(m().read_chunk(ino, 0)).size(), 1u);
  EXPECT_EQ(code(m().lookup(root(), kRootIno, "f")), Code::kNotFound);
  EXPECT_TRUE(has_key(keys::sustained(m().session_id(), ino)));
  EXPECT_FALSE(has_key(keys::deleted_file(ino)));

  must(m().close(ino));
  EXPECT_EQ(attr(ino).nlink, 0u) << "one handle is still open";
  must(m().close(ino));
  EXPECT_EQ(code(m().getattr(ino)), Code::kNotFound);
  EXPECT_FALSE(has_key(keys::sustained(m().session_id(), ino)));
  EXPECT_TRUE(has_key(keys::deleted_file(ino))) << "its data is queued for deletion";
}

TEST_P(SessionTest, ClosingAFileThatWasNotUnlinkedKeepsIt) {
  must(m().new_session(info("a")));
  Entry f = mkfile(kRootIno, "f");
  must(m().open(root(), f.ino, O_RDONLY));
  must(m().close(f.ino));
  EXPECT_EQ(attr(f.ino).nlink, 1u);
}

TEST_P(SessionTest, OpenCountsBelongToOneClient) {
  must(m().new_session(info("a")));
  auto other = client();
  must(other->new_session(info("b")));
  Entry f = mkfile(kRootIno, "f");
  must(other->open(root(), f.ino, O_RDONLY));
  EXPECT_FALSE(m().is_open_here(f.ino));
  // Unlinked by the client that has it open: kept for that client's session.
  must(other->unlink(root(), kRootIno, "f"));
  EXPECT_TRUE(has_key(keys::sustained(other->session_id(), f.ino)));
  must(other->close(f.ino));
  EXPECT_EQ(code(m().getattr(f.ino)), Code::kNotFound);
}

TEST_P(SessionTest, CloseSessionRemovesOpenUnlinkedFilesAndLocks) {
  must(m().new_session(info("a")));
  Ino gone = open_unlinked(m(), "gone");
  Entry locked = mkfile(kRootIno, "locked");
  must(m().flock(locked.ino, 1, F_WRLCK));
  must(m().setlk(locked.ino, 1, LockRange{F_WRLCK, 0, 99, 7}));
  const uint64_t sid = m().session_id();
  EXPECT_TRUE(has_key(keys::lock_held(sid, locked.ino)));

  must(m().close_session());
  EXPECT_EQ(code(m().getattr(gone)), Code::kNotFound);
  EXPECT_TRUE(has_key(keys::deleted_file(gone)));
  EXPECT_FALSE(has_key(keys::sustained(sid, gone)));
  EXPECT_FALSE(has_key(keys::lock_held(sid, locked.ino)));
  EXPECT_FALSE(has_key(keys::flocks(locked.ino)));
  EXPECT_FALSE(has_key(keys::plocks(locked.ino)));
  EXPECT_FALSE(has_key(keys::session(sid)));
}

TEST_P(SessionTest, StaleSessionIsCleanedByAnotherClient) {
  auto crashed = client();
  must(crashed->new_session(info("crashed")));
  Ino gone = open_unlinked(*crashed, "gone");
  Entry locked = mkfile(kRootIno, "locked");
  must(crashed->flock(locked.ino, 1, F_WRLCK));
  must(crashed->setlk(locked.ino, 1, LockRange{F_RDLCK, 10, 20, 7}));

  must(m().new_session(info("alive")));
  EXPECT_EQ(code(m().flock(locked.ino, 1, F_RDLCK)), Code::kAgain);
  EXPECT_EQ(must(m().clean_stale_sessions(3600LL * 1'000'000'000)), 0) << "fresh heartbeat";

  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  must(m().heartbeat());
  EXPECT_EQ(must(m().clean_stale_sessions(20'000'000)), 1);
  EXPECT_EQ(must(m().clean_stale_sessions(20'000'000)), 0) << "already gone";

  auto sessions = must(m().list_sessions());
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].id, m().session_id()) << "a client never cleans itself";
  EXPECT_EQ(code(m().getattr(gone)), Code::kNotFound);
  EXPECT_TRUE(has_key(keys::deleted_file(gone)));
  must(m().flock(locked.ino, 1, F_WRLCK));
  must(m().setlk(locked.ino, 1, LockRange{F_WRLCK, 0, 100, 8}));
  EXPECT_EQ(code(crashed->heartbeat()), Code::kNotFound) << "its session is gone";
}

}  // namespace
}  // namespace sluice::meta
