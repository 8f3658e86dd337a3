// sluice dump: writes a volume's whole metadata as JSON lines (meta/dump.h,
// docs/dump-format.md) to a file or stdout, for moving a volume between metadata engines,
// backups and inspection. A file is written under a temporary name and renamed when
// complete, so a failed dump leaves no file behind.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "kv/engine.h"
#include "meta/dump.h"

namespace sluice::cli {

namespace {

struct DumpArgs {
  std::string meta_url;
  std::string file;
  bool paged = false;
};

Status run_dump(const DumpArgs& a) {
  ASSIGN_OR_RETURN(auto engine, kv::open_engine(absolute_url(a.meta_url), false));
  meta::DumpOptions opts;
  opts.snapshot = !a.paged;
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (tty) {
    opts.progress = [](const meta::DumpStats& s) {
      fprintf(stderr, "\rdumped %llu records (%llu inodes, %llu entries), %s",
              static_cast<unsigned long long>(s.records), static_cast<unsigned long long>(s.inodes),
              static_cast<unsigned long long>(s.entries), format_size(s.bytes).c_str());
    };
  }
  auto clear = [&] {
    if (tty) fprintf(stderr, "\r\033[K");
  };
  if (a.file == "-") {
    auto r = meta::dump_volume(*engine, std::cout, opts);
    clear();
    return r.status();
  }
  const std::string tmp = a.file + ".partial";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) return errno_error(errno, "cannot create " + tmp);
  auto r = meta::dump_volume(*engine, out, opts);
  out.close();
  clear();
  if (r.ok() && !out) r = Status(Code::kIO, "writing " + tmp + " failed");
  std::error_code ec;
  if (!r.ok()) {
    std::filesystem::remove(tmp, ec);
    return r.status();
  }
  std::filesystem::rename(tmp, a.file, ec);
  if (ec) return Status(Code::kIO, "cannot rename " + tmp + " to " + a.file + ": " + ec.message());
  fprintf(stderr, "dumped %llu inodes, %llu entries, %llu chunks (%s) to %s\n",
          static_cast<unsigned long long>(r->inodes), static_cast<unsigned long long>(r->entries),
          static_cast<unsigned long long>(r->chunks), format_size(r->bytes).c_str(),
          a.file.c_str());
  return Status::OK();
}

}  // namespace

Command add_dump(CLI::App& app) {
  auto a = std::make_shared<DumpArgs>();
  CLI::App* sub = add_command(
      app, "dump", "Write a volume's metadata to a JSON file",
      "Write the whole metadata of the volume at META_URL to FILE as JSON lines (one record "
      "a line: settings, inodes, directory entries, chunks, xattrs, pending deletions, "
      "counters; see docs/dump-format.md). 'sluice load' restores it into any metadata "
      "engine. FILE '-' is stdout. File data stays in the object store: a dump holds "
      "metadata only.\n\n"
      "The dump reads one snapshot of the engine, so it is consistent even while the volume "
      "is mounted; with --paged it reads in pages of separate transactions instead, which is "
      "only consistent on a volume nobody writes (unmount it first). Sessions and locks are "
      "not dumped; files that are open but already unlinked are dumped as removed.",
      "  sluice dump sqlite3:///var/lib/sluice/models.db models.jsonl\n"
      "  sluice dump sqlite3://models.db - | zstd > models.jsonl.zst");
  sub->add_option("META_URL", a->meta_url, "Metadata engine URL of a formatted volume")->required();
  sub->add_option("FILE", a->file, "Where to write the dump; '-' for stdout")->required();
  sub->add_flag("--paged", a->paged,
                "Read in pages of separate transactions instead of one snapshot (for engines "
                "that cannot hold a long read transaction)");
  return {sub, [a] { return run_dump(*a); }};
}

}  // namespace sluice::cli
