// vfs: the file-system operations a kernel adapter calls, over the meta client, the
// object store and the block cache. It owns open handles, write buffering (slices are
// uploaded block by block, then committed to meta: data before metadata) and read
// assembly with readahead. It knows nothing of FUSE: tests drive it directly.
//
// Consistency: one client sees its own writes at once (a read or getattr of an inode
// with buffered writes accounts for them); other clients see them after close/fsync
// (close-to-open).
//
// Thread safety: every method may be called concurrently from the adapter's threads.
// Source layout: vfs.cc (namespace, file handles), dir.cc (directory handles, xattrs,
// locks), writer.cc (write buffers, flush), reader.cc (read assembly, readahead),
// background.cc (heartbeat, cleanup, flusher); internal.h holds the shared types.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cache/block_cache.h"
#include "common/status.h"
#include "common/thread_pool.h"
#include "meta/meta.h"
#include "meta/slices.h"
#include "object/block_codec.h"
#include "object/store.h"

namespace sluice::cache {
class DiskCache;
}  // namespace sluice::cache

namespace sluice::vfs {

using meta::Attr;
using meta::Context;
using meta::DirEntry;
using meta::Entry;
using meta::Ino;

struct VfsOptions {
  uint64_t buffer_size = 300ull << 20;        // bound on buffered write bytes
  uint64_t memory_cache_size = 512ull << 20;  // bound on the memory block cache
  int upload_threads = 8;
  int download_threads = 8;
  int readahead_blocks = 8;  // max blocks prefetched ahead of a stream
  // Tensor-aware readahead (reader.cc, docs/read-path.md): a read inside a tensor of a
  // safetensors file prefetches up to this many bytes of the rest of the tensor (0: off).
  uint64_t tensor_prefetch_bytes = 256ull << 20;
  // Bound on blocks queued or in flight for prefetch, in bytes (also at most half the
  // memory cache), so prefetch cannot evict its own blocks or grow memory.
  uint64_t prefetch_budget_bytes = 256ull << 20;
  // A block a reader waits for (a demand read, or the rest of a tensor a loader is in) is
  // fetched as this many ranged GETs in parallel, on volumes without compression or
  // encryption: one connection's bandwidth, not the store's, bounds a single GET, so a
  // loader jumping between tensors waits for a quarter of a block's transfer, not all of
  // it. Readahead of streams and of whole files keeps one GET per block. 1: off.
  int block_get_parts = 4;
  int64_t flush_interval_ns = 5'000'000'000;  // buffered writes older than this are flushed
  int64_t heartbeat_interval_ns = 12'000'000'000;
  int64_t session_timeout_ns = 300'000'000'000;  // others' sessions older than this are stale
  bool read_only = false;
  bool background_jobs = true;  // heartbeat, stale-session and deleted-data cleanup

  // Disk cache tier (docs/cache.md): used when cache_dirs is set and cache_size > 0. If
  // no directory is usable, the vfs runs with the memory cache alone (and logs it).
  std::vector<std::string> cache_dirs;
  uint64_t cache_size = 0;                  // bytes over all cache_dirs
  double free_space_ratio = 0.1;            // keep this fraction of each cache file system free
  uint64_t disk_write_queue = 64ull << 20;  // blocks waiting to be written to disk
  bool cache_writes = true;                 // written blocks go to the disk cache too
  // When reads from the disk cache verify a block's checksum; reads of blocks that need
  // no check are spliced from the cache file (cache::CacheVerify, docs/cache.md).
  cache::CacheVerify cache_verify = cache::CacheVerify::kOnce;
  // Whole local copies of files (copies.cc) in the disk cache, for FUSE passthrough:
  // warmup makes them (instead of block files). Needs the disk cache. Copies found are
  // used with or without this (opens find them, reads are served from them).
  bool file_copies = false;

