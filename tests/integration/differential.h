// A randomized differential tester: one random sequence of file-system operations
// (create, write at random offsets and sizes, truncate, rename, link, unlink, mkdir, rmdir,
// read, fsync) is applied to two directory trees — a local directory (the reference) and
// a Sluice mount — and the errno of every operation and the whole tree (names, types,
// sizes, link counts, file contents) are compared after every step.
#pragma once

#include <cstdint>
#include <string>

namespace sluice::testing {

struct DiffOptions {
  uint64_t seed = 1;
  int steps = 300;
  uint64_t max_file_size = 3 << 20;  // writes land below this offset (crosses 1 MiB and more)
};

struct DiffResult {
  bool ok = true;
  int steps_run = 0;
  std::string failure;  // the first divergence, with the step and the operation
};

// Applies the sequence to both roots (each must be an empty directory).
DiffResult run_differential(const std::string& reference_root, const std::string& subject_root,
                            const DiffOptions& opts);

// Seed and step count from SLUICE_DIFF_SEED / SLUICE_DIFF_STEPS when set.
DiffOptions diff_options_from_env(DiffOptions defaults);

}  // namespace sluice::testing
