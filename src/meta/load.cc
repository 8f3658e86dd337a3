// load_volume: a dump (docs/dump-format.md) read line by line into an empty engine.
//
// Every record is checked (known fields only, types and ranges, names) and turned into
// the keys it stands for; the keys are committed in batches of bounded size. The first
// transaction writes the `loading` marker with the settings, the last one writes the
// counters and deletes the marker: a load that stops anywhere in between leaves a volume
// that cannot be opened.
#include <algorithm>
#include <initializer_list>
#include <limits>

#include "common/clock.h"
#include "common/encoding.h"
#include "meta/dump.h"
#include "meta/dump_codec.h"
#include "meta/internal.h"
#include "meta/keys.h"

namespace sluice::meta {

namespace {

using dump::Json;

constexpr uint64_t kProgressEvery = 10000;  // records

// Field access with errors that name the field; the caller prefixes the line number.
class Fields {
 public:
  Fields(const Json& j, const char* kind) : j_(j), kind_(kind) {}

  // Fails on any field not in `allowed`.
  Status only(std::initializer_list<const char*> allowed) const {
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      bool ok =
          std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return it.key() == a; });
      if (!ok) return bad("unknown field '" + it.key() + "'");
    }
    return Status::OK();
  }
  const Json* find(const char* name) const {
    auto it = j_.find(name);
    return it == j_.end() ? nullptr : &*it;
  }
  Result<const Json*> need(const char* name) const {
    const Json* v = find(name);
    if (!v) return bad(std::string("missing field '") + name + "'");
    return v;
  }
  Result<uint64_t> u64(const char* name,
                       uint64_t max = std::numeric_limits<uint64_t>::max()) const {
    ASSIGN_OR_RETURN(const Json* v, need(name));
    if (!v->is_number_unsigned() || v->get<uint64_t>() > max) {
      return bad(std::string("field '") + name + "' must be an integer from 0 to " +
                 std::to_string(max));
    }
    return v->get<uint64_t>();
  }
  Result<uint32_t> u32(const char* name) const {
    ASSIGN_OR_RETURN(uint64_t v, u64(name, std::numeric_limits<uint32_t>::max()));
    return static_cast<uint32_t>(v);
  }
  Result<uint64_t> ino(const char* name) const {
    ASSIGN_OR_RETURN(uint64_t v, u64(name));
    if (v == 0) return bad(std::string("field '") + name + "' must be an inode number above 0");
    return v;
  }
  Result<int64_t> i64(const char* name) const {
    ASSIGN_OR_RETURN(const Json* v, need(name));
    if (!v->is_number_integer() ||
        (v->is_number_unsigned() &&
         v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))) {
      return bad(std::string("field '") + name + "' must be a 64-bit integer");
    }
    return v->get<int64_t>();
  }
  Result<std::string> bytes(const char* name) const {
    ASSIGN_OR_RETURN(const Json* v, need(name));
    auto b = dump::bytes_from_json(*v, name);
    if (!b.ok()) return bad(b.status().message());
    return std::move(b).value();
  }
  Result<FileType> type(const char* name) const {
    ASSIGN_OR_RETURN(const Json* v, need(name));
    std::optional<FileType> t;
    if (v->is_string()) t = dump::type_from_name(v->get_ref<const std::string&>());
    if (!t) {
      return bad(std::string("field '") + name +
                 "' must be one of file, dir, symlink, fifo, blockdev, chardev, socket");
    }
    return *t;
  }
  Status bad(const std::string& what) const {
    return Status(Code::kInvalid, std::string(kind_) + " record: " + what);
  }

 private:
  const Json& j_;
  const char* kind_;
};

class Loader {
 public:
  Loader(kv::Engine& engine, const LoadOptions& opts) : engine_(engine), opts_(opts) {}

  // Whether the engine was claimed (the marker written): a failure leaves it incomplete.
  bool claimed() const { return claimed_; }

