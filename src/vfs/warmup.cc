// Warmup: fills, evicts or checks the block cache for whole files (`sluice warmup`).
//
// The blocks of every file are listed from metadata first (cheap), then worked on by
// `threads` workers pulling from one shared list, so a single large file is fetched in
// parallel as well as many small ones. Filling goes through the normal cache path
// (BlockCache::get_or_load with the store loader), so single-flight holds between warmup
// and readers, and blocks land in every tier the cache has. With whole-file copies on
// (--passthrough), a file is filled into its copy instead (copies.cc): each block's bytes
// go to their places in the copy, and the block goes to the memory tier only, not to a
// disk-cache file of its own (reads of the file are served from the copy), so the fill
// writes the file to the local disk once. A copy is kept once the file's last block is in;
// copies of files not finished (an error, Ctrl-C) are removed. A file with a copy (made
// with or without passthrough on) counts as cached: fill fetches none of it again, and
// check counts it whole.
#include <algorithm>
#include <thread>
#include <unordered_map>

#include "common/logging.h"
#include "object/layout.h"
#include "vfs/internal.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

namespace {

// Where a block's bytes go in its file's whole copy (copies.cc).
struct CopyPiece {
  uint64_t file_off;
  uint32_t block_off;
  uint32_t len;
};

struct WarmBlock {
  std::string key;
  uint32_t len = 0;
  size_t file = 0;                // index into the file list
  std::vector<CopyPiece> pieces;  // with a copy of the file being made
};

}  // namespace

Status Vfs::warmup(const std::vector<Ino>& inodes, WarmupMode mode, int threads,
                   WarmupProgress& progress, const std::atomic<bool>& cancel) {
  const meta::Format& fmt = meta_->format();
  const uint64_t bs = fmt.block_size;
  std::vector<WarmBlock> blocks;
  std::vector<std::atomic<uint64_t>> remaining(inodes.size());
  // Whole copies being made (fill with copies on): one per file, nullptr where none is.
  std::vector<std::unique_ptr<CopyOut>> copies(inodes.size());
  // Check and fill: the file has a copy already (cached: nothing to fetch).
  std::vector<char> copied(inodes.size(), 0);
  // Fill: blocks of the file that went into its copy alone (lost if the copy is not kept).
  std::vector<std::atomic<uint64_t>> copy_only_blocks(inodes.size());
  std::vector<std::atomic<bool>> block_failed(inodes.size());  // counted in errors already
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
    if (mode != WarmupMode::kEvict) copied[f] = find_copy(inodes[f], *attr) != nullptr;
    if (mode == WarmupMode::kFill && !copied[f]) copies[f] = begin_copy(inodes[f], *attr);
    CopyOut* copy = copies[f].get();
    std::unordered_map<std::string, size_t> seen;  // key -> index in blocks
    uint64_t n = 0;
    for (uint64_t idx = 0; idx * meta::kChunkSize < attr->size; idx++) {
      auto slices = meta_->read_chunk(inodes[f], static_cast<uint32_t>(idx));
      if (!slices.ok()) {
        progress.errors++;
        if (first_error.ok()) first_error = slices.status();
        if (copy != nullptr) copy->bad = true;
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
          // The part of the block the segment shows, and where it is in the file.
          const uint64_t lo = std::max<uint64_t>(bi * bs, s.off);
          const uint64_t hi = std::min<uint64_t>(bi * bs + len, uint64_t(s.off) + s.len);
          const CopyPiece piece{cstart + s.pos + (lo - s.off), static_cast<uint32_t>(lo - bi * bs),
                                static_cast<uint32_t>(hi - lo)};
          auto [it, added] = seen.try_emplace(std::move(key), blocks.size());
          if (!added) {
            if (copy != nullptr && hi > lo) blocks[it->second].pieces.push_back(piece);
            continue;
          }
          blocks.push_back({it->first, len, f, {}});
          if (copy != nullptr && hi > lo) blocks.back().pieces.push_back(piece);
          progress.total_bytes += len;
          progress.total_blocks++;
          n++;
        }
      }
    }
    remaining[f] = n;
    progress.total_files++;
    if (n == 0) {  // an empty file (or all holes) is done at once
      progress.files++;
      if (copy != nullptr) end_copy(*copy);
    }
  }

  std::atomic<size_t> next{0};
  std::mutex err_mu;
  auto worker = [&] {
    for (size_t i; !cancel.load() && (i = next.fetch_add(1)) < blocks.size();) {
      const WarmBlock& b = blocks[i];
      Status st;
      switch (mode) {
        case WarmupMode::kFill: {
          if (copied[b.file]) break;
          cache::LoadSum sum;
          auto load = [&] { return fetch_block(b.key, b.len, 1, &sum); };
          CopyOut* c = copies[b.file].get();
          // Into the copy alone, unless writing it failed already: then the block's file
          // is the fill. A block on disk already is read from there.
          const bool copy_only = c != nullptr && !c->bad.load() && !cache_->contains(b.key);
          auto r =
              copy_only ? cache_->get_or_load_memory(b.key, load) : cache_->fill(b.key, load, &sum);
          st = r.status();
          if (copy_only && r.ok()) copy_only_blocks[b.file]++;
          // The block's bytes into the file's copy, at each place the file shows them.
          if (c != nullptr && r.ok()) {
            for (const CopyPiece& p : b.pieces) {
              if (uint64_t(p.block_off) + p.len > (*r)->size()) {
                c->bad = true;
                break;
              }
              c->write((*r)->data() + p.block_off, p.len, p.file_off);
            }
          }
          break;
        }
        case WarmupMode::kEvict:
          cache_->erase(b.key);
          break;
        case WarmupMode::kCheck:
          if (copied[b.file] || cache_->contains(b.key)) progress.cached_bytes += b.len;
          break;
      }
      if (!st.ok()) {
        if (copies[b.file]) copies[b.file]->bad = true;
        block_failed[b.file] = true;
        progress.errors++;
        std::lock_guard lk(err_mu);
        if (first_error.ok()) first_error = st;
      }
      progress.blocks++;
      progress.bytes += b.len;
      if (remaining[b.file].fetch_sub(1) == 1) {
        // The file's last block is in: its copy is complete (kept unless a block failed).
        // Blocks that went into a copy not kept are not cached: an error of the file's.
        if (copies[b.file] && !end_copy(*copies[b.file]) && copy_only_blocks[b.file] > 0 &&
            !block_failed[b.file]) {
          progress.errors++;
          std::lock_guard lk(err_mu);
          if (first_error.ok()) {
            first_error =
                Status(Code::kIO, "the local copy of inode " + std::to_string(inodes[b.file]) +
                                      " could not be written (see the mount's log)");
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
