// mem://NAME — an in-memory engine with optimistic, serializable transactions and
// fault injection, for tests. Engines opened with the same NAME in one process share
// their data (so two "clients" can be tested in one process) for as long as any of them
// is open; an empty NAME is private.
//
// Query options: mem://name?conflict_rate=0.1&fail_rate=0.01&seed=1
//   conflict_rate  fraction of commits that fail with kConflict (the driver retries)
//   fail_rate      fraction of commits that fail with kIO after nothing was written
// Faults apply to the commits of transact(), not to read().
#pragma once

#include <memory>

#include "common/url.h"
#include "kv/engine.h"

namespace sluice::kv {

Result<std::shared_ptr<Engine>> open_mem_engine(const Url& url);

// Fault injection knobs, adjustable while running (thread-safe).
struct MemFaults {
  double conflict_rate = 0;
  double fail_rate = 0;
};
// Sets the faults of an engine returned by open_mem_engine; false if it is not one.
bool set_mem_faults(Engine& engine, MemFaults faults);

}  // namespace sluice::kv
