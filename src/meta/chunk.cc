// File data layout: reading and appending chunk slice records, dropping the slices past a
// shrinking truncate, removing an inode's keys, and the deferred deletion of the data of
// removed files (D keys) and dropped slices (L keys).
//
// Data is never deleted inside a metadata transaction: a removed file keeps its chunk
// keys under a D<ino> marker, and truncate records dropped slices as L keys stamped with
// the time of the drop. cleanup_deleted() calls the data layer's deleter outside any
// transaction, then removes the keys it has dealt with, so a crash or a deleter error
// only leaves work for a later pass.
#include <algorithm>
#include <map>

#include "common/clock.h"
#include "common/encoding.h"
#include "common/logging.h"
#include "meta/internal.h"
#include "meta/keys.h"
#include "meta/meta.h"

namespace sluice::meta {

namespace {

// Decodes every chunk of one inode: their keys, and the distinct slices they list.
Status load_chunks(kv::Txn& txn, Ino ino, std::vector<std::string>& chunk_keys,
                   std::map<uint64_t, uint32_t>& slice_ids) {
  std::string prefix = keys::chunk_prefix(ino);
  ASSIGN_OR_RETURN(auto kvs, txn.scan(prefix, keys::prefix_end(prefix)));
  for (auto& kv : kvs) {
    ASSIGN_OR_RETURN(auto slices, decode_slices(kv.value));
    for (const Slice& s : slices) {
      if (s.id != 0) slice_ids.emplace(s.id, s.size);
    }
    chunk_keys.push_back(std::move(kv.key));
  }
  return Status::OK();
}

// Parses L<i64 time><u64 id><u32 size>.
bool parse_delayed(std::string_view key, int64_t& time, uint64_t& id, uint32_t& size) {
  const size_t at = keys::delayed_slice_prefix().size();
  if (key.size() != at + 20) return false;
  Decoder d(key.substr(at));
  time = d.get_i64();
  id = d.get_u64();
  size = d.get_u32();
  return d.ok();
}

// Removed files (D keys): every distinct slice of every chunk goes to the deleter, then
// the chunk keys and the marker are deleted, unless the chunks changed meanwhile.
Status cleanup_files(kv::Engine& engine, const SliceDeleter& deleter, size_t limit,
                     size_t& deleted) {
  std::vector<Ino> files;
  RETURN_IF_ERROR(engine.read([&](kv::Txn& txn) -> Status {
    files.clear();
    std::string prefix = keys::deleted_file_prefix();
    ASSIGN_OR_RETURN(auto kvs, txn.scan(prefix, keys::prefix_end(prefix), limit));
    for (const auto& kv : kvs) {
      Ino ino = 0;
      if (!keys::parse_u64_suffix(kv.key, prefix.size(), ino)) {
        return Status(Code::kCorruption, "malformed deleted-file key");
      }
      files.push_back(ino);
    }
    return Status::OK();
  }));
  for (Ino ino : files) {
    if (deleted >= limit) break;
    std::map<uint64_t, uint32_t> slice_ids;
    RETURN_IF_ERROR(engine.read([&](kv::Txn& txn) -> Status {
      slice_ids.clear();
      std::vector<std::string> unused;
      return load_chunks(txn, ino, unused, slice_ids);
    }));
    bool all_gone = true;
    for (auto [id, size] : slice_ids) {
      Status st = deleter(id, size);
      if (!st.ok()) {
        LOG_WARN("deleting slice {} of removed inode {}: {}", id, ino, st.ToString());
        all_gone = false;
        break;
      }
      deleted++;
    }
    if (!all_gone) continue;
    RETURN_IF_ERROR(engine.transact([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(auto marker, txn.get(keys::deleted_file(ino)));
      if (!marker) return Status::OK();  // another client finished it
      std::vector<std::string> chunk_keys;
      std::map<uint64_t, uint32_t> now_ids;
      RETURN_IF_ERROR(load_chunks(txn, ino, chunk_keys, now_ids));
      for (const auto& entry : now_ids) {
        if (!slice_ids.count(entry.first)) return Status::OK();  // changed: next pass
      }
      for (const auto& k : chunk_keys) RETURN_IF_ERROR(txn.del(k));
      return txn.del(keys::deleted_file(ino));
    }));
  }
  return Status::OK();
}

// Dropped slices (L keys) stamped at or before `due`; the keys sort by that time.
Status cleanup_dropped(kv::Engine& engine, const SliceDeleter& deleter, int64_t due, size_t limit,
                       size_t& deleted) {
  std::vector<std::pair<uint64_t, uint32_t>> todo;
  std::vector<std::string> todo_keys;
  RETURN_IF_ERROR(engine.read([&](kv::Txn& txn) -> Status {
    todo.clear();
    todo_keys.clear();
    std::string prefix = keys::delayed_slice_prefix();
    ASSIGN_OR_RETURN(auto kvs, txn.scan(prefix, keys::prefix_end(prefix), limit - deleted));
    for (auto& kv : kvs) {
      int64_t time = 0;
      uint64_t id = 0;
      uint32_t size = 0;
      if (!parse_delayed(kv.key, time, id, size)) {
        return Status(Code::kCorruption, "malformed delayed-slice key");
      }
      if (time > due) break;
      todo.emplace_back(id, size);
      todo_keys.push_back(std::move(kv.key));
    }
    return Status::OK();
  }));
  std::vector<std::string> done;
  for (size_t i = 0; i < todo.size(); i++) {
    Status st = deleter(todo[i].first, todo[i].second);
    if (!st.ok()) {
      LOG_WARN("deleting dropped slice {}: {}", todo[i].first, st.ToString());
      continue;
    }
    deleted++;
    done.push_back(std::move(todo_keys[i]));
  }
  if (done.empty()) return Status::OK();
  return engine.transact([&](kv::Txn& txn) -> Status {
    for (const auto& k : done) RETURN_IF_ERROR(txn.del(k));
    return Status::OK();
  });
}

}  // namespace

Result<std::vector<Slice>> Meta::read_chunk(Ino ino, uint32_t index) {
  std::vector<Slice> out;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(auto vals, txn.multi_get({keys::attr(ino), keys::chunk(ino, index)}));
    if (!vals[0]) return Status(Code::kNotFound, "no inode " + std::to_string(ino));
    ASSIGN_OR_RETURN(Attr a, decode_attr(*vals[0]));
    if (!a.is_file()) return Status(Code::kInvalid, "not a regular file");
    if (!vals[1]) {
      out.clear();
      return Status::OK();
    }
    ASSIGN_OR_RETURN(out, decode_slices(*vals[1]));
    return Status::OK();
  }));
  return out;
}

