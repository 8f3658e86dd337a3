// mem://NAME store: objects in an ordered map, for tests.
//
// Named stores share one Space per process, kept for the life of the process, so a test
// can "remount" a volume by opening the same URL again. An empty NAME gets a private
// Space that dies with its last store. Object bytes are immutable shared strings, so
// get copies the requested range outside the lock.
#include "object/mem_store.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "common/clock.h"

namespace sluice::object {

namespace {

struct Object {
  std::shared_ptr<const std::string> data;
  int64_t mtime_ns = 0;
};

struct Space {
  std::mutex mu;  // guards objects
  std::map<std::string, Object> objects;
};

class MemStore : public Store {
 public:
  MemStore(std::string name, std::shared_ptr<Space> space)
      : name_(std::move(name)), space_(std::move(space)) {}

  Status put(const std::string& key, std::string_view data) override {
    RETURN_IF_ERROR(check_key(key));
    Object obj{std::make_shared<const std::string>(data), now_ns()};
    std::lock_guard lk(space_->mu);
    space_->objects[key] = std::move(obj);
    return Status::OK();
  }

  Result<std::string> get(const std::string& key, uint64_t off, int64_t len) override {
    RETURN_IF_ERROR(check_key(key));
    std::shared_ptr<const std::string> data;
    {
      std::lock_guard lk(space_->mu);
      auto it = space_->objects.find(key);
      if (it == space_->objects.end()) return not_found(key);
      data = it->second.data;
    }
    if (off >= data->size()) return std::string();
    uint64_t n = data->size() - off;
    if (len >= 0) n = std::min(n, static_cast<uint64_t>(len));
    return data->substr(off, n);
  }

  Result<ObjectInfo> head(const std::string& key) override {
    RETURN_IF_ERROR(check_key(key));
    std::lock_guard lk(space_->mu);
    auto it = space_->objects.find(key);
    if (it == space_->objects.end()) return not_found(key);
    return ObjectInfo{key, it->second.data->size(), it->second.mtime_ns};
  }

  Status del(const std::string& key) override {
    RETURN_IF_ERROR(check_key(key));
    std::lock_guard lk(space_->mu);
    space_->objects.erase(key);
    return Status::OK();
  }

  Result<std::vector<ObjectInfo>> list(const std::string& prefix, const std::string& start_after,
                                       size_t limit) override {
    std::vector<ObjectInfo> out;
    std::lock_guard lk(space_->mu);
    auto& objs = space_->objects;
    auto it = start_after >= prefix ? objs.upper_bound(start_after) : objs.lower_bound(prefix);
    for (; it != objs.end() && it->first.starts_with(prefix); ++it) {
      if (limit != 0 && out.size() >= limit) break;
      out.push_back(ObjectInfo{it->first, it->second.data->size(), it->second.mtime_ns});
    }
    return out;
  }

  std::string describe() const override { return "mem://" + name_; }

 private:
  Status not_found(const std::string& key) const {
    return Status(Code::kNotFound, "object '" + key + "' not found in " + describe());
  }

  const std::string name_;
  const std::shared_ptr<Space> space_;
};

// The process-wide table of named spaces.
std::shared_ptr<Space> named_space(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<Space>> spaces;
  std::lock_guard lk(mu);
  auto& space = spaces[name];
  if (!space) space = std::make_shared<Space>();
  return space;
}

}  // namespace

Result<std::shared_ptr<Store>> open_mem_store(const Url& url) {
  auto space = url.body.empty() ? std::make_shared<Space>() : named_space(url.body);
  return std::shared_ptr<Store>(std::make_shared<MemStore>(url.body, std::move(space)));
}

}  // namespace sluice::object
