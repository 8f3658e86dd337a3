// Vfs lifecycle, namespace operations (forwarded to meta, with sizes adjusted for
// buffered writes), open-file handles and truncation. Directory handles, xattrs and
// locks are in dir.cc; the data path in writer.cc and reader.cc.
#include "vfs/vfs.h"

#include <fcntl.h>

#include <algorithm>

#include "cache/tiered_cache.h"
#include "common/logging.h"
#include "vfs/internal.h"

namespace sluice::vfs {

namespace {

// setattr bits that ftruncate on a handle open for writing may set without a permission
// check (the size, and the times and suid clearing a write implies).
constexpr uint32_t kHandleSetAttrBits =
    meta::kSetSize | meta::kSetMtimeNow | meta::kSetCtime | meta::kKillSuid;

// The memory tier alone, or memory over disk when the options ask for a disk cache and
// one of its directories works.
std::unique_ptr<cache::BlockCache> make_block_cache(const VfsOptions& o) {
  if (!o.disk_cache_enabled()) return std::make_unique<cache::MemoryCache>(o.memory_cache_size);
  cache::DiskCacheOptions d;
  d.dirs = o.cache_dirs;
  d.capacity = o.cache_size;
  d.free_ratio = o.free_space_ratio;
  d.verify = o.cache_verify;
  auto disk = cache::DiskCache::open(std::move(d));
  if (!disk.ok()) {
    LOG_WARN("vfs: running without a disk cache: {}", disk.status().ToString());
    return std::make_unique<cache::MemoryCache>(o.memory_cache_size);
  }
  cache::TieredCacheOptions t;
  t.memory_capacity = o.memory_cache_size;
  t.max_pending_bytes = o.disk_write_queue;
  t.cache_writes = o.cache_writes;
  return std::make_unique<cache::TieredCache>(t, std::move(disk).value());
}

}  // namespace

void VfsOptions::set_memory_budget(uint64_t total) {
  if (disk_cache_enabled()) {
    memory_cache_size = total / 4;
    disk_write_queue = total / 8;
  } else {
    memory_cache_size = total / 2;
    disk_write_queue = 0;
  }
  buffer_size = total - memory_cache_size - disk_write_queue;
}

Vfs::Vfs(std::shared_ptr<meta::Meta> meta, std::shared_ptr<object::Store> store, VfsOptions opts)
    : meta_(std::move(meta)),
      store_(std::move(store)),
      opts_(opts),
      cache_(make_block_cache(opts)),
      uploads_(std::make_unique<ThreadPool>(std::max(1, opts.upload_threads))),
      downloads_(std::make_unique<ThreadPool>(std::max(1, opts.download_threads))) {
  const meta::Format& fmt = meta_->format();
  auto c = object::parse_compression(fmt.compression);
  if (c.ok()) {
    compression_ = *c;
  } else {
    init_error_ = c.status();
  }
  if (!fmt.encryption.empty() && !opts_.cipher) {
    init_error_ = Status(Code::kInvalid, "volume '" + fmt.name + "' is encrypted (" +
                                             fmt.encryption + "): its key is needed");
  } else if (fmt.encryption.empty() && opts_.cipher) {
    init_error_ = Status(Code::kInvalid, "volume '" + fmt.name + "' is not encrypted");
  }
  rangeable_ =
      compression_ == object::Compression::kNone && fmt.encryption.empty() && !opts_.cipher;
  // Parted fetches need every block's data at a known offset (fetch_block).
  if (rangeable_ && opts_.block_get_parts > 1) {
    parts_ = std::make_unique<ThreadPool>(std::max(1, opts_.download_threads) *
                                          (opts_.block_get_parts - 1));
  }
  if (fmt.block_size == 0 || fmt.block_size > meta::kChunkSize) {
    init_error_ = Status(Code::kInvalid, "volume block size " + std::to_string(fmt.block_size) +
                                             " is not in (0, 64 MiB]");
  }
}

Vfs::~Vfs() {
  Status st = stop();
  if (!st.ok()) LOG_WARN("vfs: stop: {}", st.ToString());
  // Drain the pools first: their tasks use the cache, the store and the stats (and queue
  // page stores: those go after).
  downloads_.reset();
  parts_.reset();
  uploads_.reset();
  stop_page_store(/*wait=*/true);
}

Status Vfs::start(meta::SessionInfo info) {
  RETURN_IF_ERROR(init_error_);
  std::lock_guard lk(bg_mu_);
  if (started_) return Status(Code::kInvalid, "vfs already started");
  RETURN_IF_ERROR(meta_->new_session(std::move(info)));
  started_ = true;
  stopping_ = false;
  if (opts_.background_jobs) bg_ = std::thread([this] { background_loop(); });
  return Status::OK();
}

Status Vfs::stop() {
  {
    std::lock_guard lk(bg_mu_);
    if (!started_) return Status::OK();
  }
  stop_page_store(/*wait=*/true);
  Status st = flush_all();
  {
    std::lock_guard lk(bg_mu_);
    stopping_ = true;
  }
  bg_cv_.notify_all();
  if (bg_.joinable()) bg_.join();
  {
    std::lock_guard lk(handles_mu_);
    handles_.clear();
    dirs_.clear();
  }
  {
    std::lock_guard lk(writers_mu_);
    if (buffered_bytes_ > 0) {
      LOG_ERROR("vfs: stopping with {} bytes of writes that could not be uploaded",
                buffered_bytes_.load());
    }
    writers_.clear();
    buffered_bytes_ = 0;
  }
  Status cs = meta_->close_session();
  {
    std::lock_guard lk(bg_mu_);
    started_ = false;
  }
  return st.ok() ? cs : st;
}

Status Vfs::check_writable() const {
  if (opts_.read_only) return Status(Code::kReadOnly, "file system is mounted read-only");
  return Status::OK();
}

// ---- namespace ----

Result<Entry> Vfs::lookup(const Context& ctx, Ino parent, std::string_view name) {
  ASSIGN_OR_RETURN(Entry e, meta_->lookup(ctx, parent, name));
  if (e.attr.is_file()) e.attr.size = std::max(e.attr.size, pending_size(e.ino));
  return e;
}

Result<Attr> Vfs::getattr(const Context& ctx, Ino ino) {
  // Pending first: a flush that commits in between then shows in meta's size.
  uint64_t pending = pending_size(ino);
  ASSIGN_OR_RETURN(Attr a, meta_->getattr(ino));
  if (a.is_file()) a.size = std::max(a.size, pending);
  return a;
}

Result<Attr> Vfs::setattr(const Context& ctx, Ino ino, const meta::SetAttr& req, uint64_t fh) {
  RETURN_IF_ERROR(check_writable());
  Context c = ctx;
  if (fh != 0 && (req.mask & ~kHandleSetAttrBits) == 0) {
    auto h = file_handle(ino, fh);
    if (h.ok() && (*h)->writable()) c.check_permission = false;
  }
  if (req.mask & meta::kSetSize) return truncate(c, ino, req);
  uint64_t pending = pending_size(ino);
  ASSIGN_OR_RETURN(Attr a, meta_->setattr(c, ino, req));
  if (a.is_file()) a.size = std::max(a.size, pending);
  return a;
}

Result<Attr> Vfs::truncate(const Context& ctx, Ino ino, const meta::SetAttr& req) {
  std::shared_ptr<FileWriter> w = acquire_writer(ino);
  Result<Attr> r = [&]() -> Result<Attr> {
    // Holding the writer's lock orders the truncate against this client's writes.
    std::lock_guard lk(w->mu);
    RETURN_IF_ERROR(flush_writer_locked(*w, 0));
    auto a = meta_->setattr(ctx, ino, req);
    w->generation++;  // handles reload size and chunk lists
    return a;
  }();
  release_writer(w);
  return r;
}

Result<Entry> Vfs::mknod(const Context& ctx, Ino parent, std::string_view name, meta::FileType type,
                         uint16_t mode, uint32_t rdev) {
  RETURN_IF_ERROR(check_writable());
  return meta_->mknod(ctx, parent, name, type, mode, rdev);
}

Result<Entry> Vfs::mkdir(const Context& ctx, Ino parent, std::string_view name, uint16_t mode) {
  RETURN_IF_ERROR(check_writable());
  return meta_->mkdir(ctx, parent, name, mode);
}

Result<Entry> Vfs::symlink(const Context& ctx, Ino parent, std::string_view name,
                           std::string_view target) {
  RETURN_IF_ERROR(check_writable());
  return meta_->symlink(ctx, parent, name, target);
}

Result<std::string> Vfs::readlink(const Context& ctx, Ino ino) { return meta_->readlink(ctx, ino); }

Status Vfs::unlink(const Context& ctx, Ino parent, std::string_view name) {
  RETURN_IF_ERROR(check_writable());
  return meta_->unlink(ctx, parent, name);
}

Status Vfs::rmdir(const Context& ctx, Ino parent, std::string_view name) {
  RETURN_IF_ERROR(check_writable());
  return meta_->rmdir(ctx, parent, name);
}

Status Vfs::rename(const Context& ctx, Ino parent, std::string_view name, Ino new_parent,
                   std::string_view new_name, uint32_t flags) {
  RETURN_IF_ERROR(check_writable());
  return meta_->rename(ctx, parent, name, new_parent, new_name, flags);
}

Result<Entry> Vfs::link(const Context& ctx, Ino ino, Ino new_parent, std::string_view new_name) {
  RETURN_IF_ERROR(check_writable());
  ASSIGN_OR_RETURN(Entry e, meta_->link(ctx, ino, new_parent, new_name));
  if (e.attr.is_file()) e.attr.size = std::max(e.attr.size, pending_size(e.ino));
  return e;
}

Status Vfs::access(const Context& ctx, Ino ino, int mask) { return meta_->access(ctx, ino, mask); }

Result<meta::StatFs> Vfs::statfs(const Context& ctx) { return meta_->statfs(ctx); }

// ---- files ----

Result<std::pair<Entry, uint64_t>> Vfs::create(const Context& ctx, Ino parent,
                                               std::string_view name, uint16_t mode, int flags) {
  RETURN_IF_ERROR(check_writable());
  ASSIGN_OR_RETURN(Entry e, meta_->mknod(ctx, parent, name, meta::FileType::kRegular, mode, 0));
  // The creator may open what it created whatever the new file's mode says.
  Context c = ctx;
  c.check_permission = false;
  ASSIGN_OR_RETURN(uint64_t fh, open(c, e.ino, flags & ~O_TRUNC));
  return std::make_pair(std::move(e), fh);
}

Result<uint64_t> Vfs::open(const Context& ctx, Ino ino, int flags) {
  const bool for_write = (flags & O_ACCMODE) != O_RDONLY;
  if (for_write || (flags & O_TRUNC)) RETURN_IF_ERROR(check_writable());
  auto h = std::make_shared<FileHandle>();
  h->ino = ino;
  h->flags = flags;
  h->opener = ctx.pid;
  h->inode = acquire_writer(ino);
  // Generation before attributes: a commit in between makes the handle reload.
  h->generation = h->inode->generation.load();
  auto attr = meta_->open(ctx, ino, flags);
  if (!attr.ok()) {
    release_writer(h->inode);
    return attr.status();
  }
  h->size = attr->size;
  h->mtime_ns = attr->mtime_ns;
  // A reader of a file with a whole copy (copies.cc) reads the copy while the file stays
  // as it is (refresh_locked lets go of it), and passthrough hands it to the kernel.
  if (!for_write && !(flags & O_TRUNC)) {
    h->copy = find_copy(ino, *attr);
    if (h->copy) stats_.copy_opens++;
  }
  if ((flags & O_TRUNC) && for_write && std::max(attr->size, pending_size(ino)) > 0) {
    meta::SetAttr req;
    req.mask = meta::kSetSize | meta::kSetMtimeNow;
    Context c = ctx;
    c.check_permission = false;  // meta.open checked O_TRUNC already
    auto t = truncate(c, ino, req);
    if (!t.ok()) {
      Status cs = meta_->close(ino);
      if (!cs.ok()) LOG_WARN("vfs: close of inode {}: {}", ino, cs.ToString());
      release_writer(h->inode);
      return t.status();
    }
  }
  std::lock_guard lk(handles_mu_);
  uint64_t fh = next_fh_++;
  handles_.emplace(fh, std::move(h));
  return fh;
}

Result<std::shared_ptr<FileHandle>> Vfs::file_handle(Ino ino, uint64_t fh) {
  std::lock_guard lk(handles_mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end() || it->second->ino != ino) {
    return Status(Code::kBadFd, "no open file handle " + std::to_string(fh) + " for inode " +
                                    std::to_string(ino));
  }
  return it->second;
}

Status Vfs::flush(const Context& ctx, Ino ino, uint64_t fh) {
  ASSIGN_OR_RETURN(auto h, file_handle(ino, fh));
  if (!h->writable()) return Status::OK();
  return flush_writer(*h->inode);
}

Status Vfs::fsync(const Context& ctx, Ino ino, uint64_t fh, bool datasync) {
  ASSIGN_OR_RETURN(auto h, file_handle(ino, fh));
  return flush_writer(*h->inode);
}

Status Vfs::release(Ino ino, uint64_t fh) {
  std::shared_ptr<FileHandle> h;
  {
    std::lock_guard lk(handles_mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end() || it->second->ino != ino) {
      return Status(Code::kBadFd, "no open file handle " + std::to_string(fh));
    }
    h = std::move(it->second);
    handles_.erase(it);
  }
  {
    // Its stream may still be taken over (reader.cc), but no longer by address.
    std::lock_guard lk(h->inode->streams_mu);
    for (FileWriter::Stream& s : h->inode->streams) {
      if (s.owner == h.get()) s.owner = nullptr;
    }
  }
  {
    std::lock_guard lk(h->mu);
    pool_leave(*h);
  }
  Status st;
  if (h->writable()) st = flush_writer(*h->inode);
  release_writer(h->inode);
  Status cs = meta_->close(ino);
  return st.ok() ? cs : st;
}

}  // namespace sluice::vfs
