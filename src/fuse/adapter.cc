// fuse: request context, attribute conversion, replies and the adapter's per-inode
// bookkeeping (kernel lookup counts, page-cache validity, POSIX lock owners).
#include "fuse/adapter.h"

#include <algorithm>
#include <cerrno>
#include <vector>

#include "common/logging.h"

namespace sluice::fuse {

namespace {

constexpr int kInlineGroups = 32;
// st_blksize: the I/O size stdio and cp use; large requests are cheap here.
constexpr blksize_t kBlockSize = 1 << 20;

timespec to_timespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = ns / 1'000'000'000;
  ts.tv_nsec = ns % 1'000'000'000;
  if (ts.tv_nsec < 0) {
    ts.tv_sec -= 1;
    ts.tv_nsec += 1'000'000'000;
  }
  return ts;
}

}  // namespace

bool Adapter::fits_pipe(size_t bytes, size_t buffers, size_t headers) const {
  // libfuse (fuse_send_data_iov) wants a page per header and per buffer, one more, and
  // the message: the headers' bytes are under 64.
  constexpr size_t kPage = 4096;
  const size_t pipe = splice_pipe.load(std::memory_order_relaxed);
  return pipe > 0 && kPage * (headers + buffers + 1) + 64 + bytes <= pipe;
}

meta::Context Adapter::context(fuse_req_t req, bool with_groups) const {
  const fuse_ctx* c = fuse_req_ctx(req);
  meta::Context ctx;
  ctx.uid = c->uid;
  ctx.gid = c->gid;
  ctx.pid = static_cast<uint32_t>(c->pid);
  ctx.umask = static_cast<uint16_t>(c->umask);
  // Root passes every check that groups could decide, so skip the /proc read for it.
  if (with_groups && c->uid != 0) {
    gid_t inline_groups[kInlineGroups];
    int n = fuse_req_getgroups(req, kInlineGroups, inline_groups);
    if (n > kInlineGroups) {
      std::vector<gid_t> groups(static_cast<size_t>(n));
      n = fuse_req_getgroups(req, n, groups.data());
      if (n > 0) ctx.gids.assign(groups.begin(), groups.begin() + std::min<size_t>(n, groups.size()));
    } else if (n > 0) {
      ctx.gids.assign(inline_groups, inline_groups + n);
    }
  }
  return ctx;
}

struct stat Adapter::to_stat(Ino ino, const Attr& attr) const {
  struct stat st = {};
  st.st_ino = ino;
  st.st_mode = attr.st_mode();
  st.st_nlink = attr.nlink;
  st.st_uid = attr.uid;
  st.st_gid = attr.gid;
  st.st_size = static_cast<off_t>(attr.size);
  st.st_rdev = attr.rdev;
  st.st_blksize = kBlockSize;
  st.st_blocks = static_cast<blkcnt_t>((attr.size + 511) / 512);
  st.st_atim = to_timespec(attr.atime_ns);
  st.st_mtim = to_timespec(attr.mtime_ns);
  st.st_ctim = to_timespec(attr.ctime_ns);
  return st;
}

fuse_entry_param Adapter::to_entry(const Entry& e) const {
  fuse_entry_param p = {};
  p.ino = e.ino;
  p.attr = to_stat(e.ino, e.attr);
  p.attr_timeout = opts.attr_timeout;
  p.entry_timeout = e.attr.is_dir() ? opts.dir_entry_timeout : opts.entry_timeout;
  return p;
}

void Adapter::reply_entry(fuse_req_t req, const Entry& e) {
  fuse_entry_param p = to_entry(e);
  add_lookup(e.ino, 1);
  if (fuse_reply_entry(req, &p) != 0) forget(e.ino, 1);
}

void Adapter::reply_attr(fuse_req_t req, Ino ino, const Attr& attr) {
  struct stat st = to_stat(ino, attr);
  fuse_reply_attr(req, &st, opts.attr_timeout);
}

void Adapter::reply_error(fuse_req_t req, const Status& st, const char* op) const {
  int err = to_errno(st);
  if (err == EIO) LOG_WARN("fuse {}: {}", op, st.ToString());
  fuse_reply_err(req, err);
}

void Adapter::add_lookup(Ino ino, uint64_t n) {
  std::lock_guard<std::mutex> g(lookup_mu_);
  lookups_[ino] += n;
}

void Adapter::forget(Ino ino, uint64_t n) {
  bool gone = false;
  {
    std::lock_guard<std::mutex> g(lookup_mu_);
    auto it = lookups_.find(ino);
    if (it == lookups_.end() || it->second < n) {
      LOG_WARN("fuse forget: inode {} forgotten {} times but looked up {}", ino, n,
               it == lookups_.end() ? 0 : it->second);
      if (it != lookups_.end()) lookups_.erase(it);
      gone = true;
    } else if ((it->second -= n) == 0) {
      lookups_.erase(it);
      gone = true;
    }
  }
  if (gone) {
    // The kernel dropped the inode and its pages: the next open starts afresh.
    std::lock_guard<std::mutex> g(cache_mu_);
    seen_.erase(ino);
  }
}

std::map<uint64_t, uint64_t> Adapter::lookup_counts() const {
  std::lock_guard<std::mutex> g(lookup_mu_);
  return {lookups_.begin(), lookups_.end()};
}

bool Adapter::keep_cache(Ino ino, const Attr& attr) {
  std::pair<int64_t, uint64_t> now{attr.mtime_ns, attr.size};
  std::lock_guard<std::mutex> g(cache_mu_);
  auto [it, inserted] = seen_.try_emplace(ino, now);
  if (inserted) return false;
  bool same = it->second == now;
  it->second = now;
  return same;
}

void Adapter::note_posix_lock(Ino ino, uint64_t owner) {
  std::lock_guard<std::mutex> g(lock_mu_);
  posix_locks_.emplace(ino, owner);
}

bool Adapter::take_posix_lock(Ino ino, uint64_t owner) {
  std::lock_guard<std::mutex> g(lock_mu_);
  return posix_locks_.erase({ino, owner}) > 0;
}

}  // namespace sluice::fuse
