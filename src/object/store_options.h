// The object store a mount uses: the backend of the volume's storage URL under the
// decorators that the mount options ask for.
//
//   LimitStore (bandwidth, concurrency)      outermost: one slot and one charge per request
//   RetryStore (backoff, budget)             retries what the layers below report
//   FaultStore (only with a fault spec)      innermost, so retries see injected faults
//   backend (file://, mem://, s3://, ...)
#pragma once

#include <memory>
#include <string>

#include "object/limit_store.h"
#include "object/retry_store.h"
#include "object/store.h"

namespace sluice::object {

struct StoreOptions {
  std::string fault_spec;  // FaultStore spec (fault_store.h); empty: no fault injection
  RetryOptions retry;      // retry.retries == 0: no RetryStore
  LimitOptions limits;     // all zero: no LimitStore
};

// Opens the backend of `url` and stacks the decorators. A bad URL or fault spec is
// kInvalid with a one-line message.
Result<std::shared_ptr<Store>> open_store_for_mount(const std::string& url,
                                                     const StoreOptions& opts);

}  // namespace sluice::object