  Result<DumpStats> run(std::istream& in) {
    std::string text;
    bool header = false, ended = false;
    while (std::getline(in, text)) {
      line_++;
      stats_.bytes += text.size() + 1;
      if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
      Json j;
      try {
        j = Json::parse(text);
      } catch (const std::exception& e) {
        return at_line(Status(Code::kInvalid, std::string("not JSON: ") + e.what()));
      }
      if (!j.is_object()) return at_line(Status(Code::kInvalid, "a record must be a JSON object"));
      if (ended) return at_line(Status(Code::kInvalid, "data after the end record"));
      Status st;
      if (!header) {
        st = start(j);
        header = true;
      } else if (j.contains("end")) {
        st = finish(j);
        ended = true;
      } else {
        st = record(j);
      }
      if (!st.ok()) return st.code() == Code::kInvalid ? at_line(st) : st;
    }
    if (in.bad()) return Status(Code::kIO, "reading the dump failed");
    if (!header) return Status(Code::kInvalid, "the dump is empty");
    if (!ended) {
      return Status(Code::kInvalid, "the dump is truncated (no end record after line " +
                                        std::to_string(line_) + ")");
    }
    return stats_;
  }

 private:
  Status at_line(const Status& st) const {
    return Status(st.code(), "dump line " + std::to_string(line_) + ": " + st.message());
  }

  // The header: checks the version and the settings, then claims the empty engine.
  Status start(const Json& j) {
    Fields f(j, "header");
    if (!j.contains("sluice_dump")) {
      return Status(Code::kInvalid, "not a Sluice dump (the first record has no 'sluice_dump')");
    }
    ASSIGN_OR_RETURN(uint64_t version, f.u64("sluice_dump"));
    if (version != kDumpVersion) {
      return Status(Code::kInvalid, "dump format version " + std::to_string(version) +
                                        " is not supported (this sluice reads version " +
                                        std::to_string(kDumpVersion) + ")");
    }
    RETURN_IF_ERROR(f.only({"sluice_dump", "volume", "source", "dumped_ns", "snapshot"}));
    ASSIGN_OR_RETURN(const Json* vol, f.need("volume"));
    std::string setting = vol->dump();
    if (!vol->is_object() || !Format::from_json(setting)) {
      return f.bad("'volume' is not a valid volume settings object");
    }
    Json marker = Json::object();
    marker["source"] = j.value("source", std::string());
    marker["started_ns"] = now_ns();
    RETURN_IF_ERROR(engine_.transact([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(auto any, txn.scan("", "", 1));
      if (!any.empty()) {
        if (any[0].key == keys::loading()) {
          return Status(
              Code::kExists,
              engine_.describe() + " holds an unfinished load; load into an empty database");
        }
        return Status(Code::kExists,
                      engine_.describe() + " is not empty; load needs an empty database");
      }
      RETURN_IF_ERROR(txn.put(keys::loading(), marker.dump()));
      return txn.put(keys::setting(), setting);
    }));
    claimed_ = true;
    return Status::OK();
  }

  Status record(const Json& j) {
    if (j.contains("inode")) {
      RETURN_IF_ERROR(inode(j));
    } else if (j.contains("dir")) {
      RETURN_IF_ERROR(entry(j));
    } else if (j.contains("chunk")) {
      RETURN_IF_ERROR(chunk(j));
    } else if (j.contains("xattr")) {
      RETURN_IF_ERROR(xattr(j));
    } else if (j.contains("deleted")) {
      Fields f(j, "deleted");
      RETURN_IF_ERROR(f.only({"deleted", "length"}));
      ASSIGN_OR_RETURN(Ino ino, f.ino("deleted"));
      ASSIGN_OR_RETURN(uint64_t len, f.u64("length"));
      RETURN_IF_ERROR(put(keys::deleted_file(ino), encode_u64(len)));
    } else if (j.contains("dropped")) {
      Fields f(j, "dropped");
      RETURN_IF_ERROR(f.only({"dropped", "size", "time"}));
      ASSIGN_OR_RETURN(uint64_t id, f.u64("dropped"));
      ASSIGN_OR_RETURN(uint32_t size, f.u32("size"));
      ASSIGN_OR_RETURN(int64_t time, f.i64("time"));
      RETURN_IF_ERROR(put(keys::delayed_slice(time, id, size), ""));
    } else {
      return Status(Code::kInvalid,
                    "unknown record (no inode, dir, chunk, xattr, deleted, "
                    "dropped or end field)");
    }
    if (++stats_.records % kProgressEvery == 0 && opts_.progress) opts_.progress(stats_);
    return Status::OK();
  }

