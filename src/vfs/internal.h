// vfs internals shared by its .cc files: the per-inode FileWriter, the open-file and
// directory handles, and a small task group for running block transfers in parallel on
// a ThreadPool.
//
// Locks: FileWriter::mu, FileHandle::mu and DirHandle::mu are never held together (a
// read flushes the writer before it locks the handle). Vfs::writers_mu_,
// Vfs::handles_mu_ and Uploads::mu only guard their own fields: they may be taken under
// the others, and no lock is taken while they are held.
#pragma once

#include <fcntl.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cache/block_cache.h"
#include "common/status.h"
#include "common/thread_pool.h"
#include "meta/slices.h"
#include "meta/types.h"
#include "object/block_codec.h"
#include "vfs/safetensors.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

// One sealed block of an open slice, handed to the upload pool. Its fields are guarded
// by Uploads::mu.
struct BlockUpload {
  std::string key;
  bool done = false;  // the upload finished; result says how
  Status result;
  std::string data;  // the block's bytes after a failed upload, kept for the retry
};

// The block uploads of one FileWriter: how many are in flight, signalled as they finish.
struct Uploads {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
};

// The one open slice buffer of a chunk: chunk bytes [pos, pos+len) of slice `id`, kept
// as pages of at most block_size bytes, page i becoming block i of the slice. Blocks
// [0, blocks.size()) are sealed: handed to the upload pool (their pages emptied) and
// never modified again. A null entry is a sealed block whose failed upload was
// reported: its bytes are back in its page, for the next flush to upload again.
struct SliceBuffer {
  uint32_t pos = 0;
  uint32_t len = 0;
  uint64_t id = 0;
  std::vector<std::string> pages;
  std::vector<std::shared_ptr<BlockUpload>> blocks;
  int64_t created_mono_ns = 0;  // age, for the background flusher
  int64_t mtime_ns = 0;         // wall time of the last write
};

// Per-inode state of this client, shared by every handle of the inode: buffered writes
// and the generation counter that tells handles their cached layout is stale.
class FileWriter {
 public:
  explicit FileWriter(meta::Ino ino) : ino(ino) {}

  const meta::Ino ino;
  // Guards chunks. Held across a whole flush, so slices of one chunk commit in write order.
  std::mutex mu;
  std::map<uint32_t, SliceBuffer> chunks;  // chunk index -> open buffer
  // Shared with the upload tasks, which may outlive the writer.
  const std::shared_ptr<Uploads> uploads = std::make_shared<Uploads>();
  // Bumped on every committed slice and truncate of the inode by this client.
  std::atomic<uint64_t> generation{0};
  // End offset of the buffered writes (0 when none); written under mu, read lock-free.
  std::atomic<uint64_t> pending_end{0};
  int refs = 0;  // open handles and in-flight truncates; guarded by Vfs::writers_mu_

  // Where the sequential read streams of this inode's handles stand (reader.cc). Processes
  // reading one file at once share the kernel's page cache, so each one's reads skip what
  // the others already read: a read that continues another handle's stream from the
  // file's start is sequential.
  struct Stream {
    const void* owner = nullptr;  // the FileHandle (only compared, never dereferenced)
    uint64_t from = 0;            // where the stream began
    bool from_start = false;      // with a read at offset 0
    uint64_t end = 0;             // where its last read ended
  };
  std::mutex streams_mu;  // guards streams and streams_next
  std::array<Stream, 8> streams{};
  size_t streams_next = 0;

  // Recomputes pending_end after chunks changed (caller holds mu).
  void update_pending_locked() {
    uint64_t end = 0;
    if (!chunks.empty()) {
      const auto& [idx, b] = *chunks.rbegin();
      end = uint64_t(idx) * meta::kChunkSize + b.pos + b.len;
    }
    pending_end.store(end);
  }
};

// A whole local copy of a file being written (copies.cc): warmup writes each block's bytes
// at their file offsets as it fills the block, then Vfs::end_copy keeps or drops it.
struct CopyOut {
  std::string key;  // the raw disk-cache key (inode and attributes)
  std::string tmp;  // the temporary file written
  int fd = -1;
  int direct_fd = -1;  // the same file opened with O_DIRECT; -1 where it cannot be
  uint64_t size = 0;
  std::atomic<bool> bad{false};  // a block failed or a write did: not kept
  ~CopyOut();                    // closes and removes a copy never ended
  // Writes bytes of the file at `off`: page-aligned runs with O_DIRECT (not through the
  // page cache: buffered, 4 GiB of copies made a warmup wait on dirty-page throttling
  // and took twice as long), others buffered. Marks the copy bad on a failure.
  void write(const char* data, size_t len, uint64_t off);
};

// One block of a slice.
struct BlockRef {
  uint64_t slice_id = 0;
  uint32_t slice_size = 0;
  uint32_t index = 0;
  bool operator==(const BlockRef&) const = default;
};

// The object key and length of block b under format fmt; kCorruption when the layout
// puts it past the end of its slice (reader.cc).
Result<std::pair<std::string, uint32_t>> locate(const meta::Format& fmt, const BlockRef& b);

// A piece of a block to prefetch: the whole block (hi == 0), or the sub-blocks that
// cover block bytes [lo, hi) (ranged.cc).
// What a prefetch of a whole block is for: readahead of a stream (one GET); a block a
// reader is about to wait for (fetched in parts, VfsOptions::block_get_parts); or a whole
// file loaded out of order (one GET, and a block already in the disk cache stays there:
// lifting it into memory in file order would only evict blocks the loader is about to
// read).
enum class PrefetchFor { kAhead, kReader, kWholeFile };

