// URL splitting for metadata and storage URLs.
#include "common/url.h"

namespace sluice {

namespace {
std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}
}  // namespace

Result<Url> parse_url(const std::string& url) {
  auto p = url.find("://");
  if (p == std::string::npos || p == 0) {
    return Status(Code::kInvalid, "invalid URL '" + url + "': expected SCHEME://...");
  }
  Url u;
  u.scheme = url.substr(0, p);
  std::string rest = url.substr(p + 3);
  auto q = rest.find('?');
  u.body = rest.substr(0, q);
  if (q != std::string::npos) {
    std::string qs = rest.substr(q + 1);
    size_t start = 0;
    while (start <= qs.size()) {
      auto amp = qs.find('&', start);
      std::string kv = qs.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
      if (!kv.empty()) {
        auto eq = kv.find('=');
        try {
          if (eq == std::string::npos) {
            u.query[percent_decode(kv)] = "";
          } else {
            u.query[percent_decode(kv.substr(0, eq))] = percent_decode(kv.substr(eq + 1));
          }
        } catch (const std::exception&) {
          return Status(Code::kInvalid, "invalid URL '" + url + "': bad percent escape");
        }
      }
      if (amp == std::string::npos) break;
      start = amp + 1;
    }
  }
  return u;
}

}  // namespace sluice
