// Store URL dispatch and the key rules shared by every backend.
#include "object/store.h"

#include <algorithm>
#include <string_view>

#include "common/url.h"
#include "object/file_store.h"
#include "object/mem_store.h"
#include "object/s3_store.h"

namespace sluice::object {

Result<SplitObject> Store::get_split(const std::string& key, size_t head_len) {
  ASSIGN_OR_RETURN(std::string all, get(key));
  SplitObject out;
  const size_t n = std::min(head_len, all.size());
  out.head.assign(all, 0, n);
  all.erase(0, n);
  out.body = std::move(all);
  return out;
}

Status check_key(const std::string& key) {
  auto bad = [&](const char* why) {
    return Status(Code::kInvalid, "invalid object key '" + key + "': " + why);
  };
  if (key.empty()) return bad("empty");
  if (key.find('\0') != std::string::npos) return bad("contains a NUL byte");
  if (key.front() == '/') return bad("leading '/'");
  size_t start = 0;
  while (true) {
    size_t slash = key.find('/', start);
    std::string_view part(key.data() + start,
                          (slash == std::string::npos ? key.size() : slash) - start);
    if (part.empty()) return bad("empty path component");
    if (part == "." || part == "..") return bad("'.' or '..' component");
    if (slash == std::string::npos) return Status::OK();
    start = slash + 1;
  }
}

Result<std::shared_ptr<Store>> open_store(const std::string& url) {
  ASSIGN_OR_RETURN(Url u, parse_url(url));
  if (u.scheme == "file") return open_file_store(u);
  if (u.scheme == "mem") return open_mem_store(u);
  if (u.scheme == "s3" || u.scheme == "s3+http") return open_s3_store(u);
  return Status(Code::kInvalid, "unsupported storage URL scheme '" + u.scheme + "://' in '" +
                                    url + "' (supported: file://, mem://, s3://, s3+http://)");
}

}  // namespace sluice::object
