// dump_volume: the key space, scanned in order, written as JSON lines (docs/dump-format.md).
//
// The scan visits keys in order: A<ino>... (all keys of one inode together), C counters,
// D removed files, L dropped slices, S session keys, then `setting`. An inode's record is
// written at its first key, before its chunks and entries (which sort before its `I` key),
// so the attributes and symlink target are looked up ahead when they are not in the page.
// Fetching a page (reads) and writing it (output) are separate steps, so a paged dump never
// writes from inside a transaction the engine may re-run.
#include "meta/dump.h"

#include <unordered_map>

#include "common/clock.h"
#include "common/encoding.h"
#include "meta/dump_codec.h"
#include "meta/internal.h"
#include "meta/keys.h"

namespace sluice::meta {

namespace {

using dump::Json;

constexpr uint64_t kProgressEvery = 10000;  // records

Status corrupt(const std::string& what) {
  return Status(Code::kCorruption, "cannot dump: " + what);
}

// A key for messages: printable bytes as they are, others as \xNN.
std::string show_key(std::string_view key) {
  std::string out;
  for (char c : key) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
  }
  return out;
}

// One page of keys, plus the attributes and symlink targets of the inodes that start in
// it, looked up when their keys lie outside the page.
struct Page {
  std::vector<kv::KeyValue> kvs;
  std::unordered_map<Ino, std::optional<std::string>> attrs, targets;
};

class Dumper {
 public:
  Dumper(std::ostream& out, const DumpOptions& opts) : out_(out), opts_(opts) {}

  // Reads the header's inputs; refuses unformatted and half-loaded volumes.
  Status fetch_header(kv::Txn& txn) {
    ASSIGN_OR_RETURN(auto vals, txn.multi_get({keys::setting(), keys::loading()}));
    if (vals[1]) {
      return Status(Code::kInvalid,
                    "the volume holds an unfinished 'sluice load'; nothing to dump");
    }
    if (!vals[0]) return Status(Code::kInvalid, "not a Sluice volume (no settings)");
    setting_ = std::move(*vals[0]);
    return Status::OK();
  }

  Status write_header(const std::string& source) {
    Json h = Json::object();
    h["sluice_dump"] = kDumpVersion;
    try {
      h["volume"] = Json::parse(setting_);
    } catch (const std::exception&) {
      return corrupt("the volume settings are not JSON");
    }
    if (!h["volume"].is_object() || !Format::from_json(setting_)) {
      return corrupt("the volume settings are unreadable");
    }
    h["source"] = source;
    h["dumped_ns"] = now_ns();
    h["snapshot"] = opts_.snapshot;
    return line(h);
  }

  // Reads the page after the last one written; false when the key space is exhausted.
  Result<bool> fetch(kv::Txn& txn, Page& p) {
    p = Page{};
    ASSIGN_OR_RETURN(p.kvs, txn.scan(from_, "", opts_.page));
    if (p.kvs.empty()) return false;
    // Inodes whose first key is in this page, and which of their keys the page holds.
    std::vector<Ino> starts;
    Ino prev = cur_;
    for (const auto& kv : p.kvs) {
      Ino ino = 0;
      if (kv.key.size() < 10 || kv.key[0] != 'A' || !keys::parse_u64_suffix(kv.key, 1, ino)) {
        continue;
      }
      if (ino != prev) starts.push_back(ino);
      prev = ino;
      if (kv.key.size() == 10 && kv.key[9] == 'I') p.attrs[ino] = kv.value;
      if (kv.key.size() == 10 && kv.key[9] == 'S') p.targets[ino] = kv.value;
    }
    RETURN_IF_ERROR(look_up(txn, starts, p.attrs, keys::attr));
    std::vector<Ino> links;
    for (Ino ino : starts) {
      const auto& a = p.attrs[ino];
      if (a && a->size() > 1 && static_cast<uint8_t>((*a)[1]) == uint8_t(FileType::kSymlink)) {
        links.push_back(ino);
      }
    }
    RETURN_IF_ERROR(look_up(txn, links, p.targets, keys::symlink));
    return true;
  }

  Status write(const Page& p) {
    for (const auto& kv : p.kvs) RETURN_IF_ERROR(write_key(kv, p));
    from_ = p.kvs.back().key + std::string(1, '\0');
    if (!out_) return Status(Code::kIO, "writing the dump failed");
    return Status::OK();
  }

  // The counters, read after the scan so that the id counters exceed every id seen.
  Status fetch_counters(kv::Txn& txn) {
    const std::string prefix = keys::counter("");
    ASSIGN_OR_RETURN(counters_, txn.scan(prefix, keys::prefix_end(prefix)));
    return Status::OK();
  }