  bool disk_cache_enabled() const { return !cache_dirs.empty() && cache_size > 0; }
  // Splits one memory budget (--buffer-size) between write buffers (buffer_size), the
  // memory cache and the disk write queue; see docs/cache.md. Call after the cache_*
  // fields are set.
  void set_memory_budget(uint64_t total);
  // The data-key cipher of an encrypted volume (see object/block_cipher.h); required
  // exactly when the volume's format names an encryption, else start() fails.
  std::shared_ptr<const object::BlockCipher> cipher;
};

struct VfsStats {
  std::atomic<uint64_t> read_ops{0}, write_ops{0};  // read() and write() calls
  std::atomic<uint64_t> read_bytes{0}, write_bytes{0};
  std::atomic<uint64_t> object_gets{0}, object_get_bytes{0}, object_puts{0}, object_put_bytes{0};
  std::atomic<uint64_t> object_errors{0};
  // Read path (reader.cc): blocks a prefetch fetched from the store, demand reads served
  // by such a block, prefetched blocks gone from the cache unread, prefetches not
  // queued because the budget was full, reads that prefetched the rest of a tensor,
  // safetensors headers parsed.
  std::atomic<uint64_t> prefetch_issued{0}, prefetch_hits{0}, prefetch_wasted{0};
  std::atomic<uint64_t> prefetch_over_budget{0}, tensor_prefetches{0}, safetensors_parsed{0};
  // Ranged reads (ranged.cc): GETs of part of a block (a block's header and sub-block
  // table, or a run of its 64 KiB sub-blocks) and their bytes. They are counted in
  // object_gets and object_get_bytes too.
  std::atomic<uint64_t> ranged_gets{0}, ranged_get_bytes{0};
  // Fetches (of a block, or of a run of its sub-blocks) made as parallel ranged GETs
  // (VfsOptions::block_get_parts), and those GETs (counted in object_gets too).
  std::atomic<uint64_t> parted_fetches{0}, part_gets{0};
  // Kernel page-cache stores (page_store.cc): bytes of blocks fetched for a file loaded
  // whole out of order that were pushed into the kernel's page cache of the file, and
  // stores dropped (queue full, the file changed, or the kernel refused them).
  std::atomic<uint64_t> page_store_bytes{0}, page_store_dropped{0};
  // Bytes of reads answered with disk-cache files rather than bytes in memory (the FUSE
  // layer splices them; cache::BlockCache::open_file).
  std::atomic<uint64_t> read_file_bytes{0};
  // Whole local copies (copies.cc): copies made and their bytes, read-only opens that
  // found one (with passthrough the FUSE layer hands it to the kernel), and the bytes of
  // reads that reached the mount and were served from one.
  std::atomic<uint64_t> copies_made{0}, copy_bytes{0}, copy_opens{0}, copy_read_bytes{0};
};

// What Vfs::warmup does to each block: load it into the cache (from the store when
// missing), drop it from every cache tier, or count whether it is cached.
enum class WarmupMode { kFill, kEvict, kCheck };

// Progress of one warmup, readable from other threads while it runs. The totals are set
// while files are listed, before the blocks are worked on.
struct WarmupProgress {
  std::atomic<uint64_t> total_files{0}, total_blocks{0}, total_bytes{0};
  std::atomic<uint64_t> files{0}, blocks{0}, bytes{0};  // done
  std::atomic<uint64_t> cached_bytes{0};                // kCheck: bytes found cached
  std::atomic<uint64_t> errors{0};
};

class FileWriter;  // internal.h
struct SliceBuffer;
struct FileHandle;
struct DirHandle;
struct BlockRef;
struct CopyOut;
struct BlockData;
struct Prefetch;
struct ReadyItem;
enum class PrefetchFor;
struct TensorLayout;
using Segments = std::shared_ptr<const std::vector<meta::Segment>>;

// One piece of a read: len bytes in memory at data, or (data null) len bytes of the open
// file fd from fd_off (a disk-cache file, BlockCache::open_file).
struct ReadPiece {
  const char* data = nullptr;
  size_t len = 0;
  int fd = -1;
  uint64_t fd_off = 0;
};

// The data of one read without a copy: pieces of cached blocks, which `hold` and `files`
// keep alive until the ReadData is dropped, and zeros (holes) from a static buffer. The
// FUSE layer replies with the pieces as they are (one writev, or a splice from the files
// where there are file pieces), so a read's bytes are copied once, by the kernel, instead
// of also into a reply buffer.
struct ReadData {
  std::vector<ReadPiece> pieces;  // in file order
  std::vector<cache::Block> hold;
  std::vector<cache::FileBlock> files;
  size_t size = 0;  // bytes in all pieces
  // Copies the pieces' bytes from byte `from` on to dst (at most n bytes); returns how
  // many, fewer than asked (within size) only when reading a file piece failed.
  size_t copy_to(char* dst, size_t from, size_t n) const;
  // Replaces the file pieces by their bytes, read into buf (which must outlive the
  // pieces); false when a read failed (errno says why).
  bool read_files(std::string& buf);
  void clear();
};

class Vfs {
 public:
  Vfs(std::shared_ptr<meta::Meta> meta, std::shared_ptr<object::Store> store, VfsOptions opts);
  ~Vfs();  // calls stop() if needed

