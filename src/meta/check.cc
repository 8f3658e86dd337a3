// Offline metadata consistency check (see check.h).
#include "meta/check.h"

#include <map>
#include <set>
#include <unordered_map>

#include "common/encoding.h"
#include "meta/internal.h"
#include "meta/keys.h"

namespace sluice::meta {

namespace {

constexpr size_t kPage = 10000;

// Visits every key in [begin, end) in pages of read-only transactions.
Status scan_all(kv::Engine& engine, const std::string& begin, const std::string& end,
                const std::function<void(const kv::KeyValue&)>& fn) {
  std::string from = begin;
  for (;;) {
    std::vector<kv::KeyValue> page;
    RETURN_IF_ERROR(engine.read([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(page, txn.scan(from, end, kPage));
      return Status::OK();
    }));
    for (auto& kv : page) fn(kv);
    if (page.size() < kPage) return Status::OK();
    from = page.back().key + std::string(1, '\0');
  }
}

std::string ino_str(Ino ino) { return "inode " + std::to_string(ino); }

}  // namespace

Result<CheckReport> check_volume(kv::Engine& engine) {
  CheckReport rep;
  std::map<Ino, Attr> attrs;
  struct Ref {
    Ino parent;
    std::string name;
    FileType type;
  };
  std::unordered_map<Ino, std::vector<Ref>> refs;    // child -> entries naming it
  std::unordered_map<Ino, uint32_t> subdirs;         // dir -> subdirectories
  std::set<Ino> with_chunks, with_entries;
  std::set<uint64_t> seen_slices;
  std::vector<std::pair<Ino, Slice>> slices;

  RETURN_IF_ERROR(scan_all(engine, "A", keys::prefix_end("A"), [&](const kv::KeyValue& kv) {
    uint64_t ino = 0;
    if (!keys::parse_u64_suffix(kv.key, 1, ino) || kv.key.size() < 10) {
      rep.problems.push_back("malformed key in the inode range");
      return;
    }
    char kind = kv.key[9];
    std::string_view rest = std::string_view(kv.key).substr(10);
    if (kind == 'I') {
      auto a = decode_attr(kv.value);
      if (!a.ok()) {
        rep.problems.push_back(ino_str(ino) + ": unreadable attributes");
        return;
      }
      attrs[ino] = *a;
    } else if (kind == 'D') {
      auto d = decode_dentry(kv.value);
      if (!d.ok()) {
        rep.problems.push_back(ino_str(ino) + ": unreadable entry '" + std::string(rest) + "'");
        return;
      }
      rep.entries++;
      with_entries.insert(ino);
      refs[d->second].push_back(Ref{ino, std::string(rest), d->first});
      if (d->first == FileType::kDirectory) subdirs[ino]++;
    } else if (kind == 'C') {
      auto s = decode_slices(kv.value);
      Decoder dec(rest);
      uint32_t index = dec.get_u32();
      if (!s.ok() || !dec.ok()) {
        rep.problems.push_back(ino_str(ino) + ": unreadable chunk record");
        return;
      }
      with_chunks.insert(ino);
      for (auto& sl : *s) {
        if (uint64_t(sl.pos) + sl.len > kChunkSize ||
            (sl.id != 0 && uint64_t(sl.off) + sl.len > sl.size)) {
          rep.problems.push_back(ino_str(ino) + ": chunk " + std::to_string(index) +
                                 " has a slice out of bounds");
        }
        if (sl.id != 0) slices.emplace_back(ino, sl);
      }
    }
  }));

  std::set<Ino> sustained, deleted;
  RETURN_IF_ERROR(scan_all(engine, "SS", keys::prefix_end("SS"), [&](const kv::KeyValue& kv) {
    uint64_t ino = 0;
    if (keys::parse_u64_suffix(kv.key, 10, ino)) sustained.insert(ino);
  }));
  RETURN_IF_ERROR(scan_all(engine, keys::deleted_file_prefix(),
                           keys::prefix_end(keys::deleted_file_prefix()),
                           [&](const kv::KeyValue& kv) {
                             uint64_t ino = 0;
                             if (keys::parse_u64_suffix(kv.key, 1, ino)) deleted.insert(ino);
                           }));

  uint64_t space = 0;
  if (!attrs.count(kRootIno)) rep.problems.push_back("the root directory is missing");
  for (auto& [ino, a] : attrs) {
    rep.inodes++;
    auto& r = refs[ino];
    if (a.is_dir()) {
      rep.directories++;
      uint32_t want = 2 + subdirs[ino];
      if (a.nlink != want) {
        rep.problems.push_back(ino_str(ino) + ": directory nlink " + std::to_string(a.nlink) +
                               ", expected " + std::to_string(want));
      }
      if (ino != kRootIno) {
        if (r.size() != 1) {
          rep.problems.push_back(ino_str(ino) + ": directory has " + std::to_string(r.size()) +
                                 " entries naming it");
        } else if (r[0].parent != a.parent) {
          rep.problems.push_back(ino_str(ino) + ": parent field " + std::to_string(a.parent) +
                                 " but it lives in " + std::to_string(r[0].parent));
        }
      }
    } else {
      if (a.is_file()) {
        rep.files++;
        space += internal::space_of(a.size);
      }
      if (a.nlink != r.size()) {
        rep.problems.push_back(ino_str(ino) + ": nlink " + std::to_string(a.nlink) + " but " +
                               std::to_string(r.size()) + " entries");
      }
      if (a.nlink == 0 && !sustained.count(ino)) {
        rep.problems.push_back(ino_str(ino) + ": unlinked and not held open by any session");
      }
      if (!a.is_dir() && with_entries.count(ino)) {
        rep.problems.push_back(ino_str(ino) + ": a non-directory has entries");
      }
    }
    for (auto& ref : r) {
      if (ref.type != a.type) {
        rep.problems.push_back("entry '" + ref.name + "' in " + ino_str(ref.parent) +
                               " has the wrong type for " + ino_str(ino));
      }
    }
  }
  for (auto& [child, rs] : refs) {
    if (attrs.count(child)) continue;
    for (auto& ref : rs) {
      rep.problems.push_back("entry '" + ref.name + "' in " + ino_str(ref.parent) +
                             " points to missing " + ino_str(child));
    }
  }
  for (Ino ino : with_chunks) {
    if (!attrs.count(ino) && !deleted.count(ino)) {
      rep.problems.push_back(ino_str(ino) + ": chunks left behind without a deletion record");
    }
  }
  for (auto& [ino, sl] : slices) {
    if (!attrs.count(ino)) continue;  // queued for deletion
    rep.slices++;
    if (seen_slices.insert(sl.id).second) rep.live_slices.push_back(SliceRef{ino, sl.id, sl.size});
  }

  int64_t used_inodes = 0, used_space = 0;
  RETURN_IF_ERROR(engine.read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(used_inodes, internal::get_counter(txn, keys::kUsedInodes));
    ASSIGN_OR_RETURN(used_space, internal::get_counter(txn, keys::kUsedSpace));
    return Status::OK();
  }));
  uint64_t live = attrs.count(kRootIno) ? attrs.size() - 1 : attrs.size();
  if (static_cast<uint64_t>(used_inodes) != live) {
    rep.problems.push_back("usedInodes counter is " + std::to_string(used_inodes) + ", found " +
                           std::to_string(live) + " inodes");
  }
  if (static_cast<uint64_t>(used_space) != space) {
    rep.problems.push_back("usedSpace counter is " + std::to_string(used_space) + ", files use " +
                           std::to_string(space));
  }
  return rep;
}

}  // namespace sluice::meta
