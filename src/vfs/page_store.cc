// Kernel page-cache stores: blocks fetched for a file that a loader reads whole out of
// order (the whole-file readahead of reader.cc) are pushed into the kernel's page cache
// of that file through the page store the FUSE layer sets (notify_store). The loader's
// later page faults on those pages are then served by the kernel: no FUSE read, no copy
// out of the memory or disk cache, which is most of the mount's work in a shuffled load.
//
// Stores run on one thread of their own, in order, from a queue bounded in bytes (a
// full queue drops the store: the pages are read through the mount as before). A store
// can block in the kernel on a page that is locked for a read of the kernel's own, until
// the mount answers that read; no download thread ever waits on it. A store whose file
// changed since its block was fetched (the inode's generation moved) is dropped. Only
// whole pages are stored, except the file's last, partial one.
#include <algorithm>

#include "vfs/internal.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

namespace {

constexpr uint64_t kPage = 4096;
// The queue holds blocks that may have left the memory cache: bounded, so that the
// mount's memory stays within --buffer-size + its fixed overhead.
constexpr uint64_t kQueueBytes = 64ull << 20;

}  // namespace

void Vfs::set_page_store(PageStore fn) {
  std::lock_guard lk(pages_mu_);
  page_store_ = std::move(fn);
  page_store_on_ = page_store_ != nullptr;
  pages_stop_ = false;
  if (!pages_thread_.joinable()) pages_thread_ = std::thread([this] { page_store_loop(); });
}

bool Vfs::stop_page_store(bool wait) {
  std::unique_lock lk(pages_mu_);
  page_store_ = nullptr;
  page_store_on_ = false;
  stats_.page_store_dropped += pages_queue_.size();
  pages_queue_.clear();
  pages_queued_bytes_ = 0;
  pages_stop_ = true;
  pages_cv_.notify_all();
  if (wait) pages_cv_.wait(lk, [this] { return !pages_busy_; });
  if (pages_busy_) return false;
  std::thread t = std::move(pages_thread_);
  lk.unlock();
  if (t.joinable()) t.join();
  return true;
}

void Vfs::wait_page_stores() {
  std::unique_lock lk(pages_mu_);
  pages_cv_.wait(lk, [this] { return pages_queue_.empty() && !pages_busy_; });
}

void Vfs::queue_page_store(const std::shared_ptr<FileHandle>& h, const Prefetch& p,
                           cache::Block data) {
  if (p.len == 0) return;
  uint64_t size;
  {
    std::lock_guard lk(h->mu);
    size = h->size;
  }
  // Whole pages only (the kernel marks a partly stored page up to date only at the
  // file's end).
  const uint64_t begin = (p.file_off + kPage - 1) / kPage * kPage;
  uint64_t end = std::min(p.file_off + p.len, size);
  if (end < size) end = end / kPage * kPage;
  if (end <= begin || p.block_off + (end - p.file_off) > data->size()) return;
  const std::string_view bytes(data->data() + p.block_off + (begin - p.file_off), end - begin);
  std::lock_guard lk(pages_mu_);
  if (!page_store_ || pages_stop_) return;
  if (pages_queued_bytes_ + bytes.size() > kQueueBytes) {
    stats_.page_store_dropped++;
    return;
  }
  pages_queue_.push_back({h, h->inode->generation.load(), begin, bytes, std::move(data)});
  pages_queued_bytes_ += bytes.size();
  pages_cv_.notify_all();
}

void Vfs::page_store_loop() {
  std::unique_lock lk(pages_mu_);
  for (;;) {
    pages_cv_.wait(lk, [this] { return pages_stop_ || !pages_queue_.empty(); });
    if (pages_stop_) return;
    PageStoreItem item = std::move(pages_queue_.front());
    pages_queue_.pop_front();
    pages_queued_bytes_ -= item.data.size();
    PageStore store = page_store_;
    pages_busy_ = true;
    lk.unlock();
    bool stored = false;
    if (item.h->inode->generation.load() == item.generation) {
      stored = store(item.h->ino, item.off, item.data);
    }
    if (stored) {
      stats_.page_store_bytes += item.data.size();
    } else {
      stats_.page_store_dropped++;
    }
    item = {};
    lk.lock();
    pages_busy_ = false;
    pages_cv_.notify_all();
  }
}

}  // namespace sluice::vfs
