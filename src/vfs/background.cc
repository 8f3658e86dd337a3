// The background thread (only with VfsOptions::background_jobs): flushes write buffers
// older than flush_interval_ns, and every heartbeat_interval_ns refreshes this session,
// removes stale sessions of crashed clients and deletes the blocks of removed data.
// stop() wakes it through bg_cv_.
#include <algorithm>
#include <chrono>

#include "common/clock.h"
#include "common/logging.h"
#include "object/layout.h"
#include "vfs/internal.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

void Vfs::background_loop() {
  // Tick often enough to honour short intervals, at least once a second.
  const int64_t tick_ns =
      std::clamp<int64_t>(std::min(opts_.flush_interval_ns / 2, opts_.heartbeat_interval_ns),
                          10'000'000, 1'000'000'000);
  int64_t next_maintenance = mono_ns() + opts_.heartbeat_interval_ns;
  std::unique_lock lk(bg_mu_);
  while (!stopping_) {
    bg_cv_.wait_for(lk, std::chrono::nanoseconds(tick_ns), [this] { return stopping_; });
    if (stopping_) break;
    lk.unlock();
    flush_aged();
    if (mono_ns() >= next_maintenance) {
      maintenance();
      next_maintenance = mono_ns() + opts_.heartbeat_interval_ns;
    }
    lk.lock();
  }
}

void Vfs::flush_aged() {
  std::vector<std::shared_ptr<FileWriter>> all;
  {
    std::lock_guard lk(writers_mu_);
    for (const auto& [ino, w] : writers_) {
      if (w->pending_end.load() != 0) all.push_back(w);
    }
  }
  for (const auto& w : all) {
    Status s;
    {
      std::lock_guard lk(w->mu);
      s = flush_writer_locked(*w, opts_.flush_interval_ns);
    }
    if (!s.ok()) LOG_WARN("vfs: background flush of inode {}: {}", w->ino, s.ToString());
    drop_if_idle(w);
  }
}

void Vfs::maintenance() {
  Status hb = meta_->heartbeat();
  if (!hb.ok()) LOG_WARN("vfs: heartbeat: {}", hb.ToString());
  auto stale = meta_->clean_stale_sessions(opts_.session_timeout_ns);
  if (!stale.ok()) {
    LOG_WARN("vfs: cleaning stale sessions: {}", stale.status().ToString());
  } else if (*stale > 0) {
    LOG_INFO("vfs: removed {} stale sessions", *stale);
  }
  if (opts_.read_only) return;
  auto deleted =
      meta_->cleanup_deleted([this](uint64_t id, uint32_t size) { return delete_slice(id, size); });
  if (!deleted.ok()) LOG_WARN("vfs: deleting removed data: {}", deleted.status().ToString());
}

Status Vfs::delete_slice(uint64_t slice_id, uint32_t slice_size) {
  const meta::Format& fmt = meta_->format();
  const uint32_t n = object::block_count(slice_size, fmt.block_size);
  for (uint32_t i = 0; i < n; i++) {
    const std::string key =
        object::block_key(fmt.name, slice_id, i, object::block_len(slice_size, fmt.block_size, i));
    RETURN_IF_ERROR(store_->del(key));
    cache_->erase(key);
  }
  return Status::OK();
}

}  // namespace sluice::vfs
