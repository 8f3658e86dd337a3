// File locks: flock(2) whole-file locks and fcntl(2) POSIX record locks, shared by all
// clients through two per-inode tables. A holder is (session id, kernel lock owner).
//
// Table encodings (binary, big-endian, records concatenated, no header):
//   A<ino>F  flock:  u64 sid, u64 owner, u8 type                                (17 bytes)
//   A<ino>P  fcntl:  u64 sid, u64 owner, u8 type, u64 start, u64 end, u32 pid  (37 bytes)
// fcntl records are sorted by (sid, owner, start); one holder's ranges never overlap,
// and touching ranges of the same type are merged, as Linux does. An empty table is
// deleted. While a session holds any lock on an inode, SL<sid><ino> exists, so that
// closing or cleaning the session finds its locks without scanning every inode.
#include <fcntl.h>

#include <algorithm>
#include <tuple>

#include "common/encoding.h"
#include "meta/internal.h"
#include "meta/keys.h"
#include "meta/meta.h"

namespace sluice::meta {

namespace {

struct FlockEntry {
  uint64_t sid = 0;
  uint64_t owner = 0;
  uint32_t type = 0;
};

struct PlockEntry {
  uint64_t sid = 0;
  uint64_t owner = 0;
  LockRange range;
};

constexpr size_t kFlockRecord = 17;
constexpr size_t kPlockRecord = 37;

bool valid_type(uint32_t type) { return type == F_RDLCK || type == F_WRLCK || type == F_UNLCK; }
bool conflicts(uint32_t a, uint32_t b) { return a == F_WRLCK || b == F_WRLCK; }
bool overlaps(const LockRange& a, const LockRange& b) {
  return a.start <= b.end && b.start <= a.end;
}

Result<std::vector<FlockEntry>> load_flocks(kv::Txn& txn, Ino ino) {
  std::vector<FlockEntry> out;
  ASSIGN_OR_RETURN(auto v, txn.get(keys::flocks(ino)));
  if (!v) return out;
  if (v->size() % kFlockRecord != 0) return Status(Code::kCorruption, "malformed flock table");
  Decoder d(*v);
  while (d.remaining() > 0) {
    FlockEntry e;
    e.sid = d.get_u64();
    e.owner = d.get_u64();
    e.type = d.get_u8();
    out.push_back(e);
  }
  return out;
}

Status save_flocks(kv::Txn& txn, Ino ino, const std::vector<FlockEntry>& table) {
  if (table.empty()) return txn.del(keys::flocks(ino));
  std::string v;
  for (const auto& e : table) {
    put_u64(v, e.sid);
    put_u64(v, e.owner);
    put_u8(v, static_cast<uint8_t>(e.type));
  }
  return txn.put(keys::flocks(ino), v);
}

Result<std::vector<PlockEntry>> load_plocks(kv::Txn& txn, Ino ino) {
  std::vector<PlockEntry> out;
  ASSIGN_OR_RETURN(auto v, txn.get(keys::plocks(ino)));
  if (!v) return out;
  if (v->size() % kPlockRecord != 0) return Status(Code::kCorruption, "malformed fcntl lock table");
  Decoder d(*v);
  while (d.remaining() > 0) {
    PlockEntry e;
    e.sid = d.get_u64();
    e.owner = d.get_u64();
    e.range.type = d.get_u8();
    e.range.start = d.get_u64();
    e.range.end = d.get_u64();
    e.range.pid = d.get_u32();
    out.push_back(e);
  }
  return out;
}

Status save_plocks(kv::Txn& txn, Ino ino, std::vector<PlockEntry> table) {
  if (table.empty()) return txn.del(keys::plocks(ino));
  std::sort(table.begin(), table.end(), [](const PlockEntry& a, const PlockEntry& b) {
    return std::tie(a.sid, a.owner, a.range.start) < std::tie(b.sid, b.owner, b.range.start);
  });
  std::string v;
  for (const auto& e : table) {
    put_u64(v, e.sid);
    put_u64(v, e.owner);
    put_u8(v, static_cast<uint8_t>(e.range.type));
    put_u64(v, e.range.start);
    put_u64(v, e.range.end);
    put_u32(v, e.range.pid);
  }
  return txn.put(keys::plocks(ino), v);
}

// Keeps SL<sid><ino> in step with the tables.
Status update_held(kv::Txn& txn, uint64_t sid, Ino ino, const std::vector<FlockEntry>& flocks,
                   const std::vector<PlockEntry>& plocks) {
  bool held = std::any_of(flocks.begin(), flocks.end(), [&](auto& e) { return e.sid == sid; }) ||
              std::any_of(plocks.begin(), plocks.end(), [&](auto& e) { return e.sid == sid; });
  if (held) return txn.put(keys::lock_held(sid, ino), "");
  return txn.del(keys::lock_held(sid, ino));
}

// fcntl semantics for one holder's ranges: the request's range replaces whatever the
// holder had there (splitting ranges it cuts through); F_UNLCK just cuts. The new range
// absorbs touching ranges of the same type.
std::vector<LockRange> apply_range(const std::vector<LockRange>& mine, const LockRange& req) {
  std::vector<LockRange> cut;
  for (const LockRange& r : mine) {
    if (!overlaps(r, req)) {
      cut.push_back(r);
      continue;
    }
    if (r.start < req.start) cut.push_back(LockRange{r.type, r.start, req.start - 1, r.pid});
    if (r.end > req.end) cut.push_back(LockRange{r.type, req.end + 1, r.end, r.pid});
  }
  if (req.type == F_UNLCK) return cut;
  LockRange n = req;
  std::vector<LockRange> out;
  for (const LockRange& r : cut) {
    bool touches = (r.end != UINT64_MAX && r.end + 1 == n.start) ||
                   (n.end != UINT64_MAX && n.end + 1 == r.start);
    if (r.type == n.type && touches) {
      n.start = std::min(n.start, r.start);
      n.end = std::max(n.end, r.end);
    } else {
      out.push_back(r);
    }
  }
  out.push_back(n);
  return out;
}

Status check_range(const LockRange& r) {
  if (!valid_type(r.type)) return Status(Code::kInvalid, "bad lock type");
  if (r.start > r.end) return Status(Code::kInvalid, "lock range ends before it starts");
  return Status::OK();
}

}  // namespace

Status Meta::flock(Ino ino, uint64_t owner, uint32_t type) {
  if (!valid_type(type)) return Status(Code::kInvalid, "bad lock type");
  const uint64_t sid = sid_;
  return engine_->transact([&](kv::Txn& txn) -> Status {
    RETURN_IF_ERROR(internal::load_attr(txn, ino).status());
    ASSIGN_OR_RETURN(auto table, load_flocks(txn, ino));
    std::vector<FlockEntry> next;
    for (const auto& e : table) {
      if (e.sid == sid && e.owner == owner) continue;
      if (type != F_UNLCK && conflicts(type, e.type)) {
        return Status(Code::kAgain, "file is locked by another owner");
      }
      next.push_back(e);
    }
    if (type != F_UNLCK) next.push_back(FlockEntry{sid, owner, type});
    RETURN_IF_ERROR(save_flocks(txn, ino, next));
    ASSIGN_OR_RETURN(auto plocks, load_plocks(txn, ino));
    return update_held(txn, sid, ino, next, plocks);
  });
}

Result<LockRange> Meta::getlk(Ino ino, uint64_t owner, const LockRange& want) {
  RETURN_IF_ERROR(check_range(want));
  if (want.type == F_UNLCK) return Status(Code::kInvalid, "F_GETLK needs a lock type");
  const uint64_t sid = sid_;
  LockRange out;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    RETURN_IF_ERROR(internal::load_attr(txn, ino).status());
    ASSIGN_OR_RETURN(auto table, load_plocks(txn, ino));
    out = want;
    out.type = F_UNLCK;
    bool found = false;
    for (const auto& e : table) {
      if (e.sid == sid && e.owner == owner) continue;
      if (!overlaps(e.range, want) || !conflicts(want.type, e.range.type)) continue;
      if (!found || e.range.start < out.start) out = e.range;
      found = true;
    }
    return Status::OK();
  }));
  return out;
}

