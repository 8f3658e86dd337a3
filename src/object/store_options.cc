// open_store_for_mount: the backend plus the decorators of store_options.h.
#include "object/store_options.h"

#include "object/fault_store.h"

namespace sluice::object {

Result<std::shared_ptr<Store>> open_store_for_mount(const std::string& url,
                                                     const StoreOptions& opts) {
  std::shared_ptr<Store> store;
  if (!opts.fault_spec.empty()) {
    // Checked before the backend opens, so a typo changes nothing.
    ASSIGN_OR_RETURN(FaultSpec spec, FaultSpec::parse(opts.fault_spec));
    ASSIGN_OR_RETURN(store, open_store(url));
    store = std::make_shared<FaultStore>(std::move(store), std::move(spec), opts.fault_spec);
  } else {
    ASSIGN_OR_RETURN(store, open_store(url));
  }
  if (opts.retry.retries > 0) store = std::make_shared<RetryStore>(std::move(store), opts.retry);
  const LimitOptions& l = opts.limits;
  if (l.upload_rate != 0 || l.download_rate != 0 || l.max_uploads > 0 || l.max_downloads > 0) {
    store = std::make_shared<LimitStore>(std::move(store), l);
  }
  return store;
}

}  // namespace sluice::object