// The length of each of `parts` parts of `bytes` bytes of block data, in whole sub-blocks
// (the last part may be shorter).
inline uint64_t part_len(uint64_t bytes, int parts) {
  const uint64_t sub = object::kSubBlockSize;
  return (bytes / static_cast<uint64_t>(parts) + sub - 1) / sub * sub;
}

struct Prefetch {
  BlockRef block;
  uint64_t lo = 0, hi = 0;
  PrefetchFor why = PrefetchFor::kAhead;
  // kWholeFile: the file range the block holds (file offset, block offset, length), for
  // the kernel's page cache (Vfs::queue_page_store).
  uint64_t file_off = 0;
  uint32_t block_off = 0, len = 0;
};

// A disk-cached block of a file loaded whole out of order, to ready (Vfs::ready_in_turn):
// its cache key, and with a page store on, the file (h) and range (p) its pages go to.
struct ReadyItem {
  std::string key;
  std::shared_ptr<FileHandle> h;
  Prefetch p;
};

// The bytes of one block a read copies from: the whole block, or (ranged read) its
// sub-blocks [first, first + subs.size()), each object::kSubBlockSize bytes but the
// last sub-block of the block.
struct BlockData {
  cache::Block whole;
  cache::FileBlock file;  // the whole block as a disk-cache file (instead of `whole`)
  uint32_t first = 0;
  std::vector<cache::Block> subs;

  static BlockData of_whole(cache::Block b) {
    BlockData d;
    d.whole = std::move(b);
    return d;
  }
  static BlockData of_file(cache::FileBlock f) {
    BlockData d;
    d.file = std::move(f);
    return d;
  }
  // Appends the pieces of the len bytes at block offset off (one per block, file or
  // sub-block they span); false when they are not all held.
  bool append(uint64_t off, uint64_t len, std::vector<ReadPiece>& out) const;
  // Moves the blocks and files it holds to out's hold and files (the pieces from append
  // stay valid there).
  void hold_in(ReadData& out);
};

struct FileHandle {
  meta::Ino ino = 0;
  int flags = 0;
  std::shared_ptr<FileWriter> inode;

  bool readable() const { return (flags & O_ACCMODE) != O_WRONLY; }
  bool writable() const { return (flags & O_ACCMODE) != O_RDONLY; }

  std::mutex mu;                                  // guards everything below
  uint64_t generation = 0;                        // inode->generation when size/chunks were loaded
  uint64_t size = 0;                              // file size as of that load
  std::unordered_map<uint32_t, Segments> chunks;  // resolved slices per chunk index
  // Readahead: where the last read ended, the current window in blocks (0 = random
  // access) and the end of what was already submitted for prefetch.
  uint64_t last_end = 0;
  uint64_t last_len = 0;  // the length of the last read
  // The file's whole copy (copies.cc) that a read-only open found: reads are served from
  // it until the file changes (refresh_locked drops it).
  cache::FileBlock copy;
  uint64_t copy_next = 0;   // where the last read from it ended
  uint64_t copy_ahead = 0;  // the end of what was read ahead of the reader in it
  uint32_t window = 0;
  uint64_t prefetched_to = 0;
  uint64_t stream_from = 0;  // where the current stream began (its first read's offset)
  bool streaming = false;    // the last read continued the stream (readahead or not)
  bool from_start = false;   // the stream began with a read at offset 0
  // Tensor-aware readahead (reader.cc): the mtime that goes with size, the safetensors
  // layout of the file (null: none known), the Vfs::layouts_version_ it was looked up at
  // (0: look again), whether a read from offset 0 was already sniffed for a header, and
  // per tensor index the file offset up to which it was submitted for prefetch.
  int64_t mtime_ns = 0;
  std::shared_ptr<const TensorLayout> layout;
  uint64_t layout_version = 0;
  bool sniffed = false;
  std::unordered_map<size_t, uint64_t> tensor_prefetched;
  std::unordered_set<size_t> entered;  // tensors that reads jumped into (random entries)
  uint64_t bulk_next = 0;    // a file loaded whole out of order: prefetched in order up to here
  bool loading_all = false;  // this handle was found loading the whole file out of order
  // The process's pool of random entries (Vfs::pool_entries_locked): the thread that
  // opened the handle, the process it belongs to (0 until looked up), and what this
  // handle adds to the pool (its entered tensors and its file's tensor count).
  uint32_t opener = 0;
  uint32_t pool = 0;
  size_t pooled_entered = 0;
  size_t pooled_tensors = 0;
};

struct DirHandle {
  meta::Ino ino = 0;
  meta::Ino parent = 0;
  std::mutex mu;                        // guards entries
  std::vector<meta::DirEntry> entries;  // ".", "..", then the snapshot taken at opendir
};

// Runs closures on a pool and waits for all of them. The pool must outlive wait().
class TaskGroup {
 public:
  explicit TaskGroup(ThreadPool& pool) : pool_(pool) {}
  ~TaskGroup() { wait(); }

  void run(std::function<void()> fn) {
    {
      std::lock_guard lk(mu_);
      pending_++;
    }
    pool_.submit([this, fn = std::move(fn)] {
      fn();
      std::lock_guard lk(mu_);
      if (--pending_ == 0) cv_.notify_all();
    });
  }
  void wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [this] { return pending_ == 0; });
  }

 private:
  ThreadPool& pool_;
  std::mutex mu_;
  std::condition_variable cv_;
  int pending_ = 0;
};

}  // namespace sluice::vfs
