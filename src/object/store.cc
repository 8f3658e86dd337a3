// Store URL dispatch.
#include "object/store.h"

#include "common/url.h"
#include "object/file_store.h"
#include "object/mem_store.h"

namespace sluice::object {

Result<std::shared_ptr<Store>> open_store(const std::string& url) {
  ASSIGN_OR_RETURN(Url u, parse_url(url));
  if (u.scheme == "file") return open_file_store(u);
  if (u.scheme == "mem") return open_mem_store(u);
  return Status(Code::kInvalid, "unsupported storage URL scheme '" + u.scheme + "://' in '" +
                                    url + "' (supported: file://, mem://)");
}

}  // namespace sluice::object