  // Registers the session and starts background jobs.
  Status start(meta::SessionInfo info);
  // Flushes every buffered write, stops background jobs, closes the session.
  Status stop();

  meta::Meta& meta() { return *meta_; }
  const VfsStats& stats() const { return stats_; }
  cache::BlockCache& block_cache() { return *cache_; }
  // Bytes of writes buffered in memory and not yet committed, over all inodes.
  uint64_t buffered_bytes() const { return buffered_bytes_.load(); }
  // Blocks until no prefetch is queued or running (tests; warmup).
  void wait_prefetches();
  // The random entries pooled for a process (tests): {tensors entered, tensors of the
  // safetensors files entered} over its open handles.
  std::pair<size_t, size_t> pooled_entries(uint32_t process);

  // Pushes file bytes into the kernel's page cache of an inode (FUSE notify_store), so
  // that the pages never come to the mount as reads; false when the kernel refused.
  // May block (on a page the kernel has locked for a read of its own).
  using PageStore = std::function<bool(Ino ino, uint64_t off, std::string_view data)>;
  // The same for `len` bytes of an open file (a disk-cache file) at `fd_off`: the FUSE
  // layer may splice them into the kernel without the mount reading them.
  using PageStoreFile =
      std::function<bool(Ino ino, uint64_t off, int fd, uint64_t fd_off, uint64_t len)>;
  // Set by the FUSE layer once its session is up (page_store.cc). Without `from_file`,
  // disk-cache files are read into a buffer a piece at a time and stored with `fn`.
  void set_page_store(PageStore fn, PageStoreFile from_file = nullptr);
  // Stops the page store, dropping the stores queued. Returns whether none is under way
  // (then the store is no longer called); with `wait`, waits for one under way first.
  // The FUSE layer stops it before its session ends: a store under way may wait on a
  // read that only the session can answer.
  bool stop_page_store(bool wait);
  // Blocks until no page store is queued or running (tests).
  void wait_page_stores();

  // ---- namespace: meta plus buffered-write awareness ----
  Result<Entry> lookup(const Context& ctx, Ino parent, std::string_view name);
  Result<Attr> getattr(const Context& ctx, Ino ino);
  // fh != 0 when the kernel names an open handle (ftruncate): a handle opened for
  // writing may truncate without a fresh permission check.
  Result<Attr> setattr(const Context& ctx, Ino ino, const meta::SetAttr& req, uint64_t fh = 0);
  Result<Entry> mknod(const Context& ctx, Ino parent, std::string_view name, meta::FileType type,
                      uint16_t mode, uint32_t rdev);
  Result<Entry> mkdir(const Context& ctx, Ino parent, std::string_view name, uint16_t mode);
  Result<Entry> symlink(const Context& ctx, Ino parent, std::string_view name,
                        std::string_view target);
  Result<std::string> readlink(const Context& ctx, Ino ino);
  Status unlink(const Context& ctx, Ino parent, std::string_view name);
  Status rmdir(const Context& ctx, Ino parent, std::string_view name);
  Status rename(const Context& ctx, Ino parent, std::string_view name, Ino new_parent,
                std::string_view new_name, uint32_t flags);
  Result<Entry> link(const Context& ctx, Ino ino, Ino new_parent, std::string_view new_name);
  Status access(const Context& ctx, Ino ino, int mask);
  Result<meta::StatFs> statfs(const Context& ctx);