  Status write_trailer() {
    Json c = Json::object();
    for (const auto& kv : counters_) {
      std::string name = kv.key.substr(1);
      auto v = decode_u64(kv.value);
      if (!v.ok() || !dump::valid_utf8(name))
        return corrupt("counter " + show_key(kv.key) + " is malformed");
      uint64_t n = *v;
      // Open-unlinked inodes were dumped as removed: charge them as closing would.
      if (name == keys::kUsedInodes) n -= orphan_inodes_;
      if (name == keys::kUsedSpace) n -= orphan_space_;
      c[name] = n;
    }
    Json t = Json::object();
    t["end"] = stats_.records;
    t["counters"] = std::move(c);
    RETURN_IF_ERROR(line(t));
    out_.flush();
    if (!out_) return Status(Code::kIO, "writing the dump failed");
    if (opts_.progress) opts_.progress(stats_);
    return Status::OK();
  }

  const DumpStats& stats() const { return stats_; }
  bool wrote_anything() const { return stats_.bytes > 0; }

 private:
  using KeyFn = std::string (*)(Ino);
  static Status look_up(kv::Txn& txn, const std::vector<Ino>& inos,
                        std::unordered_map<Ino, std::optional<std::string>>& found, KeyFn key) {
    std::vector<std::string> ks;
    std::vector<Ino> which;
    for (Ino ino : inos) {
      if (found.count(ino)) continue;
      ks.push_back(key(ino));
      which.push_back(ino);
    }
    if (ks.empty()) return Status::OK();
    ASSIGN_OR_RETURN(auto vals, txn.multi_get(ks));
    for (size_t i = 0; i < which.size(); i++) found[which[i]] = std::move(vals[i]);
    return Status::OK();
  }

  Status line(const Json& j) {
    std::string s = j.dump();
    s.push_back('\n');
    out_.write(s.data(), static_cast<std::streamsize>(s.size()));
    stats_.bytes += s.size();
    return Status::OK();
  }

  Status record(const Json& j) {
    RETURN_IF_ERROR(line(j));
    if (++stats_.records % kProgressEvery == 0 && opts_.progress) opts_.progress(stats_);
    return Status::OK();
  }

  Status write_key(const kv::KeyValue& kv, const Page& p) {
    const std::string& k = kv.key;
    if (k.empty()) return corrupt("an empty key");
    switch (k[0]) {
      case 'A':
        return write_inode_key(kv, p);
      case 'C':
        return Status::OK();  // counters go in the trailer
      case 'D': {
        uint64_t ino = 0;
        auto len = decode_u64(kv.value);
        if (k.size() != 9 || !keys::parse_u64_suffix(k, 1, ino) || !len.ok()) break;
        Json j = Json::object();
        j["deleted"] = ino;
        j["length"] = *len;
        return record(j);
      }
      case 'L': {
        if (k.size() != 21 || !kv.value.empty()) break;
        Decoder d(std::string_view(k).substr(1));
        int64_t time = d.get_i64();
        uint64_t id = d.get_u64();
        uint32_t size = d.get_u32();
        Json j = Json::object();
        j["dropped"] = id;
        j["size"] = size;
        j["time"] = time;
        return record(j);
      }
      case 'S':
        // Sessions and what they own are not part of a dump.
        if (k.rfind("SE", 0) == 0 || k.rfind("SS", 0) == 0 || k.rfind("SL", 0) == 0) {
          return Status::OK();
        }
        break;
      default:
        if (k == keys::setting()) return Status::OK();  // in the header
        break;
    }
    return corrupt("unknown or malformed key '" + show_key(k) +
                   "' (written by a newer Sluice?); refusing to leave it out");
  }

  Status write_inode_key(const kv::KeyValue& kv, const Page& p) {
    Ino ino = 0;
    const std::string& k = kv.key;
    if (k.size() < 10 || !keys::parse_u64_suffix(k, 1, ino)) {
      return corrupt("malformed inode key '" + show_key(k) + "'");
    }
    const char kind = k[9];
    const std::string_view rest = std::string_view(k).substr(10);
    if (ino != cur_) {
      cur_ = ino;
      RETURN_IF_ERROR(start_inode(ino, kind == 'C', p));
    }
    switch (kind) {
      case 'I':
      case 'S':
        if (!rest.empty()) break;
        return Status::OK();  // in the inode record
      case 'F':
      case 'P':
        if (!rest.empty()) break;
        return Status::OK();  // lock tables belong to sessions
      case 'C': {
        auto slices = decode_slices(kv.value);
        if (rest.size() != 4 || !slices.ok()) break;
        Decoder d(rest);
        Json list = Json::array();
        for (const Slice& s : *slices) {
          Json o = Json::object();
          o["pos"] = s.pos;
          o["id"] = s.id;
          o["size"] = s.size;
          o["off"] = s.off;
          o["len"] = s.len;
          list.push_back(std::move(o));
        }
        Json j = Json::object();
        j["chunk"] = ino;
        j["index"] = d.get_u32();
        j["slices"] = std::move(list);
        stats_.chunks++;
        return record(j);
      }
      case 'D': {
        auto d = decode_dentry(kv.value);
        if (!d.ok()) break;
        Json j = Json::object();
        j["dir"] = ino;
        j["name"] = dump::bytes_to_json(rest);
        j["ino"] = d->second;
        j["type"] = dump::type_name(d->first);
        stats_.entries++;
        return record(j);
      }
      case 'X': {
        if (orphan_) return Status::OK();  // removed with its inode
        Json j = Json::object();
        j["xattr"] = ino;
        j["name"] = dump::bytes_to_json(rest);
        j["value"] = dump::bytes_to_json(kv.value);
        return record(j);
      }
      default:
        break;
    }
    return corrupt("unknown or malformed key '" + show_key(k) + "' of inode " +
                   std::to_string(ino));
  }

