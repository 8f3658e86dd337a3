// Write buffering, block upload and slice commit.
//
// Each inode has one FileWriter, shared by its handles. A chunk has at most one open
// SliceBuffer; a write inside or right after it extends it in place, unless it touches
// a sealed block; any other write first flushes it, so later writes still win. A write
// that extends the buffer seals the blocks it completed and uploads them in the
// background (at most 2 * upload_threads in flight per writer; a fast writer waits).
// An uploaded block is cached (write-through) and its bytes leave the buffer. A flush
// uploads the remaining blocks, waits for all of them and only then commits the slice
// to meta: data before metadata. A failed upload, in the background or not, is reported
// by the next flush as EIO; its bytes stay buffered and the flush after retries them.
// Buffered bytes over all inodes stay near VfsOptions::buffer_size: a write that would
// exceed it first flushes its own inode, then others.
#include <algorithm>
#include <cstring>
#include <utility>

#include "common/clock.h"
#include "common/logging.h"
#include "object/layout.h"
#include "vfs/internal.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

namespace {

// Chunk indices are 32-bit.
constexpr uint64_t kMaxFileSize = uint64_t(UINT32_MAX) * meta::kChunkSize;

}  // namespace

std::shared_ptr<FileWriter> Vfs::acquire_writer(Ino ino) {
  std::lock_guard lk(writers_mu_);
  auto& w = writers_[ino];
  if (!w) w = std::make_shared<FileWriter>(ino);
  w->refs++;
  return w;
}

void Vfs::release_writer(const std::shared_ptr<FileWriter>& w) {
  {
    std::lock_guard lk(writers_mu_);
    w->refs--;
  }
  drop_if_idle(w);
}

// A writer without handles keeps living while it holds buffers (a failed flush), so
// that the background flusher and flush_all still find them.
void Vfs::drop_if_idle(const std::shared_ptr<FileWriter>& w) {
  std::lock_guard lk(writers_mu_);
  if (w->refs > 0 || w->pending_end.load() != 0) return;
  auto it = writers_.find(w->ino);
  if (it != writers_.end() && it->second == w) writers_.erase(it);
}

uint64_t Vfs::pending_size(Ino ino) {
  std::lock_guard lk(writers_mu_);
  auto it = writers_.find(ino);
  return it == writers_.end() ? 0 : it->second->pending_end.load();
}

Result<size_t> Vfs::write(const Context& ctx, Ino ino, uint64_t fh, uint64_t off, const char* buf,
                          size_t size) {
  RETURN_IF_ERROR(check_writable());
  ASSIGN_OR_RETURN(auto h, file_handle(ino, fh));
  if (!h->writable()) {
    return Status(Code::kBadFd, "handle " + std::to_string(fh) + " is not open for writing");
  }
  if (size == 0) return size_t{0};
  if (off > kMaxFileSize || size > kMaxFileSize - off) {
    return Status(Code::kFileTooBig, "write past the maximum file size");
  }
  FileWriter& w = *h->inode;
  RETURN_IF_ERROR(backpressure(w, size));
  {
    std::lock_guard lk(w.mu);
    for (size_t done = 0; done < size;) {
      uint64_t pos = off + done;
      auto idx = static_cast<uint32_t>(pos / meta::kChunkSize);
      auto cpos = static_cast<uint32_t>(pos % meta::kChunkSize);
      auto n = static_cast<uint32_t>(std::min<uint64_t>(size - done, meta::kChunkSize - cpos));
      RETURN_IF_ERROR(write_chunk_locked(w, idx, cpos, buf + done, n));
      done += n;
    }
  }
  stats_.write_ops++;
  stats_.write_bytes += size;
  return size;
}

Status Vfs::backpressure(FileWriter& w, size_t incoming) {
  const uint64_t limit = opts_.buffer_size;
  if (buffered_bytes_.load() + incoming <= limit) return Status::OK();
  if (w.pending_end.load() != 0) RETURN_IF_ERROR(flush_writer(w));
  if (buffered_bytes_.load() + incoming <= limit) return Status::OK();
  return flush_writers(limit > incoming ? limit - incoming : 0);
}

Status Vfs::write_chunk_locked(FileWriter& w, uint32_t idx, uint32_t pos, const char* buf,
                               uint32_t len) {
  const uint32_t bs = meta_->format().block_size;
  auto it = w.chunks.find(idx);
  if (it != w.chunks.end()) {
    const SliceBuffer& b = it->second;
    if (pos < b.pos || pos > b.pos + b.len || (pos - b.pos) / bs < b.blocks.size()) {
      RETURN_IF_ERROR(flush_chunk_locked(w, idx));
      it = w.chunks.end();
    }
  }
  if (it == w.chunks.end()) {
    SliceBuffer fresh;
    ASSIGN_OR_RETURN(fresh.id, meta_->new_slice_id());
    fresh.pos = pos;
    fresh.created_mono_ns = mono_ns();
    it = w.chunks.emplace(idx, std::move(fresh)).first;
  }
  SliceBuffer& b = it->second;
  const uint32_t start = pos - b.pos;  // offset inside the buffer, <= b.len
  for (uint32_t done = 0; done < len;) {
    uint32_t at = start + done;
    uint32_t page = at / bs, in = at % bs;
    uint32_t n = std::min(len - done, bs - in);
    if (page == b.pages.size()) b.pages.emplace_back();  // all earlier pages are full
    std::string& p = b.pages[page];
    if (p.size() < in + n) p.resize(in + n);
    std::memcpy(p.data() + in, buf + done, n);
    done += n;
  }
  if (start + len > b.len) {
    buffered_bytes_ += start + len - b.len;
    b.len = start + len;
    // A sequential write: upload the blocks it completed.
    while ((b.blocks.size() + 1) * uint64_t{bs} <= b.len) {
      submit_block_locked(w, b, static_cast<uint32_t>(b.blocks.size()));
    }
  }
  b.mtime_ns = now_ns();
  w.update_pending_locked();
  if (b.pos + b.len == meta::kChunkSize) {
    // A full chunk cannot grow: commit it now. On failure it stays buffered for a retry.
    Status s = flush_chunk_locked(w, idx);
    if (!s.ok()) LOG_WARN("vfs: flushing full chunk {} of inode {}: {}", idx, w.ino, s.ToString());
  }
  return Status::OK();
}

