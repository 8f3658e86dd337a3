// object: the Store interface over which all file data lives.
//
// Keys are '/'-separated strings. Objects are immutable once written: a put either
// stores the whole object or nothing (file:// writes a temp file and renames it).
// Backends: file://DIR, mem://NAME, s3://HOST/BUCKET (s3_store.h); decorators wrap a
// Store (see wrapper.h).
// All methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::object {

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

struct SplitObject {
  std::string head;
  std::string body;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Status put(const std::string& key, std::string_view data) = 0;
  // Reads [off, off+len) of the object; len < 0 reads to the end. A range past the end
  // is truncated to what exists. A missing key is kNotFound.
  virtual Result<std::string> get(const std::string& key, uint64_t off = 0,
                                  int64_t len = -1) = 0;
  virtual Result<ObjectInfo> head(const std::string& key) = 0;
  // The whole object in two parts: head holds its first head_len bytes (all of it when it
  // is shorter), body the rest. A block's reader keeps the body (the block's data after
  // its header) as the cached block without copying it out of the object. This default
  // splits get()'s result (which moves the body's bytes once); stores that receive the
  // object into memory themselves fill the two parts directly.
  virtual Result<SplitObject> get_split(const std::string& key, size_t head_len);
  // Deleting a missing key succeeds.
  virtual Status del(const std::string& key) = 0;
  // Objects whose key starts with prefix and is > start_after, ascending; at most limit
  // (0 = no limit).
  virtual Result<std::vector<ObjectInfo>> list(const std::string& prefix,
                                               const std::string& start_after = "",
                                               size_t limit = 0) = 0;
  // Human readable location, credentials removed.
  virtual std::string describe() const = 0;
  // Creates the container the store lives in where that is a separate step (an S3
  // bucket); `sluice format` calls it when a put finds the container missing (kNotFound).
  // Stores that need nothing created succeed.
  virtual Status create() { return Status::OK(); }
};

// Validates an object key: kInvalid unless it is non-empty, has no leading '/', no empty,
// "." or ".." component and no NUL byte. Every backend checks keys with it.
Status check_key(const std::string& key);

// Opens a store by URL (file://DIR, mem://NAME). Unknown schemes fail with a one-line
// kInvalid message listing the supported ones.
Result<std::shared_ptr<Store>> open_store(const std::string& url);

// Forwarding base for decorators (retry, prefix, fault injection, metrics, ...):
// override only what the decorator changes. get_split is not forwarded: by default it
// goes through the decorator's get(), so a decorator that changes get() (counts, retries,
// faults) sees every read; one that overrides get_split as well keeps the split.
class StoreWrapper : public Store {
 public:
  explicit StoreWrapper(std::shared_ptr<Store> inner) : inner_(std::move(inner)) {}
  Status put(const std::string& key, std::string_view data) override {
    return inner_->put(key, data);
  }
  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override {
    return inner_->get(key, off, len);
  }
  Result<ObjectInfo> head(const std::string& key) override { return inner_->head(key); }
  Status del(const std::string& key) override { return inner_->del(key); }
  Result<std::vector<ObjectInfo>> list(const std::string& prefix, const std::string& start_after,
                                       size_t limit) override {
    return inner_->list(prefix, start_after, limit);
  }
  std::string describe() const override { return inner_->describe(); }
  Status create() override { return inner_->create(); }

 protected:
  std::shared_ptr<Store> inner_;
};

}  // namespace sluice::object
