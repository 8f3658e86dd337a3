// fuse: directory handles — opendir, readdir, readdirplus, releasedir, fsyncdir.
//
// opendir takes a vfs snapshot, so offsets are stable: the entry at snapshot index i
// ("." is 0, ".." is 1) carries offset i + 1, where the next read resumes. readdirplus
// counts one kernel lookup for each entry it replies, except "." and "..", and only for
// entries that fit in the kernel's buffer.
#include <algorithm>
#include <string>
#include <vector>

#include "fuse/adapter.h"

namespace sluice::fuse {

namespace {

// Smallest encoded entry (a name of up to 8 bytes): bounds how many entries one reply
// can hold, so that the vfs does not load attributes that cannot be sent.
constexpr size_t kMinDirent = 32;       // fuse_dirent (24) + name
constexpr size_t kMinDirentPlus = 160;  // fuse_entry_out (128) + fuse_dirent + name

bool is_dot(const std::string& name) { return name == "." || name == ".."; }

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Adapter& a = adapter(req);
  auto r = a.vfs.opendir(a.context(req), ino);
  if (!r.ok()) return a.reply_error(req, r.status(), "opendir");
  fi->fh = *r;
  if (fuse_reply_open(req, fi) != 0) (void)a.vfs.releasedir(ino, fi->fh);
}

void read_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
              bool plus) {
  Adapter& a = adapter(req);
  size_t max_entries = std::max<size_t>(1, size / (plus ? kMinDirentPlus : kMinDirent));
  auto r = a.vfs.readdir(a.context(req), ino, fi->fh, static_cast<uint64_t>(off), max_entries,
                         plus);
  if (!r.ok()) return a.reply_error(req, r.status(), plus ? "readdirplus" : "readdir");

  std::string buf(size, '\0');
  size_t used = 0;
  std::vector<Ino> counted;
  off_t next = off;
  for (const meta::DirEntry& e : *r) {
    next++;
    char* p = buf.data() + used;
    size_t room = size - used;
    size_t n;
    if (plus) {
      fuse_entry_param ep = {};
      if (!is_dot(e.name) && e.attr) {
        ep = a.to_entry(Entry{e.ino, *e.attr});
      } else {
        // No entry for the kernel to link (ino 0): only the name and type are listed.
        ep.attr.st_ino = e.ino;
        ep.attr.st_mode = meta::type_bits(e.type);
      }
      n = fuse_add_direntry_plus(req, p, room, e.name.c_str(), &ep, next);
      if (n > room) break;
      if (ep.ino != 0) {
        a.add_lookup(ep.ino, 1);
        counted.push_back(ep.ino);
      }
    } else {
      struct stat st = {};
      st.st_ino = e.ino;
      st.st_mode = meta::type_bits(e.type);
      n = fuse_add_direntry(req, p, room, e.name.c_str(), &st, next);
      if (n > room) break;
    }
    used += n;
  }
  if (fuse_reply_buf(req, buf.data(), used) != 0) {
    for (Ino ino_counted : counted) a.forget(ino_counted, 1);
  }
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  read_dir(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    fuse_file_info* fi) {
  read_dir(req, ino, size, off, fi, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Adapter& a = adapter(req);
  Status st = a.vfs.releasedir(ino, fi->fh);
  if (!st.ok()) return a.reply_error(req, st, "releasedir");
  fuse_reply_err(req, 0);
}

// Metadata is durable once each operation's transaction commits.
void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

}  // namespace

void add_dir_ops(fuse_lowlevel_ops& ops) {
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.fsyncdir = op_fsyncdir;
}

}  // namespace sluice::fuse