Result<Attr> Meta::write_slice(Ino ino, uint32_t index, const Slice& slice, int64_t mtime_ns) {
  if (slice.len == 0 || uint64_t{slice.pos} + slice.len > kChunkSize) {
    return Status(Code::kInvalid, "slice does not fit in its chunk");
  }
  if (slice.id != 0 && uint64_t{slice.off} + slice.len > slice.size) {
    return Status(Code::kInvalid, "slice range past the slice's size");
  }
  const uint64_t end = uint64_t{index} * kChunkSize + slice.pos + slice.len;
  Attr out;
  RETURN_IF_ERROR(engine_->transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(Attr a, internal::load_attr(txn, ino));
    if (!a.is_file()) return Status(Code::kInvalid, "not a regular file");
    if (end > a.size) {
      int64_t delta = static_cast<int64_t>(internal::space_of(end) - internal::space_of(a.size));
      if (delta > 0 && format_.capacity > 0) {
        ASSIGN_OR_RETURN(int64_t used, internal::get_counter(txn, keys::kUsedSpace));
        if (static_cast<uint64_t>(used + delta) > format_.capacity) {
          return Status(Code::kNoSpace, "volume capacity reached");
        }
      }
      RETURN_IF_ERROR(internal::add_counter(txn, keys::kUsedSpace, delta));
      a.size = end;
    }
    const std::string key = keys::chunk(ino, index);
    ASSIGN_OR_RETURN(auto old, txn.get(key));
    std::string value = old ? std::move(*old) : std::string();
    value += encode_slice(slice);
    RETURN_IF_ERROR(txn.put(key, value));
    a.mtime_ns = a.ctime_ns = mtime_ns;
    RETURN_IF_ERROR(internal::save_attr(txn, ino, a));
    out = a;
    return Status::OK();
  }));
  return out;
}

