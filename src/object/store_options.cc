// open_store_for_mount: the backend plus the decorators of store_options.h.
#include "object/store_options.h"

#include "common/url.h"
#include "object/fault_store.h"

namespace sluice::object {

// When the retry decorator is on, it alone retries: an S3 store then tries each request
// once, so a dead endpoint costs 1 + retries requests, not (1 + retries) * attempts.
static Result<std::string> backend_url(const std::string& url, const StoreOptions& opts) {
  if (opts.retry.retries <= 0) return url;
  ASSIGN_OR_RETURN(Url u, parse_url(url));
  if ((u.scheme != "s3" && u.scheme != "s3+http") || u.query.count("attempts") > 0) return url;
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "attempts=1";
}

Result<std::shared_ptr<Store>> open_store_for_mount(const std::string& user_url,
                                                     const StoreOptions& opts) {
  ASSIGN_OR_RETURN(std::string url, backend_url(user_url, opts));
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
