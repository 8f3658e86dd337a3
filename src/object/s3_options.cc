// S3 URL parsing, credentials lookup (URL, environment, shared credentials file) and
// path-style / virtual-hosted addressing.
#include "object/s3_options.h"

#include <cstdlib>
#include <fstream>
#include <set>

#include "object/store.h"

namespace sluice::object {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string credentials_file() {
  if (std::string f = env("AWS_SHARED_CREDENTIALS_FILE"); !f.empty()) return f;
  std::string home = env("HOME");
  return home.empty() ? "" : home + "/.aws/credentials";
}

// Reads one profile of an INI credentials file. A missing file or profile yields empty
// credentials; an unreadable file is not an error either (the next source may not exist).
sigv4::Credentials read_credentials_file(const std::string& path, const std::string& profile) {
  sigv4::Credentials c;
  std::ifstream in(path);
  std::string line, section;
  while (std::getline(in, line)) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = trim(std::string_view(t).substr(1, t.size() - 2));
      continue;
    }
    size_t eq = t.find('=');
    if (section != profile || eq == std::string::npos) continue;
    std::string key = trim(std::string_view(t).substr(0, eq));
    std::string value = trim(std::string_view(t).substr(eq + 1));
    if (key == "aws_access_key_id") c.access_key = value;
    if (key == "aws_secret_access_key") c.secret_key = value;
    if (key == "aws_session_token") c.session_token = value;
  }
  return c;
}

// Splits "HOST[:PORT]" (HOST may be "[v6]").
Status split_host_port(const std::string& hp, const std::string& url, S3Options& o) {
  auto bad = [&](const std::string& why) {
    return Status(Code::kInvalid, "invalid S3 URL '" + url + "': " + why);
  };
  size_t colon = hp.rfind(':');
  if (!hp.empty() && hp.front() == '[') {
    size_t close = hp.find(']');
    if (close == std::string::npos) return bad("unclosed '[' in the host");
    colon = close + 1 < hp.size() && hp[close + 1] == ':' ? close + 1 : std::string::npos;
  }
  o.host = hp.substr(0, colon);
  if (o.host.empty()) return bad("missing host (expected s3://HOST[:PORT]/BUCKET[/PREFIX])");
  if (colon != std::string::npos) {
    std::string p = hp.substr(colon + 1);
    char* end = nullptr;
    long port = std::strtol(p.c_str(), &end, 10);
    if (p.empty() || *end != '\0' || port < 1 || port > 65535) {
      return bad("port '" + p + "' is not a number from 1 to 65535");
    }
    o.port = static_cast<int>(port);
  }
  return Status::OK();
}

}  // namespace

std::string S3Options::endpoint() const {
  return host + ":" + std::to_string(port != 0 ? port : https ? 443 : 80);
}

std::string S3Options::location() const {
  std::string out = (https ? "s3://" : "s3+http://") + host;
  if (port != 0) out += ":" + std::to_string(port);
  out += "/" + bucket;
  if (!prefix.empty()) out += "/" + prefix.substr(0, prefix.size() - 1);
  return out;
}

S3Target s3_target(const S3Options& o, std::string_view object_key) {
  S3Target t;
  std::string host = o.virtual_style ? o.bucket + "." + o.host : o.host;
  if (o.port != 0) host += ":" + std::to_string(o.port);
  t.base_url = (o.https ? "https://" : "http://") + host;
  t.host = host;
  if (o.virtual_style) {
    t.path = "/" + std::string(object_key);
  } else {
    t.path = "/" + o.bucket;
    if (!object_key.empty()) t.path += "/" + std::string(object_key);
  }
  return t;
}

Result<sigv4::Credentials> resolve_s3_credentials(const Url& url) {
  sigv4::Credentials c{url.param("access_key"), url.param("secret_key"),
                       url.param("session_token")};
  if (!c.access_key.empty() || !c.secret_key.empty()) {
    if (c.access_key.empty() || c.secret_key.empty()) {
      return Status(Code::kInvalid,
                    "S3 URL options access_key and secret_key must be given together");
    }
    return c;
  }
  c = {env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
  if (!c.access_key.empty() && !c.secret_key.empty()) return c;
  std::string file = credentials_file();
  std::string profile = env("AWS_PROFILE").empty() ? "default" : env("AWS_PROFILE");
  if (!file.empty()) {
    c = read_credentials_file(file, profile);
    if (!c.access_key.empty() && !c.secret_key.empty()) return c;
  }
  return Status(Code::kInvalid,
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add "
                "profile [" +
                    profile + "] to " + (file.empty() ? "~/.aws/credentials" : file));
}

Result<S3Options> parse_s3_url(const Url& url) {
  static const std::set<std::string> kKnown = {"region",     "style",         "access_key",
                                               "secret_key", "session_token", "attempts"};
  S3Options o;
  // The URL as the user wrote it, less its options (which may hold a secret).
  const std::string shown = url.scheme + "://" + url.body;
  if (url.scheme == "s3") {
    o.https = true;
  } else if (url.scheme == "s3+http") {
    o.https = false;
  } else {
    return Status(Code::kInvalid, "not an S3 URL: '" + shown + "'");
  }
  for (const auto& [k, v] : url.query) {
    if (kKnown.count(k) == 0) {
      return Status(Code::kInvalid, "unknown S3 URL option '" + k + "' in '" + shown +
                                        "' (known: region, style, access_key, secret_key, "
                                        "session_token, attempts)");
    }
  }
  size_t slash = url.body.find('/');
  RETURN_IF_ERROR(split_host_port(url.body.substr(0, slash), shown, o));
  std::string rest = slash == std::string::npos ? "" : url.body.substr(slash + 1);
  size_t bslash = rest.find('/');
  o.bucket = rest.substr(0, bslash);
  if (o.bucket.empty()) {
    return Status(Code::kInvalid, "invalid S3 URL '" + shown + "': missing bucket (expected " +
                                      url.scheme + "://HOST[:PORT]/BUCKET[/PREFIX])");
  }
  if (bslash != std::string::npos) {
    std::string prefix = rest.substr(bslash + 1);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (!prefix.empty()) {
      if (Status st = check_key(prefix); !st.ok()) {
        return Status(Code::kInvalid,
                      "invalid S3 URL '" + shown + "': bad prefix: " + st.message());
      }
      o.prefix = prefix + "/";
    }
  }
  std::string style = url.param("style", "path");
  if (style != "path" && style != "virtual") {
    return Status(Code::kInvalid, "invalid S3 URL '" + shown +
                                      "': style must be path or "
                                      "virtual, not '" +
                                      style + "'");
  }
  o.virtual_style = style == "virtual";
  if (std::string a = url.param("attempts"); !a.empty()) {
    char* end = nullptr;
    long n = std::strtol(a.c_str(), &end, 10);
    if (*end != '\0' || n < 1 || n > 100) {
      return Status(Code::kInvalid, "invalid S3 URL '" + shown +
                                        "': attempts must be a number from 1 to 100, not '" + a +
                                        "'");
    }
    o.max_attempts = static_cast<int>(n);
  }
  o.region = url.param("region", env("AWS_REGION"));
  if (o.region.empty()) o.region = "us-east-1";
  ASSIGN_OR_RETURN(o.credentials, resolve_s3_credentials(url));
  return o;
}

}  // namespace sluice::object