  // ---- files ----
  // create = mknod(regular) + open. flags are open(2) flags.
  Result<std::pair<Entry, uint64_t>> create(const Context& ctx, Ino parent, std::string_view name,
                                            uint16_t mode, int flags);
  Result<uint64_t> open(const Context& ctx, Ino ino, int flags);  // returns a handle id
  // Reads up to size bytes at off; short only at end of file.
  Result<size_t> read(const Context& ctx, Ino ino, uint64_t fh, uint64_t off, char* buf,
                      size_t size);
  // The same read, as pieces of cached blocks (no copy); `out` is reset first. With
  // files, blocks the disk cache may serve as they are come as pieces of their cache files
  // (ReadPiece::fd); a caller whose read of such a piece fails asks again without files,
  // which verifies the block (and drops a bad cache file, fetching the block again).
  Status read_pieces(const Context& ctx, Ino ino, uint64_t fh, uint64_t off, size_t size,
                     ReadData& out, bool files = true);
  Result<size_t> write(const Context& ctx, Ino ino, uint64_t fh, uint64_t off, const char* buf,
                       size_t size);
  Status flush(const Context& ctx, Ino ino, uint64_t fh);  // close(2) of one descriptor
  Status fsync(const Context& ctx, Ino ino, uint64_t fh, bool datasync);
  Status release(Ino ino, uint64_t fh);  // last close of the handle

  // ---- directories: a snapshot at opendir gives stable offsets ----
  Result<uint64_t> opendir(const Context& ctx, Ino ino);
  // Entries from index `offset` of the snapshot (0 = ".", 1 = "..", then the entries):
  // result[i] sits at index offset+i, so the next offset after it is offset+i+1.
  // plus fills attrs; an entry that vanished since opendir is dropped from the snapshot
  // (keeping that numbering). Returns an empty vector at the end.
  Result<std::vector<DirEntry>> readdir(const Context& ctx, Ino ino, uint64_t fh, uint64_t offset,
                                        size_t max_entries, bool plus);
  Status releasedir(Ino ino, uint64_t fh);

  // ---- xattrs and locks: forwarded to meta ----
  Result<std::string> getxattr(const Context& ctx, Ino ino, std::string_view name);
  Result<std::vector<std::string>> listxattr(const Context& ctx, Ino ino);
  Status setxattr(const Context& ctx, Ino ino, std::string_view name, std::string_view value,
                  int flags);
  Status removexattr(const Context& ctx, Ino ino, std::string_view name);
  // block: wait (polling meta) until the lock is granted, the vfs stops, or
  // interrupted() returns true (then kInterrupted). Without block a conflict is kAgain.
  Status flock(Ino ino, uint64_t owner, uint32_t type, bool block,
               const std::function<bool()>& interrupted = {});
  Result<meta::LockRange> getlk(Ino ino, uint64_t owner, const meta::LockRange& want);
  Status setlk(Ino ino, uint64_t owner, const meta::LockRange& lock, bool block,
               const std::function<bool()>& interrupted = {});

  // Flushes all buffered writes of every inode (used by stop and tests).
  Status flush_all();

  // warmup.cc: runs `mode` over every data block of the regular files `inodes` (others
  // are skipped), `threads` blocks at a time, updating `progress`. Stops early with
  // kInterrupted once `cancel` is set. A block or file that fails is counted in
  // progress.errors and the rest goes on; the first error is returned at the end.
  // Covers committed data only (buffered writes are not in the store yet).
  Status warmup(const std::vector<Ino>& inodes, WarmupMode mode, int threads,
                WarmupProgress& progress, const std::atomic<bool>& cancel);

  // copies.cc: whole local copies of files, for FUSE passthrough (VfsOptions::file_copies).
  // The copy that the read-only handle fh found at open (the file's bytes as they were
  // then), as a new descriptor the caller closes; -1 when it found none (no disk cache,
  // no copy, buffered writes, or the handle is not read-only).
  int open_copy(Ino ino, uint64_t fh);
  // Removes the copy of ino's bytes as `attr` describes them, if there is one.
  void drop_copy(Ino ino, const Attr& attr);

