// Sessions and open files. Every mount registers a session (SE<sid>, with a heartbeat);
// the locks it takes (SL<sid><ino>) and the unlinked files it still has open
// (SS<sid><ino>, "sustained") belong to it. Closing a session, or any live client
// cleaning a session whose heartbeat stopped, releases those locks and removes those
// files. Open counts are per Meta instance (one client) and live in memory only.
#include <fcntl.h>
#include <unistd.h>

#include "common/clock.h"
#include "meta/internal.h"
#include "meta/keys.h"
#include "meta/meta.h"

namespace sluice::meta {

namespace {

constexpr int kRead = R_OK;
constexpr int kWrite = W_OK;

// Removes a sustained inode if it is still unlinked, and its SS key.
Status drop_sustained(kv::Txn& txn, uint64_t sid, Ino ino) {
  ASSIGN_OR_RETURN(auto raw, txn.get(keys::attr(ino)));
  if (raw) {
    ASSIGN_OR_RETURN(Attr a, decode_attr(*raw));
    if (a.nlink == 0) RETURN_IF_ERROR(internal::remove_inode(txn, ino, a));
  }
  return txn.del(keys::sustained(sid, ino));
}

// The inode numbers under one of a session's key prefixes (SL or SS).
Result<std::vector<Ino>> session_inodes(kv::Txn& txn, const std::string& prefix) {
  ASSIGN_OR_RETURN(auto kvs, txn.scan(prefix, keys::prefix_end(prefix)));
  std::vector<Ino> out;
  for (const auto& kv : kvs) {
    Ino ino = 0;
    if (!keys::parse_u64_suffix(kv.key, prefix.size(), ino)) {
      return Status(Code::kCorruption, "malformed session key");
    }
    out.push_back(ino);
  }
  return out;
}

// Everything a session owns goes, then the session itself.
Status clean_session(kv::Txn& txn, uint64_t sid) {
  ASSIGN_OR_RETURN(auto locked, session_inodes(txn, keys::lock_held_prefix(sid)));
  for (Ino ino : locked) RETURN_IF_ERROR(internal::release_locks(txn, sid, ino));
  ASSIGN_OR_RETURN(auto kept, session_inodes(txn, keys::sustained_prefix(sid)));
  for (Ino ino : kept) RETURN_IF_ERROR(drop_sustained(txn, sid, ino));
  return txn.del(keys::session(sid));
}

Result<SessionInfo> parse_session(const std::string& raw) {
  auto info = SessionInfo::from_json(raw);
  if (!info) return Status(Code::kCorruption, "malformed session record");
  return *info;
}

}  // namespace

Status Meta::new_session(SessionInfo info) {
  if (sid_ != 0) return Status(Code::kExists, "this client already has a session");
  const int64_t now = now_ns();
  uint64_t sid = 0;
  RETURN_IF_ERROR(engine_->transact([&](kv::Txn& txn) -> Status {
    RETURN_IF_ERROR(internal::add_counter(txn, keys::kNextSession, 1));
    ASSIGN_OR_RETURN(int64_t id, internal::get_counter(txn, keys::kNextSession));
    sid = static_cast<uint64_t>(id);
    SessionInfo s = info;
    s.id = sid;
    if (s.started_ns == 0) s.started_ns = now;
    s.heartbeat_ns = now;
    return txn.put(keys::session(sid), s.to_json());
  }));
  sid_ = sid;
  return Status::OK();
}

Status Meta::heartbeat() {
  if (sid_ == 0) return Status(Code::kInvalid, "no session");
  const uint64_t sid = sid_;
  return engine_->transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(auto raw, txn.get(keys::session(sid)));
    if (!raw) {
      return Status(Code::kNotFound,
                    "session " + std::to_string(sid) + " is gone (cleaned as stale)");
    }
    ASSIGN_OR_RETURN(SessionInfo s, parse_session(*raw));
    s.heartbeat_ns = now_ns();
    return txn.put(keys::session(sid), s.to_json());
  });
}

