// Warmup: fills, evicts or checks the block cache for whole files (`sluice warmup`).
//
// The blocks of every file are listed from metadata first (cheap), then worked on by
// `threads` workers pulling from one shared list, so a single large file is fetched in
// parallel as well as many small ones. Filling goes through the normal cache path
// (BlockCache::get_or_load with the store loader), so single-flight holds between warmup
// and readers, and blocks land in every tier the cache has.
#include <algorithm>
#include <thread>
#include <unordered_set>

#include "common/logging.h"
#include "object/layout.h"
#include "vfs/internal.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

namespace {

struct WarmBlock {
  std::string key;
  uint32_t len = 0;
  size_t file = 0;  // index into the file list
};

}  // namespace

Status Vfs::warmup(const std::vector<Ino>& inodes, WarmupMode mode, int threads,
                   WarmupProgress& progress, const std::atomic<bool>& cancel) {
  const meta::Format& fmt = meta_->format();
  const uint64_t bs = fmt.block_size;
  std::vector<WarmBlock> blocks;
  std::vector<std::atomic<uint64_t>> remaining(inodes.size());
  std::vector<std::atomic<bool>> failed(inodes.size());  // a block of the file failed
  Status first_error;
  for (size_t f = 0; f < inodes.size(); f++) {
    if (cancel.load()) return Status(Code::kInterrupted, "warmup interrupted");
    auto attr = meta_->getattr(inodes[f]);
    if (!attr.ok()) {
      progress.errors++;
      if (first_error.ok()) first_error = attr.status();
      continue;
    }
    if (attr->type != meta::FileType::kRegular) continue;
    if (mode == WarmupMode::kEvict) drop_copy(inodes[f], *attr);
    std::unordered_set<std::string> seen;
    uint64_t n = 0;
    for (uint64_t idx = 0; idx * meta::kChunkSize < attr->size; idx++) {
      auto slices = meta_->read_chunk(inodes[f], static_cast<uint32_t>(idx));
      if (!slices.ok()) {
        progress.errors++;
        if (first_error.ok()) first_error = slices.status();
        break;
      }
      const uint64_t cstart = idx * meta::kChunkSize;
      const auto clen = static_cast<uint32_t>(std::min(meta::kChunkSize, attr->size - cstart));
      for (const meta::Segment& s : meta::resolve_slices(*slices, clen)) {
        if (s.id == 0 || s.len == 0) continue;
        for (uint64_t bi = s.off / bs; bi * bs < uint64_t(s.off) + s.len; bi++) {
          if (bi * bs >= s.size) break;  // a layout past its slice: reads report it
          const uint32_t len = object::block_len(s.size, fmt.block_size, static_cast<uint32_t>(bi));
          std::string key = object::block_key(fmt.name, s.id, static_cast<uint32_t>(bi), len);
          if (!seen.insert(key).second) continue;
          blocks.push_back({std::move(key), len, f});
          progress.total_bytes += len;
          progress.total_blocks++;
          n++;
        }
      }
    }
    remaining[f] = n;
    progress.total_files++;
    if (n == 0) progress.files++;  // an empty file is done at once
  }

  std::atomic<size_t> next{0};
  std::mutex err_mu;
  auto worker = [&] {
    for (size_t i; !cancel.load() && (i = next.fetch_add(1)) < blocks.size();) {
      const WarmBlock& b = blocks[i];
      Status st;
      switch (mode) {
        case WarmupMode::kFill: {
          cache::LoadSum sum;
          auto r = cache_->fill(
              b.key, [&] { return fetch_block(b.key, b.len, 1, &sum); }, &sum);
          st = r.status();
          break;
        }
        case WarmupMode::kEvict:
          cache_->erase(b.key);
          break;
        case WarmupMode::kCheck:
          if (cache_->contains(b.key)) progress.cached_bytes += b.len;
          break;
      }
      if (!st.ok()) {
        failed[b.file] = true;
        progress.errors++;
        std::lock_guard lk(err_mu);
        if (first_error.ok()) first_error = st;
      }
      progress.blocks++;
      progress.bytes += b.len;
      if (remaining[b.file].fetch_sub(1) == 1) {
        // The file's last block is done: with copies on, a filled file gets its whole
        // copy (from the blocks just cached), made by the worker that finished it.
        if (mode == WarmupMode::kFill && !failed[b.file].load()) {
          Status cs = make_copy(inodes[b.file], &cancel);
          if (!cs.ok() && !cancel.load()) {
            LOG_WARN("warmup: no whole copy of inode {}: {}", inodes[b.file], cs.ToString());
          }
        }
        progress.files++;
      }
    }
  };
  const int n = std::clamp(threads, 1, 256);
  std::vector<std::thread> pool;
  for (int t = 1; t < n && static_cast<size_t>(t) < blocks.size(); t++) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (cancel.load()) return Status(Code::kInterrupted, "warmup interrupted");
  return first_error;
}

}  // namespace sluice::vfs
