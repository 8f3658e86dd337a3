// The JSON forms shared by dump.cc and load.cc (docs/dump-format.md): type names, byte
// strings (text when valid UTF-8, else {"base64": ...}), modes as octal text. Internal to
// the meta layer.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "meta/types.h"

namespace sluice::meta::dump {

// Insertion-ordered, so records read in the order the format documents.
using Json = nlohmann::ordered_json;

const char* type_name(FileType t);  // "file", "dir", "symlink", "fifo", ...
std::optional<FileType> type_from_name(std::string_view name);

bool valid_utf8(std::string_view s);
// Hand-written: neither nlohmann-json nor the C++ library has base64.
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

// Arbitrary bytes (names, symlink targets, xattr values) as JSON, and back. `what` names
// the field in the error message.
Json bytes_to_json(std::string_view bytes);
Result<std::string> bytes_from_json(const Json& j, const char* what);

// Mode bits as 4 octal digits ("0755", "4755") and back (kInvalid if not octal or too big).
std::string mode_to_text(uint16_t mode);
Result<uint16_t> mode_from_text(const Json& j);

}  // namespace sluice::meta::dump