  Status inode(const Json& j) {
    Fields f(j, "inode");
    RETURN_IF_ERROR(f.only({"inode", "type", "mode", "uid", "gid", "nlink", "size", "rdev", "atime",
                            "mtime", "ctime", "parent", "target"}));
    ASSIGN_OR_RETURN(Ino ino, f.ino("inode"));
    Attr a;
    ASSIGN_OR_RETURN(a.type, f.type("type"));
    ASSIGN_OR_RETURN(const Json* mode, f.need("mode"));
    auto m = dump::mode_from_text(*mode);
    if (!m.ok()) return f.bad(m.status().message());
    a.mode = *m;
    ASSIGN_OR_RETURN(a.uid, f.u32("uid"));
    ASSIGN_OR_RETURN(a.gid, f.u32("gid"));
    ASSIGN_OR_RETURN(a.nlink, f.u32("nlink"));
    ASSIGN_OR_RETURN(a.size, f.u64("size"));
    ASSIGN_OR_RETURN(a.rdev, f.u32("rdev"));
    ASSIGN_OR_RETURN(a.atime_ns, f.i64("atime"));
    ASSIGN_OR_RETURN(a.mtime_ns, f.i64("mtime"));
    ASSIGN_OR_RETURN(a.ctime_ns, f.i64("ctime"));
    ASSIGN_OR_RETURN(a.parent, f.u64("parent"));
    if (a.nlink == 0) return f.bad("nlink 0 (a removed file is a 'deleted' record)");
    if (a.type == FileType::kSymlink) {
      ASSIGN_OR_RETURN(std::string target, f.bytes("target"));
      if (target.empty() || target.size() > kMaxSymlink) {
        return f.bad("symlink target must be 1 to " + std::to_string(kMaxSymlink) + " bytes");
      }
      RETURN_IF_ERROR(put(keys::symlink(ino), target));
    } else if (f.find("target")) {
      return f.bad("only a symlink has a target");
    }
    stats_.inodes++;
    return put(keys::attr(ino), encode_attr(a));
  }

  Status entry(const Json& j) {
    Fields f(j, "entry");
    RETURN_IF_ERROR(f.only({"dir", "name", "ino", "type"}));
    ASSIGN_OR_RETURN(Ino dir, f.ino("dir"));
    ASSIGN_OR_RETURN(std::string name, f.bytes("name"));
    Status st = internal::check_name(name);
    if (!st.ok()) return f.bad("bad name: " + st.message());
    ASSIGN_OR_RETURN(Ino ino, f.ino("ino"));
    ASSIGN_OR_RETURN(FileType type, f.type("type"));
    stats_.entries++;
    return put(keys::dentry(dir, name), encode_dentry(type, ino));
  }

  Status chunk(const Json& j) {
    Fields f(j, "chunk");
    RETURN_IF_ERROR(f.only({"chunk", "index", "slices"}));
    ASSIGN_OR_RETURN(Ino ino, f.ino("chunk"));
    ASSIGN_OR_RETURN(uint32_t index, f.u32("index"));
    ASSIGN_OR_RETURN(const Json* list, f.need("slices"));
    if (!list->is_array() || list->empty()) return f.bad("'slices' must be a non-empty array");
    std::string value;
    for (const Json& o : *list) {
      if (!o.is_object()) return f.bad("each slice must be an object");
      Fields s(o, "slice");
      RETURN_IF_ERROR(s.only({"pos", "id", "size", "off", "len"}));
      Slice sl;
      ASSIGN_OR_RETURN(sl.pos, s.u32("pos"));
      ASSIGN_OR_RETURN(sl.id, s.u64("id"));
      ASSIGN_OR_RETURN(sl.size, s.u32("size"));
      ASSIGN_OR_RETURN(sl.off, s.u32("off"));
      ASSIGN_OR_RETURN(sl.len, s.u32("len"));
      if (uint64_t{sl.pos} + sl.len > kChunkSize) return s.bad("extends past its 64 MiB chunk");
      value += encode_slice(sl);
    }
    stats_.chunks++;
    return put(keys::chunk(ino, index), value);
  }

