// Bandwidth limits and concurrency caps; see limit_store.h.
#include "object/limit_store.h"

namespace sluice::object {

namespace {

std::unique_ptr<std::counting_semaphore<>> make_slots(int cap) {
  if (cap <= 0) return nullptr;
  return std::make_unique<std::counting_semaphore<>>(cap);
}

// Holds one slot of a semaphore (none when it is null) for its lifetime.
class Slot {
 public:
  explicit Slot(std::counting_semaphore<>* sem) : sem_(sem) {
    if (sem_ != nullptr) sem_->acquire();
  }
  ~Slot() {
    if (sem_ != nullptr) sem_->release();
  }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

 private:
  std::counting_semaphore<>* sem_;
};

}  // namespace

LimitStore::LimitStore(std::shared_ptr<Store> inner, const LimitOptions& opts)
    : StoreWrapper(std::move(inner)),
      upload_rate_(opts.upload_rate),
      download_rate_(opts.download_rate),
      upload_slots_(make_slots(opts.max_uploads)),
      download_slots_(make_slots(opts.max_downloads)) {}

Status LimitStore::put(const std::string& key, std::string_view data) {
  Slot slot(upload_slots_.get());
  upload_rate_.acquire(data.size());
  return inner_->put(key, data);
}

Result<std::string> LimitStore::get(const std::string& key, uint64_t off, int64_t len) {
  Slot slot(download_slots_.get());
  auto r = inner_->get(key, off, len);
  if (r.ok()) download_rate_.acquire(r->size());
  return r;
}

Result<SplitObject> LimitStore::get_split(const std::string& key, size_t head_len) {
  Slot slot(download_slots_.get());
  auto r = inner_->get_split(key, head_len);
  if (r.ok()) download_rate_.acquire(r->head.size() + r->body.size());
  return r;
}

}  // namespace sluice::object