Status Meta::close_session() {
  if (sid_ == 0) return Status::OK();
  const uint64_t sid = sid_;
  RETURN_IF_ERROR(
      engine_->transact([&](kv::Txn& txn) -> Status { return clean_session(txn, sid); }));
  sid_ = 0;
  return Status::OK();
}

Result<int> Meta::clean_stale_sessions(int64_t timeout_ns) {
  const int64_t cutoff = now_ns() - timeout_ns;
  ASSIGN_OR_RETURN(auto sessions, list_sessions());
  int cleaned = 0;
  for (const SessionInfo& s : sessions) {
    if (s.id == sid_ || s.heartbeat_ns >= cutoff) continue;
    bool removed = false;
    RETURN_IF_ERROR(engine_->transact([&](kv::Txn& txn) -> Status {
      removed = false;
      ASSIGN_OR_RETURN(auto raw, txn.get(keys::session(s.id)));
      if (!raw) return Status::OK();  // another client cleaned it
      ASSIGN_OR_RETURN(SessionInfo now, parse_session(*raw));
      if (now.heartbeat_ns >= cutoff) return Status::OK();  // it came back
      removed = true;
      return clean_session(txn, s.id);
    }));
    if (removed) cleaned++;
  }
  return cleaned;
}

Result<std::vector<SessionInfo>> Meta::list_sessions() {
  std::vector<SessionInfo> out;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    out.clear();
    std::string prefix = keys::session_prefix();
    ASSIGN_OR_RETURN(auto kvs, txn.scan(prefix, keys::prefix_end(prefix)));
    for (const auto& kv : kvs) {
      ASSIGN_OR_RETURN(SessionInfo s, parse_session(kv.value));
      out.push_back(std::move(s));
    }
    return Status::OK();
  }));
  return out;
}

Result<Attr> Meta::open(const Context& ctx, Ino ino, int flags) {
  int mask = 0;
  switch (flags & O_ACCMODE) {
    case O_RDONLY:
      mask = kRead;
      break;
    case O_WRONLY:
      mask = kWrite;
      break;
    case O_RDWR:
      mask = kRead | kWrite;
      break;
    default:
      return Status(Code::kInvalid, "bad open access mode");
  }
  if (flags & O_TRUNC) mask |= kWrite;
  Attr out;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
    if (a.is_dir() && (mask & kWrite)) {
      return Status(Code::kIsDir, "cannot open a directory for writing");
    }
    RETURN_IF_ERROR(internal::check_access(ctx, a, mask));
    out = a;
    return Status::OK();
  }));
  std::lock_guard<std::mutex> g(open_mu_);
  open_[ino]++;
  return out;
}

Status Meta::close(Ino ino) {
  {
    std::lock_guard<std::mutex> g(open_mu_);
    auto it = open_.find(ino);
    if (it == open_.end())
      return Status(Code::kBadFd, "inode " + std::to_string(ino) + " is not open");
    if (--it->second > 0) return Status::OK();
    open_.erase(it);
  }
  const uint64_t sid = sid_;
  return engine_->transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(auto kept, txn.get(keys::sustained(sid, ino)));
    // Opened again by another thread since the count reached 0: its close removes it.
    if (!kept || is_open_here(ino)) return Status::OK();
    return drop_sustained(txn, sid, ino);
  });
}

namespace internal {

// A file unlinked while open here stays (nlink 0) until its last close. (An unlink that
// races with the last close of the same inode may leave it sustained until the session
// ends; it is then removed like any other sustained inode.)
Status drop_inode(Meta& m, kv::Txn& txn, Ino ino, const Attr& attr) {
  if (m.is_open_here(ino)) {
    RETURN_IF_ERROR(save_attr(txn, ino, attr));
    return txn.put(keys::sustained(m.session_id(), ino), "");
  }
  return remove_inode(txn, ino, attr);
}

}  // namespace internal

}  // namespace sluice::meta