 private:
  // copies.cc
  cache::DiskCache* copies_disk();  // nullptr without a disk cache
  // The copy of ino's bytes as `attr` describes them (its current attributes), open to
  // read; nullptr when there is none (or no disk cache, or the inode has buffered writes).
  cache::FileBlock find_copy(Ino ino, const Attr& attr);
  // Serves a read of [off, +size) from the copy the handle holds, reading the copy ahead
  // of a sequential reader; false when it holds none (or no longer: the file changed).
  bool read_copy(FileHandle& h, uint64_t off, size_t size, ReadData& out);
  // A new copy of ino's bytes as `attr` describes them (room made, its temporary file
  // created at full size, sparse); nullptr when copies are off, the file is empty or has
  // buffered writes, the copy exists already or cannot be started (logged).
  std::unique_ptr<CopyOut> begin_copy(Ino ino, const Attr& attr);
  // Syncs and keeps the copy unless it went bad; removes it otherwise. Whether it was kept.
  bool end_copy(CopyOut& c);

  // vfs.cc
  Result<std::shared_ptr<FileHandle>> file_handle(Ino ino, uint64_t fh);
  // Flushes the inode's buffers, then sets the attributes (a size change among them).
  Result<Attr> truncate(const Context& ctx, Ino ino, const meta::SetAttr& req);
  Status check_writable() const;
  // Retries try_lock while it answers kAgain, if block (see flock).
  Status wait_for_lock(const std::function<Status()>& try_lock, bool block,
                       const std::function<bool()>& interrupted);

  // writer.cc. A writer lives while refs > 0 or it holds buffers.
  std::shared_ptr<FileWriter> acquire_writer(Ino ino);
  void release_writer(const std::shared_ptr<FileWriter>& w);
  void drop_if_idle(const std::shared_ptr<FileWriter>& w);
  Status write_chunk_locked(FileWriter& w, uint32_t idx, uint32_t pos, const char* buf,
                            uint32_t len);
  // Seals block i of b and uploads it on the upload pool, first waiting while w has
  // 2 * upload_threads uploads in flight.
  void submit_block_locked(FileWriter& w, SliceBuffer& b, uint32_t i);
  Status flush_chunk_locked(FileWriter& w, uint32_t idx);
  // Flushes the buffers created at least min_age_ns ago (0: all). Returns the first error.
  Status flush_writer_locked(FileWriter& w, int64_t min_age_ns);
  Status flush_writer(FileWriter& w);
  // Flushes writers until at most target bytes stay buffered (0: flushes every writer).
  Status flush_writers(uint64_t target);
  Status backpressure(FileWriter& w, size_t incoming);
  uint64_t pending_size(Ino ino);  // end of buffered writes, 0 if none