  Status xattr(const Json& j) {
    Fields f(j, "xattr");
    RETURN_IF_ERROR(f.only({"xattr", "name", "value"}));
    ASSIGN_OR_RETURN(Ino ino, f.ino("xattr"));
    ASSIGN_OR_RETURN(std::string name, f.bytes("name"));
    ASSIGN_OR_RETURN(std::string value, f.bytes("value"));
    if (name.empty() || name.size() > kMaxXattrName) return f.bad("bad xattr name length");
    if (value.size() > kMaxXattrValue) return f.bad("xattr value over 64 KiB");
    return put(keys::xattr(ino, name), value);
  }

  // The trailer: the record count proves nothing was lost; the counters come last.
  Status finish(const Json& j) {
    Fields f(j, "end");
    RETURN_IF_ERROR(f.only({"end", "counters"}));
    ASSIGN_OR_RETURN(uint64_t n, f.u64("end"));
    if (n != stats_.records) {
      return f.bad("the dump says " + std::to_string(n) + " records but " +
                   std::to_string(stats_.records) + " were read");
    }
    ASSIGN_OR_RETURN(const Json* counters, f.need("counters"));
    if (!counters->is_object()) return f.bad("'counters' must be an object");
    std::vector<kv::KeyValue> final_puts;
    for (auto it = counters->begin(); it != counters->end(); ++it) {
      if (!it->is_number_unsigned() || it.key().empty()) {
        return f.bad("counter '" + it.key() + "' must be a non-negative integer");
      }
      final_puts.push_back({keys::counter(it.key()), encode_u64(it->get<uint64_t>())});
    }
    RETURN_IF_ERROR(flush());
    RETURN_IF_ERROR(engine_.transact([&](kv::Txn& txn) -> Status {
      for (const auto& kv : final_puts) RETURN_IF_ERROR(txn.put(kv.key, kv.value));
      return txn.del(keys::loading());
    }));
    if (opts_.progress) opts_.progress(stats_);
    return Status::OK();
  }

  Status put(std::string key, std::string value) {
    batch_bytes_ += key.size() + value.size();
    batch_.push_back({std::move(key), std::move(value)});
    if (batch_.size() >= opts_.batch_keys || batch_bytes_ >= opts_.batch_bytes) return flush();
    return Status::OK();
  }

  Status flush() {
    if (batch_.empty()) return Status::OK();
    RETURN_IF_ERROR(engine_.transact([&](kv::Txn& txn) -> Status {
      for (const auto& kv : batch_) RETURN_IF_ERROR(txn.put(kv.key, kv.value));
      return Status::OK();
    }));
    batch_.clear();
    batch_bytes_ = 0;
    return Status::OK();
  }

  kv::Engine& engine_;
  const LoadOptions& opts_;
  DumpStats stats_;
  uint64_t line_ = 0;
  std::vector<kv::KeyValue> batch_;
  size_t batch_bytes_ = 0;
  bool claimed_ = false;
};

}  // namespace

Result<DumpStats> load_volume(kv::Engine& engine, std::istream& in, const LoadOptions& opts) {
  if (opts.batch_keys == 0) return Status(Code::kInvalid, "load batch size must be positive");
  Loader l(engine, opts);
  auto r = l.run(in);
  if (!r.ok() && l.claimed()) {
    return Status(r.status().code(), r.status().message() + "; " + engine.describe() +
                                         " now holds an incomplete volume that cannot be "
                                         "mounted");
  }
  return r;
}

}  // namespace sluice::meta
