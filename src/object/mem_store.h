// mem://NAME — objects in memory, for tests. Stores opened with the same NAME in one
// process share their objects; an empty NAME is private.
#pragma once

#include "common/url.h"
#include "object/store.h"

namespace sluice::object {

Result<std::shared_ptr<Store>> open_mem_store(const Url& url);

}  // namespace sluice::object