  // reader.cc
  Status refresh_locked(FileHandle& h);
  // Resolved slices of the chunks that file range [off, off+len) touches, in order.
  Result<std::vector<Segments>> segments_locked(FileHandle& h, uint64_t off, uint64_t len);
  // Updates h's readahead state for a read of [off, off+len); returns blocks to prefetch.
  // prefetch=false: follows the stream without growing the window or prefetching.
  std::vector<BlockRef> readahead_locked(FileHandle& h, uint64_t off, uint64_t len, bool prefetch);
  // A file being loaded whole out of order: appends the next blocks of it in file order
  // (from h.bulk_next), as many as the prefetch budget has room for.
  void bulk_ahead_locked(FileHandle& h, std::vector<Prefetch>& out);
  // Prefetches items, each of which queues the next blocks of h's file when done.
  void submit_bulk(const std::shared_ptr<FileHandle>& h, std::vector<Prefetch> items);
  // Picks up the layout sniffed for h's inode (once per layouts_version_).
  void refresh_layout_locked(FileHandle& h);
  // Random entries pooled over the safetensors files one process has entered: brings
  // h's share of its process's pool up to date (its entered tensors, and its file's
  // tensor count once it has any) and returns the pool's totals, {entered, tensors}.
  // pool_leave takes h's share out (release).
  std::pair<size_t, size_t> pool_entries_locked(FileHandle& h);
  void pool_leave(FileHandle& h);
  // For a stream of h that entered a safetensors tensor at random (did not start in the
  // header), the end of that tensor: readahead and tensor prefetch stop there, since
  // reads past it are the kernel reading ahead of a loader that faults tensors in at
  // random. 0 otherwise (no layout, or a stream from the header).
  uint64_t entered_tensor_end(const FileHandle& h) const;
  // The block for a read: its disk-cache file when the cache may serve that as it is
  // (BlockCache::open_file), else the block in memory (loaded from disk or the store).
  // parts: ranged GETs in parallel for a block fetched from the store (0: --get-parts).
  Result<BlockData> load_block(const BlockRef& b, bool files = true, int parts = 0);
  // Loads block p.block into the cache unless cached, as p.why says (vfs/internal.h).
  // Returns the block when it is in memory now (cached before, or loaded whole by this
  // call). A whole-file prefetch for h readies a disk-cached block and, with a page
  // store on, queues its file range of h's file for the kernel's page cache.
  cache::Block prefetch_block(const Prefetch& p, const std::shared_ptr<FileHandle>& h = nullptr);
  // The block's data, fetched, decoded and verified (refetched up to 3 times). `parts` >
  // 1 fetches it as that many ranged GETs in parallel where the volume's blocks allow.
  // sum, when given, receives the data's checksum64 as decoding checked it (LoadSum).
  Result<std::string> fetch_block(const std::string& key, uint32_t len, int parts = 1,
                                  cache::LoadSum* sum = nullptr);
  // One attempt of a parted fetch: the stored object of a plain block, in `parts` ranged
  // GETs run in parallel, joined.
  Result<object::SplitObject> get_parts(const std::string& key, uint32_t len, int parts);
  // How many parts a fetch of `bytes` a reader waits for is split into (1: none).
  int part_count(uint64_t bytes) const;
  // Object ranges (offset, length; -1: to the end) of `key`, fetched in parallel.
  Result<std::vector<std::string>> get_ranges(
      const std::string& key, const std::vector<std::pair<uint64_t, int64_t>>& ranges);
  // Tensor-aware readahead: appends to `out` the blocks of the rest of the tensor under
  // the middle of the read, if h's file has a known safetensors layout (see
  // docs/read-path.md), from the block after the one under the read's end. Blocks the
  // tensor covers partly are prefetched ranged if worth it. Returns the end of that
  // tensor (capped by tensor_prefetch_bytes), or 0: the read itself loads the tensor's
  // part of its own last block.
  uint64_t tensor_ahead_locked(FileHandle& h, uint64_t off, uint64_t len,
                               std::vector<Prefetch>& out);
  // After a read of [0, n) into buf: parses a safetensors header found there, for every
  // handle of the inode. Whether the file has a (parsed) safetensors layout.
  bool sniff_layout(const Context& ctx, FileHandle& h, uint64_t fh, const char* buf, size_t n);
  void submit_prefetch(std::vector<Prefetch> items);
  uint64_t prefetch_budget_blocks() const;

