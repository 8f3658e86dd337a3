// file://DIR — objects as files under a local directory. Puts write a temp file in the
// same directory, fsync it, then rename it into place, so readers never see a partial
// object. The directory is created on first use.
#pragma once

#include "common/url.h"
#include "object/store.h"

namespace sluice::object {

Result<std::shared_ptr<Store>> open_file_store(const Url& url);

}  // namespace sluice::object
