// Meta: format, open, and batched allocation of inode and slice ids.
#include "meta/meta.h"

#include <random>

#include "common/clock.h"
#include "common/logging.h"
#include "meta/internal.h"
#include "meta/keys.h"

namespace sluice::meta {

namespace {
constexpr uint64_t kInodeBatch = 1024;
constexpr uint64_t kSliceBatch = 1024;

std::string new_uuid() {
  std::random_device rd;
  std::mt19937_64 rng(rd());
  uint64_t a = rng(), b = rng();
  char buf[40];
  snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", uint32_t(a >> 32),
           uint32_t(a >> 16) & 0xffff, uint32_t(a) & 0xfff, (uint32_t(b >> 48) & 0x3fff) | 0x8000,
           static_cast<unsigned long long>(b & 0xffffffffffffull));
  return buf;
}
}  // namespace

Status Meta::format(kv::Engine& engine, const Format& in, bool force) {
  Format fmt = in;
  if (fmt.uuid.empty()) fmt.uuid = new_uuid();
  if (fmt.created_ns == 0) fmt.created_ns = now_ns();
  return engine.transact([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(auto old, txn.get(keys::setting()));
    if (old) {
      auto prev = Format::from_json(*old);
      if (!force) {
        return Status(Code::kExists, "volume '" + (prev ? prev->name : std::string("?")) +
                                         "' is already formatted here (use --force to "
                                         "update its settings)");
      }
      if (prev) {
        if (prev->block_size != fmt.block_size || prev->compression != fmt.compression) {
          return Status(Code::kInvalid,
                        "block size and compression of a formatted volume cannot change");
        }
        if (prev->encryption != fmt.encryption || prev->encryption_key != fmt.encryption_key ||
            prev->encryption_key_fingerprint != fmt.encryption_key_fingerprint) {
          return Status(Code::kInvalid, "the encryption of a formatted volume cannot change");
        }
        fmt.uuid = prev->uuid;
        fmt.created_ns = prev->created_ns;
      }
      return txn.put(keys::setting(), fmt.to_json());
    }
    RETURN_IF_ERROR(txn.put(keys::setting(), fmt.to_json()));
    int64_t now = now_ns();
    Attr root;
    root.type = FileType::kDirectory;
    root.mode = 0777;
    root.nlink = 2;
    root.size = 4096;
    root.atime_ns = root.mtime_ns = root.ctime_ns = now;
    root.parent = kRootIno;
    RETURN_IF_ERROR(internal::save_attr(txn, kRootIno, root));
    RETURN_IF_ERROR(txn.put(keys::counter(keys::kNextInode), encode_u64(kRootIno + 1)));
    RETURN_IF_ERROR(txn.put(keys::counter(keys::kNextSlice), encode_u64(1)));
    return Status::OK();
  });
}

Result<std::unique_ptr<Meta>> Meta::open(std::shared_ptr<kv::Engine> engine) {
  std::optional<std::string> raw, loading;
  RETURN_IF_ERROR(engine->read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(auto vals, txn.multi_get({keys::setting(), keys::loading()}));
    raw = std::move(vals[0]);
    loading = std::move(vals[1]);
    return Status::OK();
  }));
  if (loading) {
    return Status(Code::kInvalid, engine->describe() +
                                      " holds an unfinished 'sluice load' (it failed or is "
                                      "still running); load the dump again into an empty database");
  }
  if (!raw) {
    return Status(Code::kNotFound, engine->describe() + " is not a Sluice volume (run 'sluice format' first)");
  }
  auto fmt = Format::from_json(*raw);
  if (!fmt) return Status(Code::kCorruption, "volume settings in " + engine->describe() + " are unreadable");
  return std::unique_ptr<Meta>(new Meta(std::move(engine), std::move(*fmt)));
}

Result<uint64_t> Meta::alloc_id(const char* counter, uint64_t batch, uint64_t& next,
                                uint64_t& end) {
  std::lock_guard<std::mutex> g(id_mu_);
  if (next >= end) {
    uint64_t start = 0;
    RETURN_IF_ERROR(engine_->transact([&](kv::Txn& txn) -> Status {
      ASSIGN_OR_RETURN(int64_t cur, internal::get_counter(txn, counter));
      start = static_cast<uint64_t>(cur);
      return txn.put(keys::counter(counter), encode_u64(start + batch));
    }));
    next = start;
    end = start + batch;
  }
  return next++;
}

Result<Ino> Meta::next_inode() { return alloc_id(keys::kNextInode, kInodeBatch, next_ino_, end_ino_); }

Result<uint64_t> Meta::new_slice_id() {
  return alloc_id(keys::kNextSlice, kSliceBatch, next_slice_, end_slice_);
}

bool Meta::is_open_here(Ino ino) {
  std::lock_guard<std::mutex> g(open_mu_);
  auto it = open_.find(ino);
  return it != open_.end() && it->second > 0;
}

namespace internal {

Result<Attr> load_attr(kv::Txn& txn, Ino ino) {
  ASSIGN_OR_RETURN(auto v, txn.get(keys::attr(ino)));
  if (!v) return Status(Code::kNotFound, "no inode " + std::to_string(ino));
  return decode_attr(*v);
}

Status save_attr(kv::Txn& txn, Ino ino, const Attr& attr) {
  return txn.put(keys::attr(ino), encode_attr(attr));
}

Result<int64_t> get_counter(kv::Txn& txn, std::string_view name) {
  ASSIGN_OR_RETURN(auto v, txn.get(keys::counter(name)));
  if (!v) return int64_t{0};
  ASSIGN_OR_RETURN(uint64_t u, decode_u64(*v));
  return static_cast<int64_t>(u);
}

Status add_counter(kv::Txn& txn, std::string_view name, int64_t delta) {
  if (delta == 0) return Status::OK();
  ASSIGN_OR_RETURN(int64_t cur, get_counter(txn, name));
  return txn.put(keys::counter(name), encode_u64(static_cast<uint64_t>(cur + delta)));
}

}  // namespace internal

}  // namespace sluice::meta
