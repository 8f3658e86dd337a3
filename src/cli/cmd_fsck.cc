// sluice fsck: checks a volume's consistency — the metadata invariants of
// meta/check.h (entries, link counts, reachability, chunk records, usage counters) and,
// unless --skip-objects, that every block of every live slice exists in the store.
// Reports every problem on stdout; exits 1 when any is found.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>

#include "cli/cli.h"
#include "common/thread_pool.h"
#include "kv/engine.h"
#include "meta/check.h"
#include "meta/meta.h"
#include "object/layout.h"
#include "object/store.h"

namespace sluice::cli {

namespace {

struct FsckArgs {
  std::string meta_url;
  bool skip_objects = false;
  int threads = 16;
};

// HEADs every block of the live slices in parallel; returns one line per missing or
// unreadable block.
std::vector<std::string> check_objects(object::Store& store, const meta::Format& f,
                                       const std::vector<meta::SliceRef>& slices, int threads) {
  std::vector<std::string> problems;
  std::mutex mu;
  std::atomic<uint64_t> done{0};
  uint64_t total = 0;
  for (auto& s : slices) total += object::block_count(s.size, f.block_size);
  bool tty = isatty(STDERR_FILENO);
  {
    ThreadPool pool(static_cast<size_t>(threads));
    for (auto& s : slices) {
      for (uint32_t i = 0; i < object::block_count(s.size, f.block_size); i++) {
        pool.submit([&, s, i] {
          uint32_t len = object::block_len(s.size, f.block_size, i);
          std::string key = object::block_key(f.name, s.id, i, len);
          auto h = store.head(key);
          if (!h.ok()) {
            std::lock_guard<std::mutex> g(mu);
            problems.push_back(fmt::format("inode {}: block {} of slice {}: {}", s.ino, key, s.id,
                                           h.status().ToString()));
          }
          uint64_t n = ++done;
          if (tty && (n % 256 == 0 || n == total)) {
            fprintf(stderr, "\rchecking objects: %llu/%llu", static_cast<unsigned long long>(n),
                    static_cast<unsigned long long>(total));
          }
        });
      }
    }
  }
  if (tty && total > 0) fprintf(stderr, "\n");
  return problems;
}

Status run_fsck(const FsckArgs& a) {
  std::string url = absolute_url(a.meta_url);
  ASSIGN_OR_RETURN(auto engine, kv::open_engine(url, false));
  ASSIGN_OR_RETURN(auto m, meta::Meta::open(engine));
  ASSIGN_OR_RETURN(meta::CheckReport rep, meta::check_volume(*engine));
  uint64_t blocks = 0;
  if (!a.skip_objects) {
    ASSIGN_OR_RETURN(auto store, object::open_store(m->format().storage));
    auto missing = check_objects(*store, m->format(), rep.live_slices, a.threads);
    for (auto& s : rep.live_slices) blocks += object::block_count(s.size, m->format().block_size);
    rep.problems.insert(rep.problems.end(), missing.begin(), missing.end());
  }
  for (auto& p : rep.problems) printf("%s\n", p.c_str());
  printf("%llu inodes (%llu directories, %llu files), %llu entries, %llu slices%s: %s\n",
         static_cast<unsigned long long>(rep.inodes),
         static_cast<unsigned long long>(rep.directories),
         static_cast<unsigned long long>(rep.files), static_cast<unsigned long long>(rep.entries),
         static_cast<unsigned long long>(rep.slices),
         a.skip_objects ? "" : fmt::format(", {} blocks", blocks).c_str(),
         rep.problems.empty() ? "consistent" : "PROBLEMS FOUND");
  if (!rep.problems.empty()) {
    return Status(Code::kCorruption, fmt::format("{} problem(s) found", rep.problems.size()));
  }
  return Status::OK();
}

}  // namespace

Command add_fsck(CLI::App& app) {
  auto a = std::make_shared<FsckArgs>();
  CLI::App* sub = add_command(
      app, "fsck", "Check a volume's consistency",
      "Check the volume at META_URL: every directory entry points to an inode of the same "
      "type, link counts match the entries naming each inode, every directory has exactly "
      "one parent, no inode is unreachable, chunk records decode and stay in bounds, the data "
      "of removed files is queued for deletion, and the usage counters match the inodes. "
      "Unless --skip-objects is given, it also checks that every block of every file exists "
      "in the object store.\n\n"
      "Each problem is printed on its own line, then a summary. The exit code is 0 when the "
      "volume is consistent and 1 otherwise. Run it on a volume that is not being written: "
      "changes made during the check can show as transient problems.",
      "  sluice fsck sqlite3:///var/lib/sluice/models.db\n"
      "  sluice fsck --skip-objects sqlite3://models.db");
  sub->add_option("META_URL", a->meta_url, "Metadata engine URL of a formatted volume")
      ->required();
  sub->add_flag("--skip-objects", a->skip_objects,
                "Check metadata only; do not look up the blocks in the object store");
  sub->add_option("--threads", a->threads, "Parallel object lookups (default 16)")
      ->check(CLI::Range(1, 256));
  return {sub, [a] { return run_fsck(*a); }};
}

}  // namespace sluice::cli
