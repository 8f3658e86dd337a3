// Directory handles (a snapshot per opendir, so offsets stay stable while the directory
// changes), xattrs, and file locks (blocking requests poll meta with growing sleeps).
#include <chrono>

#include "vfs/internal.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

Result<uint64_t> Vfs::opendir(const Context& ctx, Ino ino) {
  ASSIGN_OR_RETURN(Attr a, meta_->getattr(ino));
  if (!a.is_dir())
    return Status(Code::kNotDir, "inode " + std::to_string(ino) + " is not a directory");
  ASSIGN_OR_RETURN(std::vector<DirEntry> list, meta_->readdir(ctx, ino, false));
  auto d = std::make_shared<DirHandle>();
  d->ino = ino;
  d->parent = a.parent != 0 ? a.parent : ino;
  d->entries.reserve(list.size() + 2);
  d->entries.push_back({".", ino, meta::FileType::kDirectory, std::nullopt});
  d->entries.push_back({"..", d->parent, meta::FileType::kDirectory, std::nullopt});
  for (auto& e : list) d->entries.push_back(std::move(e));
  std::lock_guard lk(handles_mu_);
  uint64_t fh = next_fh_++;
  dirs_.emplace(fh, std::move(d));
  return fh;
}

Result<std::vector<DirEntry>> Vfs::readdir(const Context& ctx, Ino ino, uint64_t fh,
                                           uint64_t offset, size_t max_entries, bool plus) {
  std::shared_ptr<DirHandle> d;
  {
    std::lock_guard lk(handles_mu_);
    auto it = dirs_.find(fh);
    if (it == dirs_.end() || it->second->ino != ino) {
      return Status(Code::kBadFd, "no open directory handle " + std::to_string(fh));
    }
    d = it->second;
  }
  std::lock_guard lk(d->mu);
  std::vector<DirEntry> out;
  size_t i = offset;
  while (i < d->entries.size() && (max_entries == 0 || out.size() < max_entries)) {
    DirEntry e = d->entries[i];
    if (plus) {
      auto a = getattr(ctx, e.ino);
      if (!a.ok()) {
        if (a.status().is(Code::kNotFound) && i >= 2) {
          // Gone since opendir: drop it, so later entries keep consecutive indices.
          d->entries.erase(d->entries.begin() + static_cast<std::ptrdiff_t>(i));
          continue;
        }
        return a.status();
      }
      e.attr = std::move(a).value();
    }
    out.push_back(std::move(e));
    i++;
  }
  return out;
}

Status Vfs::releasedir(Ino ino, uint64_t fh) {
  std::lock_guard lk(handles_mu_);
  auto it = dirs_.find(fh);
  if (it == dirs_.end() || it->second->ino != ino) {
    return Status(Code::kBadFd, "no open directory handle " + std::to_string(fh));
  }
  dirs_.erase(it);
  return Status::OK();
}

// ---- xattrs ----

Result<std::string> Vfs::getxattr(const Context& ctx, Ino ino, std::string_view name) {
  return meta_->getxattr(ctx, ino, name);
}

Result<std::vector<std::string>> Vfs::listxattr(const Context& ctx, Ino ino) {
  return meta_->listxattr(ctx, ino);
}

Status Vfs::setxattr(const Context& ctx, Ino ino, std::string_view name, std::string_view value,
                     int flags) {
  RETURN_IF_ERROR(check_writable());
  return meta_->setxattr(ctx, ino, name, value, flags);
}

Status Vfs::removexattr(const Context& ctx, Ino ino, std::string_view name) {
  RETURN_IF_ERROR(check_writable());
  return meta_->removexattr(ctx, ino, name);
}

// ---- locks ----

Status Vfs::wait_for_lock(const std::function<Status()>& try_lock, bool block,
                          const std::function<bool()>& interrupted) {
  auto delay = std::chrono::milliseconds(5);
  for (;;) {
    Status s = try_lock();
    if (!block || !s.is(Code::kAgain)) return s;
    if (interrupted && interrupted()) return Status(Code::kInterrupted, "lock wait interrupted");
    std::unique_lock lk(bg_mu_);
    if (bg_cv_.wait_for(lk, delay, [this] { return stopping_; })) {
      return Status(Code::kInterrupted, "file system is stopping");
    }
    delay = std::min(delay * 2, std::chrono::milliseconds(100));
  }
}

Status Vfs::flock(Ino ino, uint64_t owner, uint32_t type, bool block,
                  const std::function<bool()>& interrupted) {
  return wait_for_lock([&] { return meta_->flock(ino, owner, type); }, block, interrupted);
}

Result<meta::LockRange> Vfs::getlk(Ino ino, uint64_t owner, const meta::LockRange& want) {
  return meta_->getlk(ino, owner, want);
}

Status Vfs::setlk(Ino ino, uint64_t owner, const meta::LockRange& lock, bool block,
                  const std::function<bool()>& interrupted) {
  return wait_for_lock([&] { return meta_->setlk(ino, owner, lock); }, block, interrupted);
}

}  // namespace sluice::vfs
