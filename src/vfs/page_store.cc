// Kernel page-cache stores: blocks fetched or readied (from the disk cache) for a file
// that a loader reads whole out of order (the whole-file readahead of reader.cc) are
// pushed into the kernel's page cache of that file through the page store the FUSE layer
// sets (notify_store). The loader's later page faults on those pages are then served by
// the kernel: no FUSE read, no copy out of the memory or disk cache, which is most of the
// mount's work in a shuffled load.
//
// Stores run on one thread of their own, in order, from a queue bounded in bytes of
// memory and in disk-cache files (a full queue drops the store: the pages are read
// through the mount as before). A store can block in the kernel on a page that is
// locked for a read of the kernel's own, until the mount answers that read; no download
// thread ever waits on it. A store whose file changed since its block was fetched (the
// inode's generation moved) is dropped. Only whole pages are stored, except the file's
// last, partial one.
#include <algorithm>

#include "common/file_io.h"
#include "vfs/internal.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

namespace {

constexpr uint64_t kPage = 4096;
// The queue holds blocks that may have left the memory cache: bounded, so that the
// mount's memory stays within --buffer-size + its fixed overhead.
constexpr uint64_t kQueueBytes = 64ull << 20;
// Disk-cache files queued hold no memory, an open file each: bounded in number. Their
// bytes go to the page store's store from files (the FUSE layer splices them), or
// without one a piece at a time through one buffer.
constexpr size_t kQueueFiles = 64;
constexpr uint64_t kFilePiece = 1 << 20;

}  // namespace

void Vfs::set_page_store(PageStore fn, PageStoreFile from_file) {
  std::lock_guard lk(pages_mu_);
  page_store_ = std::move(fn);
  page_store_file_ = page_store_ ? std::move(from_file) : nullptr;
  page_store_on_ = page_store_ != nullptr;
  pages_stop_ = false;
  if (!pages_thread_.joinable()) pages_thread_ = std::thread([this] { page_store_loop(); });
}

bool Vfs::stop_page_store(bool wait) {
  std::unique_lock lk(pages_mu_);
  page_store_ = nullptr;
  page_store_file_ = nullptr;
  page_store_on_ = false;
  stats_.page_store_dropped += pages_queue_.size();
  pages_queue_.clear();
  pages_queued_bytes_ = 0;
  pages_queued_files_ = 0;
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
  const uint64_t have = data->size();
  queue_page_store(h, p, have, std::move(data), nullptr);
}

void Vfs::queue_page_store(const std::shared_ptr<FileHandle>& h, const Prefetch& p,
                           cache::FileBlock file) {
  const uint64_t have = file->len;
  queue_page_store(h, p, have, nullptr, std::move(file));
}

void Vfs::queue_page_store(const std::shared_ptr<FileHandle>& h, const Prefetch& p, uint64_t have,
                           cache::Block block, cache::FileBlock file) {
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
  if (end <= begin || p.block_off + (end - p.file_off) > have) return;
  const uint64_t from = p.block_off + (begin - p.file_off);
  std::lock_guard lk(pages_mu_);
  if (!page_store_ || pages_stop_) return;
  const bool full = block ? pages_queued_bytes_ + (end - begin) > kQueueBytes
                          : pages_queued_files_ >= kQueueFiles;
  if (full) {
    stats_.page_store_dropped++;
    return;
  }
  if (block) {
    pages_queued_bytes_ += end - begin;
  } else {
    pages_queued_files_++;
  }
  pages_queue_.push_back({h, h->inode->generation.load(), begin, end - begin, from,
                          std::move(block), std::move(file)});
  pages_cv_.notify_all();
}

void Vfs::page_store_loop() {
  std::string file_buf;
  std::unique_lock lk(pages_mu_);
  for (;;) {
    pages_cv_.wait(lk, [this] { return pages_stop_ || !pages_queue_.empty(); });
    if (pages_stop_) return;
    PageStoreItem item = std::move(pages_queue_.front());
    pages_queue_.pop_front();
    if (item.block) {
      pages_queued_bytes_ -= item.len;
    } else {
      pages_queued_files_--;
    }
    PageStore store = page_store_;
    PageStoreFile store_file = page_store_file_;
    pages_busy_ = true;
    lk.unlock();
    bool stored = item.h->inode->generation.load() == item.generation;
    if (stored && item.block) {
      stored =
          store(item.h->ino, item.off, std::string_view(item.block->data() + item.from, item.len));
    } else if (stored && store_file) {
      // Straight from the disk-cache file (its pages are in the page cache of the cache
      // file: the whole-file readahead readied it).
      stored = store_file(item.h->ino, item.off, item.file->fd, item.from, item.len);
    } else if (stored) {
      // Else through one buffer, a piece at a time.
      if (file_buf.empty()) file_buf.resize(kFilePiece);
      for (uint64_t done = 0; stored && done < item.len; done += kFilePiece) {
        const uint64_t n = std::min(kFilePiece, item.len - done);
        stored = pread_full(item.file->fd, file_buf.data(), n, item.from + done) &&
                 store(item.h->ino, item.off + done, std::string_view(file_buf.data(), n));
      }
    }
    if (stored) {
      stats_.page_store_bytes += item.len;
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
