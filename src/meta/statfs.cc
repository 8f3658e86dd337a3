// statfs: volume size and inode usage from the usedSpace and usedInodes counters and the
// format's capacity and inode limits.
#include <algorithm>

#include "meta/internal.h"
#include "meta/keys.h"

namespace sluice::meta {

namespace {
// What an unlimited volume reports: 1 PiB, and a billion free inodes.
constexpr uint64_t kUnlimitedBytes = uint64_t{1} << 50;
constexpr uint64_t kUnlimitedInodes = 1'000'000'000;
}  // namespace

Result<StatFs> Meta::statfs(const Context& ctx) {
  int64_t space = 0, inodes = 0;
  RETURN_IF_ERROR(engine_->read([&](kv::Txn& txn) -> Status {
    ASSIGN_OR_RETURN(space, internal::get_counter(txn, keys::kUsedSpace));
    ASSIGN_OR_RETURN(inodes, internal::get_counter(txn, keys::kUsedInodes));
    return Status::OK();
  }));
  StatFs st;
  st.total_bytes = format_.capacity > 0 ? format_.capacity : kUnlimitedBytes;
  st.used_bytes = static_cast<uint64_t>(std::max<int64_t>(space, 0));
  st.avail_bytes = st.total_bytes > st.used_bytes ? st.total_bytes - st.used_bytes : 0;
  st.used_inodes = static_cast<uint64_t>(std::max<int64_t>(inodes, 0));
  if (format_.inodes > 0) {
    st.avail_inodes = format_.inodes > st.used_inodes ? format_.inodes - st.used_inodes : 0;
  } else {
    st.avail_inodes = kUnlimitedInodes;
  }
  return st;
}

}  // namespace sluice::meta
