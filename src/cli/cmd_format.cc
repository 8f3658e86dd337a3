// sluice format: creates a volume — checks that the object store takes writes, writes
// the settings to the metadata engine and a copy of them to the store
// (<NAME>/sluice_format.json, for recovery). With --force on a formatted volume it
// updates only the settings given on the command line. With --encrypt-rsa-key a fresh
// volume gets a random data key, stored wrapped by that RSA key (cli/encryption.h).
#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <memory>
#include <random>

#include "cli/cli.h"
#include "cli/encryption.h"
#include "kv/engine.h"
#include "meta/meta.h"
#include "object/block_codec.h"
#include "object/store.h"

namespace sluice::cli {

namespace {

constexpr uint64_t kMinBlock = 64 << 10;
constexpr uint64_t kMaxBlock = 16 << 20;

struct FormatArgs {
  std::string meta_url, name, storage, block_size = "4M", compression = "none";
  std::string capacity = "0";
  std::string rsa_key;  // PEM path: encrypt the volume
  uint64_t inodes = 0;
  uint32_t trash_days = 1;
  bool force = false;
  // Options given explicitly (a forced re-format changes only these).
  CLI::Option *o_storage, *o_block, *o_compression, *o_capacity, *o_inodes, *o_trash;
};

std::string default_storage() { return "file://" + home_dir() + "/.sluice/local"; }

Status check_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 63 && isalnum(static_cast<unsigned char>(name[0]));
  for (char c : name) {
    ok = ok && (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
  }
  if (ok) return Status::OK();
  return Status(Code::kInvalid, "invalid volume name '" + name +
                                    "': use 1 to 63 letters, digits, '-', '_' or '.', "
                                    "starting with a letter or digit");
}

// Opens the store, then puts, reads back and deletes a small object under the volume's
// prefix. A store whose container is missing (an S3 bucket) is created first.
Result<std::shared_ptr<object::Store>> open_and_probe(const std::string& url,
                                                      const std::string& name) {
  auto fail = [&](const Status& st) {
    return Status(st.code(), "cannot write to storage " + redact_url(url) + ": " + st.message());
  };
  auto store = object::open_store(url);
  if (!store.ok()) {
    // An unknown scheme is a usage error, not a storage failure: say it as it is.
    if (store.status().is(Code::kInvalid)) return store.status();
    return fail(store.status());
  }
  std::string key = fmt::format("{}/sluice_probe_{:016x}", name, std::random_device{}());
  const std::string payload = "sluice storage probe";
  Status put = (*store)->put(key, payload);
  if (put.is(Code::kNotFound)) {  // the bucket is missing: create it and try again
    if (Status st = (*store)->create(); !st.ok()) return fail(st);
    put = (*store)->put(key, payload);
  }
  if (!put.ok()) return fail(put);
  auto got = (*store)->get(key);
  if (!got.ok()) return fail(got.status());
  if (*got != payload) return fail(Status(Code::kCorruption, "a probe object read back wrong"));
  if (Status st = (*store)->del(key); !st.ok()) return fail(st);
  return store;
}

// The settings formatted before at this URL, if any. A missing database is a fresh
// volume; any other failure (an unknown scheme, a database of something else) stops
// format before it writes anywhere.
Result<std::optional<meta::Format>> existing_format(const std::string& url) {
  auto engine = kv::open_engine(url, false);
  if (!engine.ok()) {
    if (engine.status().is(Code::kNotFound)) return std::optional<meta::Format>();
    return engine.status();
  }
  auto m = meta::Meta::open(*engine);
  if (!m.ok()) {
    if (m.status().is(Code::kNotFound)) return std::optional<meta::Format>();
    return m.status();
  }
  return std::optional<meta::Format>((*m)->format());
}

Status run_format(FormatArgs& a) {
  RETURN_IF_ERROR(check_name(a.name));
  std::string meta_url = absolute_url(a.meta_url);
  ASSIGN_OR_RETURN(std::optional<meta::Format> old, existing_format(meta_url));
  if (old && !a.force) {
    return Status(Code::kExists, "volume '" + old->name + "' is already formatted in " +
                                     redact_url(meta_url) +
                                     " (use --force to update its settings)");
  }
  if (old && old->name != a.name) {
    return Status(Code::kInvalid, "the volume in " + redact_url(meta_url) + " is named '" +
                                      old->name + "', not '" + a.name +
                                      "' (a volume cannot be renamed)");
  }

  // A fresh volume takes every option; an existing one keeps what was not given.
  meta::Format fmt = old.value_or(meta::Format{});
  fmt.name = a.name;
  bool fresh = !old.has_value();
  if (fresh || a.o_storage->count() > 0) {
    fmt.storage = absolute_url(a.storage.empty() ? default_storage() : a.storage);
  }
  if (fresh || a.o_block->count() > 0) {
    ASSIGN_OR_RETURN(uint64_t bs, parse_size(a.block_size, "--block-size"));
    if (bs < kMinBlock || bs > kMaxBlock || (bs & (bs - 1)) != 0) {
      return Status(Code::kInvalid, "invalid --block-size " + a.block_size +
                                        ": use a power of two from 64K to 16M");
    }
    fmt.block_size = static_cast<uint32_t>(bs);
  }
  if (fresh || a.o_compression->count() > 0) {
    ASSIGN_OR_RETURN(auto c, object::parse_compression(a.compression));
    fmt.compression = object::compression_name(c);
  }
  if (fresh || a.o_capacity->count() > 0) {
    ASSIGN_OR_RETURN(fmt.capacity, parse_size(a.capacity, "--capacity"));
  }
  if (fresh || a.o_inodes->count() > 0) fmt.inodes = a.inodes;
  if (fresh || a.o_trash->count() > 0) fmt.trash_days = a.trash_days;
  if (!a.rsa_key.empty()) {
    if (!fresh) {
      return Status(Code::kInvalid,
                    "encryption is chosen only when a volume is first formatted; volume '" +
                        fmt.name + "' exists (encryption: " + encryption_text(fmt) + ")");
    }
    ASSIGN_OR_RETURN(object::RsaKey rsa, load_rsa_key(a.rsa_key));
    ASSIGN_OR_RETURN(auto key, object::new_volume_key(rsa));
    fmt.encryption = object::kEncryptionAesGcmRsa;
    fmt.encryption_key = key.first.wrapped;
    fmt.encryption_key_fingerprint = key.first.fingerprint;
    // The key must open again before anything is written with it.
    RETURN_IF_ERROR(volume_cipher(fmt, a.rsa_key).status());
  }

  ASSIGN_OR_RETURN(auto store, open_and_probe(fmt.storage, fmt.name));

  ASSIGN_OR_RETURN(auto engine, kv::open_engine(meta_url, true));
  RETURN_IF_ERROR(meta::Meta::format(*engine, fmt, a.force));
  ASSIGN_OR_RETURN(auto m, meta::Meta::open(engine));
  const meta::Format& saved = m->format();
  if (Status st = store->put(saved.name + "/sluice_format.json", saved.to_json()); !st.ok()) {
    return Status(st.code(), "formatted, but cannot store the settings copy in " +
                                 redact_url(saved.storage) + ": " + st.message());
  }
  printf("%s volume '%s' (uuid %s): metadata %s, storage %s, block size %s, compression %s, "
         "encryption %s\n",
         fresh ? "formatted" : "updated", saved.name.c_str(), saved.uuid.c_str(),
         redact_url(meta_url).c_str(), redact_url(saved.storage).c_str(),
         format_size(saved.block_size).c_str(), saved.compression.c_str(),
         encryption_text(saved).c_str());
  return Status::OK();
}

}  // namespace

Command add_format(CLI::App& app) {
  auto a = std::make_shared<FormatArgs>();
  CLI::App* sub = add_command(
      app, "format", "Create a volume (or update its settings)",
      "Create a volume: write its settings into the metadata engine at META_URL, after "
      "checking that the object store at --storage takes writes (a test object is put, "
      "read back and deleted under NAME/). A copy of the settings is kept in the store at "
      "NAME/sluice_format.json for recovery. File data is stored under NAME/chunks/.\n\n"
      "On a volume that is already formatted, format fails unless --force is given; with "
      "--force only the options given on the command line change (block size and "
      "compression are fixed once data is written).\n\n"
      "With --encrypt-rsa-key every data block is encrypted (AES-256-GCM) with a random "
      "data key that is stored only wrapped by the given RSA key; mounting then needs the "
      "same key. Encryption is chosen once, when the volume is first formatted. Losing the "
      "RSA key loses the data. See docs/encryption.md.\n\n"
      "Sizes take an optional binary unit suffix: K, M, G, T (4M = 4 MiB).",
      "  sluice format sqlite3:///var/lib/sluice/models.db models --storage file:///data/objects\n"
      "  sluice format sqlite3://models.db models --compression zstd --capacity 10T\n"
      "  sluice format --force sqlite3://models.db models --trash-days 7\n"
      "  SLUICE_RSA_PASSPHRASE=... sluice format sqlite3://models.db models "
      "--encrypt-rsa-key key.pem");
  sub->add_option("META_URL", a->meta_url,
                  "Metadata engine URL: sqlite3://PATH (the database file is created), "
                  "postgres://USER@HOST:PORT/DB[?prefix=NAME] (the database and table are "
                  "created if missing), redis://HOST:PORT/DB[?prefix=NAME], "
                  "etcd://HOST:PORT[,HOST:PORT...]/PREFIX or mem://NAME (in-process, for "
                  "tests)")
      ->required();
  sub->add_option("NAME", a->name,
                  "Volume name: 1-63 letters, digits, '-', '_' or '.'; the key prefix of "
                  "the volume's objects")
      ->required();
  a->o_storage = sub->add_option("--storage", a->storage,
                                 "Object store URL: file://DIR (a local directory), "
                                 "s3://HOST[:PORT]/BUCKET[/PREFIX] (https; the bucket is "
                                 "created if missing), s3+http://... (plain http) or mem://NAME "
                                 "(default: file://$HOME/.sluice/local)");
  a->o_block = sub->add_option("--block-size", a->block_size,
                               "Size of the objects file data is cut into: a power of two "
                               "from 64K to 16M")
                   ->capture_default_str();
  a->o_compression = sub->add_option("--compression", a->compression,
                                     "Compression of data blocks: none, lz4 or zstd")
                         ->check(CLI::IsMember({"none", "lz4", "zstd"}))
                         ->capture_default_str();
  a->o_capacity = sub->add_option("--capacity", a->capacity,
                                  "Space limit of the volume (writes past it fail with ENOSPC); "
                                  "0 means unlimited")
                      ->capture_default_str();
  a->o_inodes = sub->add_option("--inodes", a->inodes,
                                "Limit on the number of files and directories; 0 means "
                                "unlimited")
                    ->capture_default_str();
  a->o_trash = sub->add_option("--trash-days", a->trash_days,
                               "Days that deleted data is kept before its objects are removed")
                   ->capture_default_str();
  sub->add_option("--encrypt-rsa-key", a->rsa_key,
                  "Encrypt the volume's data with a key wrapped by the RSA private key in "
                  "this PEM file (passphrase, if any, in $SLUICE_RSA_PASSPHRASE); only when "
                  "the volume is first formatted");
  sub->add_flag("--force", a->force,
                "Update the settings of an already formatted volume instead of failing");
  return {sub, [a] { return run_format(*a); }};
}

}  // namespace sluice::cli
