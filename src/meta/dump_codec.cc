// JSON forms of the dump format (see dump_codec.h).
#include "meta/dump_codec.h"

#include <array>
#include <cstdio>

namespace sluice::meta::dump {

namespace {

constexpr std::array<const char*, 8> kTypeNames = {"",     "file",     "dir",     "symlink",
                                                   "fifo", "blockdev", "chardev", "socket"};
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

const char* type_name(FileType t) {
  auto i = static_cast<size_t>(t);
  return i < kTypeNames.size() ? kTypeNames[i] : "";
}

std::optional<FileType> type_from_name(std::string_view name) {
  for (size_t i = 1; i < kTypeNames.size(); i++) {
    if (name == kTypeNames[i]) return static_cast<FileType>(i);
  }
  return std::nullopt;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; k++) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // No overlong forms, surrogates or code points past U+10FFFF.
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                 uint8_t(bytes[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out.push_back(kAlphabet[(v >> k) & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        pad++;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[k] = b64_value(c);
      if (v[k] < 0) return std::nullopt;
    }
    uint32_t x =
        (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
    out.push_back(static_cast<char>(x >> 16));
    if (pad < 2) out.push_back(static_cast<char>(x >> 8));
    if (pad < 1) out.push_back(static_cast<char>(x));
  }
  return out;
}

Json bytes_to_json(std::string_view bytes) {
  if (valid_utf8(bytes)) return Json(std::string(bytes));
  Json j = Json::object();
  j["base64"] = base64_encode(bytes);
  return j;
}

Result<std::string> bytes_from_json(const Json& j, const char* what) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.size() == 1 && j.contains("base64") && j["base64"].is_string()) {
    auto v = base64_decode(j["base64"].get<std::string>());
    if (v) return *v;
  }
  return Status(Code::kInvalid, std::string(what) + " must be a string or {\"base64\": ...}");
}

std::string mode_to_text(uint16_t mode) {
  char buf[16];
  snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

Result<uint16_t> mode_from_text(const Json& j) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    uint32_t v = 0;
    bool ok = !s.empty() && s.size() <= 6;
    for (char c : s) {
      if (c < '0' || c > '7') ok = false;
      v = v * 8 + static_cast<uint32_t>(c - '0');
    }
    if (ok && v <= 0xffff) return static_cast<uint16_t>(v);
  }
  return Status(Code::kInvalid, "mode must be octal text such as \"0644\"");
}

}  // namespace sluice::meta::dump