  // The inode record, written before any other record of the inode. An inode with no
  // links is only alive for the session holding it open: it is dumped as removed.
  Status start_inode(Ino ino, bool has_chunks, const Page& p) {
    orphan_ = false;
    auto it = p.attrs.find(ino);
    if (it == p.attrs.end() || !it->second) return Status::OK();  // remains of a removed file
    const std::string& raw = *it->second;
    auto a = decode_attr(raw);
    if (!a.ok() || encode_attr(*a) != raw) {
      return corrupt("inode " + std::to_string(ino) + " has malformed attributes");
    }
    if (a->nlink == 0) {
      orphan_ = true;
      orphan_inodes_++;
      if (a->is_file()) {
        orphan_space_ += internal::space_of(a->size);
        if (a->size > 0 || has_chunks) {
          Json j = Json::object();
          j["deleted"] = ino;
          j["length"] = a->size;
          return record(j);
        }
      }
      return Status::OK();
    }
    Json j = Json::object();
    j["inode"] = ino;
    j["type"] = dump::type_name(a->type);
    j["mode"] = dump::mode_to_text(a->mode);
    j["uid"] = a->uid;
    j["gid"] = a->gid;
    j["nlink"] = a->nlink;
    j["size"] = a->size;
    j["rdev"] = a->rdev;
    j["atime"] = a->atime_ns;
    j["mtime"] = a->mtime_ns;
    j["ctime"] = a->ctime_ns;
    j["parent"] = a->parent;
    if (a->type == FileType::kSymlink) {
      auto t = p.targets.find(ino);
      if (t == p.targets.end() || !t->second) {
        return corrupt("symlink inode " + std::to_string(ino) + " has no target");
      }
      j["target"] = dump::bytes_to_json(*t->second);
    }
    stats_.inodes++;
    return record(j);
  }

  std::ostream& out_;
  const DumpOptions& opts_;
  DumpStats stats_;
  std::string setting_;
  std::string from_;  // next scan start
  std::vector<kv::KeyValue> counters_;
  Ino cur_ = 0;  // the inode whose keys are being written
  bool orphan_ = false;
  uint64_t orphan_inodes_ = 0, orphan_space_ = 0;
};

}  // namespace

Result<DumpStats> dump_volume(kv::Engine& engine, std::ostream& out, const DumpOptions& opts) {
  if (opts.page == 0) return Status(Code::kInvalid, "dump page size must be positive");
  Dumper d(out, opts);
  const std::string source = engine.describe();
  if (opts.snapshot) {
    RETURN_IF_ERROR(engine.read([&](kv::Txn& txn) -> Status {
      if (d.wrote_anything()) {
        return Status(Code::kIO,
                      "the engine restarted the dump's read transaction after output began; "
                      "dump again, or use --paged on a volume that is not in use");
      }
      RETURN_IF_ERROR(d.fetch_header(txn));
      RETURN_IF_ERROR(d.write_header(source));
      Page p;
      for (;;) {
        ASSIGN_OR_RETURN(bool more, d.fetch(txn, p));
        if (!more) break;
        RETURN_IF_ERROR(d.write(p));
      }
      RETURN_IF_ERROR(d.fetch_counters(txn));
      return d.write_trailer();
    }));
    return d.stats();
  }
  RETURN_IF_ERROR(engine.read([&](kv::Txn& txn) { return d.fetch_header(txn); }));
  RETURN_IF_ERROR(d.write_header(source));
  for (;;) {
    Page p;
    bool more = false;
    RETURN_IF_ERROR(engine.read([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(more, d.fetch(txn, p));
      return Status::OK();
    }));
    if (!more) break;
    RETURN_IF_ERROR(d.write(p));
  }
  RETURN_IF_ERROR(engine.read([&](kv::Txn& txn) { return d.fetch_counters(txn); }));
  RETURN_IF_ERROR(d.write_trailer());
  return d.stats();
}

}  // namespace sluice::meta