void Vfs::submit_block_locked(FileWriter& w, SliceBuffer& b, uint32_t i) {
  auto up = std::make_shared<BlockUpload>();
  std::string data = std::exchange(b.pages[i], {});
  up->key = object::block_key(meta_->format().name, b.id, i, static_cast<uint32_t>(data.size()));
  if (i == b.blocks.size()) {
    b.blocks.push_back(up);
  } else {
    b.blocks[i] = up;
  }
  const int limit = 2 * std::max(1, opts_.upload_threads);
  {
    std::unique_lock lk(w.uploads->mu);
    w.uploads->cv.wait(lk, [&] { return w.uploads->in_flight < limit; });
    w.uploads->in_flight++;
  }
  uploads_->submit([this, u = w.uploads, up, data = std::move(data)]() mutable {
    uint64_t sum = 0;  // the disk cache keeps the block under it, not hashing it again
    auto stored = object::encode_block(data, compression_, opts_.cipher.get(), up->key, &sum);
    Status s = stored.ok() ? store_->put(up->key, *stored) : stored.status();
    if (s.ok()) {
      stats_.object_puts++;
      stats_.object_put_bytes += stored->size();
      buffered_bytes_ -= data.size();
      cache_->put(up->key, std::move(data), sum);
    } else {
      stats_.object_errors++;
    }
    std::lock_guard lk(u->mu);
    if (!s.ok()) up->data = std::move(data);
    up->result = std::move(s);
    up->done = true;
    u->in_flight--;
    u->cv.notify_all();
  });
}

Status Vfs::flush_chunk_locked(FileWriter& w, uint32_t idx) {
  auto it = w.chunks.find(idx);
  if (it == w.chunks.end()) return Status::OK();
  SliceBuffer& b = it->second;
  // Upload the open tail and the blocks whose failure was reported, then wait for all.
  for (uint32_t i = 0; i < b.pages.size(); i++) {
    if (i >= b.blocks.size() || !b.blocks[i]) submit_block_locked(w, b, i);
  }
  Status failed;
  {
    std::unique_lock lk(w.uploads->mu);
    w.uploads->cv.wait(lk, [&] {
      return std::all_of(b.blocks.begin(), b.blocks.end(), [](const auto& up) { return up->done; });
    });
    for (size_t i = 0; i < b.blocks.size(); i++) {
      BlockUpload& up = *b.blocks[i];
      if (up.result.ok()) continue;
      if (failed.ok()) failed = Status(Code::kIO, "uploading " + up.key + ": " + up.result.message());
      b.pages[i] = std::move(up.data);
      b.blocks[i] = nullptr;  // reported: the next flush uploads it again
    }
  }
  if (!failed.ok()) {
    LOG_WARN("vfs: keeping {} bytes of inode {} buffered: {}", b.len, w.ino, failed.ToString());
    return failed;
  }

  // Every block is stored, and its bytes already left the buffered-bytes count.
  auto attr = meta_->write_slice(w.ino, idx, meta::Slice{b.pos, b.id, b.len, 0, b.len}, b.mtime_ns);
  if (!attr.ok()) {
    // The blocks stay: an ambiguous commit may have succeeded (gc finds true leaks).
    const Status& s = attr.status();
    const bool keep = s.retryable() || s.is(Code::kIO);
    LOG_WARN("vfs: committing slice {} of inode {} chunk {}: {}{}", b.id, w.ino, idx, s.ToString(),
             keep ? " (kept buffered)" : " (data dropped)");
    if (!keep) {
      w.chunks.erase(it);
      w.update_pending_locked();
    }
    return s;
  }
  w.chunks.erase(it);
  w.generation++;
  w.update_pending_locked();
  return Status::OK();
}

Status Vfs::flush_writer_locked(FileWriter& w, int64_t min_age_ns) {
  const int64_t now = mono_ns();
  std::vector<uint32_t> due;
  for (const auto& [idx, b] : w.chunks) {
    if (min_age_ns == 0 || now - b.created_mono_ns >= min_age_ns) due.push_back(idx);
  }
  Status first;
  for (uint32_t idx : due) {
    Status s = flush_chunk_locked(w, idx);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

Status Vfs::flush_writer(FileWriter& w) {
  std::lock_guard lk(w.mu);
  return flush_writer_locked(w, 0);
}

Status Vfs::flush_writers(uint64_t target) {
  std::vector<std::shared_ptr<FileWriter>> all;
  {
    std::lock_guard lk(writers_mu_);
    all.reserve(writers_.size());
    for (const auto& [ino, w] : writers_) all.push_back(w);
  }
  Status first;
  for (const auto& w : all) {
    if (target > 0 && buffered_bytes_.load() <= target) break;
    Status s = flush_writer(*w);
    if (!s.ok() && first.ok()) first = s;
    drop_if_idle(w);
  }
  return first;
}

Status Vfs::flush_all() { return flush_writers(0); }

}  // namespace sluice::vfs