Result<size_t> Meta::cleanup_deleted(const SliceDeleter& deleter, size_t limit) {
  size_t deleted = 0;
  RETURN_IF_ERROR(cleanup_files(*engine_, deleter, limit, deleted));
  if (deleted < limit) {
    RETURN_IF_ERROR(cleanup_dropped(*engine_, deleter, now_ns() - delete_delay(), limit, deleted));
  }
  return deleted;
}

namespace internal {

Status truncate_data(kv::Txn& txn, Ino ino, uint64_t old_size, uint64_t new_size) {
  if (new_size >= old_size) return Status::OK();
  const int64_t now = now_ns();

  // Chunks that start at or past the new end go entirely; their slices are queued.
  const uint64_t first_gone = (new_size + kChunkSize - 1) / kChunkSize;
  if (first_gone <= UINT32_MAX) {
    std::string prefix = keys::chunk_prefix(ino);
    ASSIGN_OR_RETURN(auto kvs, txn.scan(keys::chunk(ino, static_cast<uint32_t>(first_gone)),
                                        keys::prefix_end(prefix)));
    for (const auto& kv : kvs) {
      ASSIGN_OR_RETURN(auto slices, decode_slices(kv.value));
      for (const Slice& s : slices) {
        // A slice listed several times maps to one key: it is deleted once.
        if (s.id != 0) RETURN_IF_ERROR(txn.put(keys::delayed_slice(now, s.id, s.size), ""));
      }
      RETURN_IF_ERROR(txn.del(kv.key));
    }
  }

  // The chunk holding the new end keeps its slices, masked by a hole to the old end.
  const uint64_t within = new_size % kChunkSize;
  if (within == 0) return Status::OK();
  const auto index = static_cast<uint32_t>(new_size / kChunkSize);
  const std::string key = keys::chunk(ino, index);
  ASSIGN_OR_RETURN(auto old, txn.get(key));
  if (!old) return Status::OK();  // nothing written there: it reads as zeros already
  Slice hole;
  hole.pos = static_cast<uint32_t>(within);
  hole.len = static_cast<uint32_t>(std::min<uint64_t>(old_size - new_size, kChunkSize - within));
  return txn.put(key, *old + encode_slice(hole));
}

Status remove_inode(kv::Txn& txn, Ino ino, const Attr& attr) {
  const std::string prefix = keys::inode_prefix(ino);
  const std::string chunks = keys::chunk_prefix(ino);
  ASSIGN_OR_RETURN(auto kvs, txn.scan(prefix, keys::prefix_end(prefix)));
  bool has_chunks = false;
  for (const auto& kv : kvs) {
    if (attr.is_file() && kv.key.compare(0, chunks.size(), chunks) == 0) {
      has_chunks = true;  // kept for cleanup_deleted, which deletes their slices first
      continue;
    }
    RETURN_IF_ERROR(txn.del(kv.key));
  }
  if (attr.is_file() && (attr.size > 0 || has_chunks)) {
    RETURN_IF_ERROR(txn.put(keys::deleted_file(ino), encode_u64(attr.size)));
  }
  RETURN_IF_ERROR(add_counter(txn, keys::kUsedInodes, -1));
  if (attr.is_file()) {
    RETURN_IF_ERROR(add_counter(txn, keys::kUsedSpace, -static_cast<int64_t>(space_of(attr.size))));
  }
  return Status::OK();
}

}  // namespace internal

}  // namespace sluice::meta