  // ranged.cc: ranged reads of blocks with a sub-block table (docs/read-path.md).
  // Whether fetching block bytes [lo, hi) of a block of block_len bytes ranged is worth
  // it: the volume allows it and the sub-blocks needed are at most half the block.
  bool range_worthwhile(uint32_t block_len, uint64_t lo, uint64_t hi) const;
  // Whether some sub-block of b is in the memory cache (and b is not, whole): then its
  // missing sub-blocks are fetched as ranges rather than the whole block again.
  bool has_cached_subs(const BlockRef& b);
  // Block bytes [lo, hi) of b: the whole block if cached, else its sub-blocks, fetching
  // the missing ones ranged; the whole block when b has no table. *fetched is set when
  // this call fetched from the store.
  Result<BlockData> load_range(const BlockRef& b, uint64_t lo, uint64_t hi, bool* fetched = nullptr,
                               bool files = true);
  // Fetches and verifies sub-blocks [a, z) of block `key` (len bytes), caches them in
  // memory, returns sub-block a. kNotSupported when the block has no table.
  Result<std::string> fetch_sub_blocks(const std::string& key, uint32_t len, uint32_t a,
                                       uint32_t z);
  // The raw bytes of sub-blocks [a, z), verified, refetched up to 3 times.
  Result<std::string> fetch_range(const std::string& key, uint32_t len, uint32_t a, uint32_t z);
  // The table of block `key`: kept, being fetched, or fetched now (then `fetch` runs the
  // GET; the caller must outlive it, which waiting on the result ensures).
  using TableResult = Result<std::shared_ptr<const object::BlockTable>>;
  using TableFuture = std::shared_future<TableResult>;
  TableFuture table_of(const std::string& key, uint32_t len, std::future<void>& fetch);
  TableResult fetch_table(const std::string& key, uint32_t len);
  // Whether block `key` is known to have no table (read it whole).
  bool known_without_table(const std::string& key);
  void prefetch_range(const Prefetch& p);
  // page_store.cc: queues the file range p covers of block `data` for the kernel's page
  // cache of h's file (when a page store is set and the queue has room).
  void queue_page_store(const std::shared_ptr<FileHandle>& h, const Prefetch& p, cache::Block data);
  // The same for a block readied in the disk cache: its bytes are read from its file.
  void queue_page_store(const std::shared_ptr<FileHandle>& h, const Prefetch& p,
                        cache::FileBlock file);
  // Both: the whole pages of the file range p covers, when the `have` bytes of its block
  // (in `block`, or else in `file`) hold them.
  void queue_page_store(const std::shared_ptr<FileHandle>& h, const Prefetch& p, uint64_t have,
                        cache::Block block, cache::FileBlock file);
  void page_store_loop();

  // background.cc
  void background_loop();
  void flush_aged();
  void maintenance();
  Status delete_slice(uint64_t slice_id, uint32_t slice_size);

  std::shared_ptr<meta::Meta> meta_;
  std::shared_ptr<object::Store> store_;
  VfsOptions opts_;
  std::unique_ptr<cache::BlockCache> cache_;
  std::unique_ptr<ThreadPool> uploads_;
  std::unique_ptr<ThreadPool> downloads_;
  std::unique_ptr<ThreadPool> parts_;  // the ranged GETs of parted block fetches
  VfsStats stats_;
  Status init_error_;  // an unusable volume format, reported by start()
  object::Compression compression_ = object::Compression::kNone;

  std::mutex handles_mu_;  // guards handles_, dirs_, next_fh_
  std::unordered_map<uint64_t, std::shared_ptr<FileHandle>> handles_;
  std::unordered_map<uint64_t, std::shared_ptr<DirHandle>> dirs_;
  uint64_t next_fh_ = 1;

  std::mutex writers_mu_;  // guards writers_
  std::unordered_map<Ino, std::shared_ptr<FileWriter>> writers_;

  std::atomic<uint64_t> buffered_bytes_{0};

