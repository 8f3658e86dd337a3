// sluice load: restores a dump written by `sluice dump` (meta/dump.h,
// docs/dump-format.md) into an empty metadata engine, e.g. to move a volume to another
// engine. The loaded volume keeps the name, uuid and storage URL of the dumped one.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "kv/engine.h"
#include "meta/dump.h"

namespace sluice::cli {

namespace {

struct LoadArgs {
  std::string meta_url;
  std::string file;
};

Status run_load(const LoadArgs& a) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (a.file != "-") {
    file.open(a.file, std::ios::binary);
    if (!file) return errno_error(errno, "cannot open " + a.file);
    in = &file;
  }
  const std::string url = absolute_url(a.meta_url);
  ASSIGN_OR_RETURN(auto engine, kv::open_engine(url, true));
  meta::LoadOptions opts;
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (tty) {
    opts.progress = [](const meta::DumpStats& s) {
      fprintf(stderr, "\rloaded %llu records (%llu inodes, %llu entries), %s",
              static_cast<unsigned long long>(s.records), static_cast<unsigned long long>(s.inodes),
              static_cast<unsigned long long>(s.entries), format_size(s.bytes).c_str());
    };
  }
  auto r = meta::load_volume(*engine, *in, opts);
  if (tty) fprintf(stderr, "\r\033[K");
  RETURN_IF_ERROR(r.status());
  fprintf(stderr, "loaded %llu inodes, %llu entries, %llu chunks into %s\n",
          static_cast<unsigned long long>(r->inodes), static_cast<unsigned long long>(r->entries),
          static_cast<unsigned long long>(r->chunks), redact_url(url).c_str());
  return Status::OK();
}

}  // namespace

Command add_load(CLI::App& app) {
  auto a = std::make_shared<LoadArgs>();
  CLI::App* sub = add_command(
      app, "load", "Restore a volume's metadata from a dump",
      "Read a dump written by 'sluice dump' from FILE ('-' for stdin) into the metadata "
      "engine at META_URL, which must be empty (a SQLite file is created). The volume keeps "
      "its name, uuid and storage URL, so once loaded it can be mounted over the same object "
      "store. Do not mount the old and the new copy at the same time: both would write to "
      "the same objects.\n\n"
      "Every record is checked before it is written, and the keys are committed in batches. "
      "A load that fails midway (a truncated or malformed dump, an engine error) leaves an "
      "incomplete volume that mount refuses; load again into an empty database.",
      "  sluice load sqlite3:///var/lib/sluice/models-copy.db models.jsonl\n"
      "  zstd -dc models.jsonl.zst | sluice load sqlite3://models.db -");
  sub->add_option("META_URL", a->meta_url, "Metadata engine URL of an empty database")->required();
  sub->add_option("FILE", a->file, "The dump to read; '-' for stdin")->required();
  return {sub, [a] { return run_load(*a); }};
}

}  // namespace sluice::cli
