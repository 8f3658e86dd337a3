// Minimal URL splitting for metadata and storage URLs: "scheme://body?k=v&k2=v2".
// Each engine or store interprets body itself (a path, host:port/bucket, ...).
#pragma once

#include <map>
#include <string>

#include "common/status.h"

namespace sluice {

struct Url {
  std::string scheme;                        // "sqlite3", "mem", "file", "s3", ...
  std::string body;                          // between "://" and "?"
  std::map<std::string, std::string> query;  // decoded query parameters

  std::string param(const std::string& key, const std::string& def = "") const {
    auto it = query.find(key);
    return it == query.end() ? def : it->second;
  }
};

// Fails with kInvalid (and a one-line message naming the URL) when there is no "://".
Result<Url> parse_url(const std::string& url);

}  // namespace sluice