Status Meta::setlk(Ino ino, uint64_t owner, const LockRange& lock) {
  RETURN_IF_ERROR(check_range(lock));
  const uint64_t sid = sid_;
  return engine_->transact([&](kv::Txn& txn) -> Status {
    RETURN_IF_ERROR(internal::load_attr(txn, ino).status());
    ASSIGN_OR_RETURN(auto table, load_plocks(txn, ino));
    std::vector<PlockEntry> next;
    std::vector<LockRange> mine;
    for (const auto& e : table) {
      if (e.sid == sid && e.owner == owner) {
        mine.push_back(e.range);
        continue;
      }
      if (lock.type != F_UNLCK && overlaps(e.range, lock) && conflicts(lock.type, e.range.type)) {
        return Status(Code::kAgain, "range is locked by another owner");
      }
      next.push_back(e);
    }
    for (const LockRange& r : apply_range(mine, lock)) next.push_back(PlockEntry{sid, owner, r});
    ASSIGN_OR_RETURN(auto flocks, load_flocks(txn, ino));
    RETURN_IF_ERROR(update_held(txn, sid, ino, flocks, next));
    return save_plocks(txn, ino, std::move(next));
  });
}

namespace internal {

Status release_locks(kv::Txn& txn, uint64_t sid, Ino ino) {
  ASSIGN_OR_RETURN(auto flocks, load_flocks(txn, ino));
  ASSIGN_OR_RETURN(auto plocks, load_plocks(txn, ino));
  std::erase_if(flocks, [&](const FlockEntry& e) { return e.sid == sid; });
  std::erase_if(plocks, [&](const PlockEntry& e) { return e.sid == sid; });
  RETURN_IF_ERROR(save_flocks(txn, ino, flocks));
  RETURN_IF_ERROR(save_plocks(txn, ino, std::move(plocks)));
  return txn.del(keys::lock_held(sid, ino));
}

}  // namespace internal

}  // namespace sluice::meta