  // Read path (reader.cc). layouts_ maps an inode to the safetensors layout parsed for
  // one (size, mtime) of it; layouts_version_ moves on every change so handles look
  // again. prefetched_ holds the keys of blocks prefetched and not yet read (bounded),
  // for the hit and waste counters. prefetch_queued_ counts prefetches queued or running.
  struct LayoutEntry {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    std::shared_ptr<const TensorLayout> layout;  // null: not a valid safetensors file
  };
  std::mutex layouts_mu_;  // guards layouts_
  std::unordered_map<Ino, LayoutEntry> layouts_;
  std::atomic<uint64_t> layouts_version_{1};
  // Random entries into safetensors files pooled per process (the opener's process id):
  // {entered tensors, tensors of the files entered}, the sums of its handles' shares.
  std::mutex pools_mu_;  // guards pools_
  std::unordered_map<uint32_t, std::pair<size_t, size_t>> pools_;
  std::mutex prefetched_mu_;  // guards prefetched_
  std::unordered_set<std::string> prefetched_;
  // The whole-file readahead's disk-cached blocks are readied (read off the disk and
  // verified) by at most kReadyingMax tasks at once; the rest wait in ready_backlog_, in
  // order, for one of those tasks (ready_in_turn). A deeper disk queue keeps the loader's
  // own reads waiting behind it (measured, 4 GiB shuffled from a warm disk cache: 0.69-0.89
  // GB/s with 3 or 4 at once, 0.67-0.79 without a limit, in the same turns).
  static constexpr size_t kReadyingMax = 4;
  std::mutex ready_mu_;  // guards readying_, ready_backlog_
  size_t readying_ = 0;
  std::list<ReadyItem> ready_backlog_;  // (a list: ReadyItem is defined in internal.h)
  void ready_in_turn(ReadyItem item);
  std::mutex prefetch_mu_;  // with prefetch_cv_: signals prefetch_queued_ reaching 0
  std::condition_variable prefetch_cv_;
  std::atomic<uint64_t> prefetch_queued_{0};
  // Ranged reads (ranged.cc): whether the volume's blocks can have a sub-block table
  // (no compression, no encryption), and the tables of blocks read ranged, by object key,
  // fetched or being fetched (kNotSupported: the block has none, read it whole); failed
  // fetches are dropped. Bounded: the map restarts when full.
  bool rangeable_ = false;
  std::mutex tables_mu_;                    // guards tables_
  std::array<std::mutex, 64> range_locks_;  // ranged fetches of one block take turns
  // Blocks being fetched whole, and blocks with a ranged fetch under way (counts per
  // key). A load claims its kind for a key only while the other kind holds none, checked
  // and marked under one lock: a ranged load joins a whole fetch in flight, and a whole
  // load of a block with a ranged fetch under way fetches only the missing sub-blocks.
  std::mutex inflight_mu_;
  std::unordered_map<std::string, int> whole_inflight_, range_inflight_;
  bool in_flight(const std::unordered_map<std::string, int>& m, const std::string& key);
  // Claims key in `mine` for its lifetime, unless `other` holds it (claimed() false).
  class InFlight {
   public:
    InFlight(Vfs& v, std::unordered_map<std::string, int>& mine,
             const std::unordered_map<std::string, int>& other, const std::string& key);
    ~InFlight();
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    bool claimed() const { return claimed_; }

   private:
    Vfs& v_;
    std::unordered_map<std::string, int>& m_;
    const std::string& key_;
    bool claimed_ = false;
  };
  // A whole-block load from the read path: joins a ranged fetch of the block under way
  // instead (fetching only the sub-blocks [lo, hi) still needs).
  Result<BlockData> load_whole(const BlockRef& b, uint64_t lo, uint64_t hi, bool files,
                               int parts = 0);
  std::unordered_map<std::string, TableFuture> tables_;
  // page_store.cc: the page store and its queue, served by one thread (pages_thread_,
  // started with the first store) so that no download thread waits on the kernel.
  struct PageStoreItem {
    std::shared_ptr<FileHandle> h;
    uint64_t generation = 0;    // h->inode->generation when queued
    uint64_t off = 0, len = 0;  // the file range stored
    uint64_t from = 0;          // where its bytes begin in block, or in file
    cache::Block block;         // the bytes in memory, or
    cache::FileBlock file;      // in a disk-cache file
  };
  std::mutex pages_mu_;  // guards everything below
  std::condition_variable pages_cv_;
  PageStore page_store_;
  PageStoreFile page_store_file_;
  std::deque<PageStoreItem> pages_queue_;
  uint64_t pages_queued_bytes_ = 0;  // of the blocks in memory queued
  size_t pages_queued_files_ = 0;    // disk-cache files queued
  bool pages_busy_ = false;          // a store is under way (without pages_mu_)
  bool pages_stop_ = false;
  std::thread pages_thread_;
  std::atomic<bool> page_store_on_{false};  // a page store is set (read without pages_mu_)
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool stopping_ = false;
  bool started_ = false;
  std::thread bg_;
};

}  // namespace sluice::vfs
