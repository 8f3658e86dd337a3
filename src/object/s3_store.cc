// S3Store: object operations as signed S3 REST requests, with retries and actionable
// errors. XML responses (ListObjectsV2, DeleteObjects, errors) are small and flat, so they
// are read by hand: the text of a named element, entity-decoded.
#include "object/s3_store.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>
#include <thread>

#include "common/logging.h"

namespace sluice::object {

namespace {

constexpr size_t kListPage = 1000;
constexpr size_t kDeleteBatch = 1000;
constexpr int kMaxBackoffMs = 5000;

std::string xml_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    size_t semi = s[i] == '&' ? s.find(';', i) : std::string_view::npos;
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back(s[i]);
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp")
      out.push_back('&');
    else if (ent == "lt")
      out.push_back('<');
    else if (ent == "gt")
      out.push_back('>');
    else if (ent == "quot")
      out.push_back('"');
    else if (ent == "apos")
      out.push_back('\'');
    else if (ent.size() > 1 && ent[0] == '#') {
      bool hexa = ent[1] == 'x' || ent[1] == 'X';
      unsigned long cp =
          std::strtoul(std::string(ent.substr(hexa ? 2 : 1)).c_str(), nullptr, hexa ? 16 : 10);
      // UTF-8 encoding of the code point.
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    } else {
      out.push_back(s[i]);
      continue;
    }
    i = semi;
  }
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// The raw content of the first <tag>...</tag> (or "" for <tag/>) at or after *pos; *pos
// moves past it. Nothing when the element is absent.
std::optional<std::string_view> xml_element(std::string_view xml, std::string_view tag,
                                            size_t* pos) {
  const std::string open = "<" + std::string(tag);
  size_t at = *pos;
  while ((at = xml.find(open, at)) != std::string_view::npos) {
    size_t end = at + open.size();
    if (end < xml.size() && (xml[end] == '>' || xml[end] == ' ' || xml[end] == '/')) break;
    at = end;
  }
  if (at == std::string_view::npos) return std::nullopt;
  size_t gt = xml.find('>', at);
  if (gt == std::string_view::npos) return std::nullopt;
  if (xml[gt - 1] == '/') {
    *pos = gt + 1;
    return std::string_view();
  }
  const std::string close = "</" + std::string(tag) + ">";
  size_t stop = xml.find(close, gt + 1);
  if (stop == std::string_view::npos) return std::nullopt;
  *pos = stop + close.size();
  return xml.substr(gt + 1, stop - gt - 1);
}

std::string xml_text(std::string_view xml, std::string_view tag) {
  size_t pos = 0;
  auto e = xml_element(xml, tag, &pos);
  return e ? xml_decode(*e) : "";
}

// "Wed, 12 Oct 2009 17:50:00 GMT" (Last-Modified); 0 when unparsable.
int64_t parse_http_date(const std::string& s) {
  struct tm tm = {};
  if (strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) == nullptr) return 0;
  return int64_t(timegm(&tm)) * 1'000'000'000;
}

// "2009-10-12T17:50:30.000Z" (ListObjectsV2 LastModified); 0 when unparsable.
int64_t parse_iso_date(const std::string& s) {
  struct tm tm = {};
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return 0;
  int64_t ns = int64_t(timegm(&tm)) * 1'000'000'000;
  if (*rest == '.') {
    int64_t scale = 100'000'000;
    for (rest++; *rest >= '0' && *rest <= '9' && scale > 0; rest++, scale /= 10) {
      ns += (*rest - '0') * scale;
    }
  }
  return ns;
}

bool retryable_status(long status) { return status >= 500 || status == 429; }

}  // namespace

struct S3Store::Call {
  std::string method;
  std::string object;  // full object key; "" addresses the bucket
  sigv4::Params query;
  sigv4::Params headers;
  std::string_view body;
  size_t body_split = 0;  // HttpRequest::body_split
};

S3Store::S3Store(S3Options options, HttpOptions http) : opts_(std::move(options)), http_(http) {}

Result<HttpResponse> S3Store::send(const Call& call) {
  const S3Target target = s3_target(opts_, call.object);
  const std::string query = sigv4::canonical_query(call.query);
  const std::string url =
      target.base_url + sigv4::uri_encode(target.path, true) + (query.empty() ? "" : "?" + query);
  // Without TLS the body is hashed, so the signature also covers it.
  const std::string payload_hash = call.body.empty() ? std::string(sigv4::kEmptyPayloadSha256)
                                   : opts_.https     ? std::string(sigv4::kUnsignedPayload)
                                                     : sigv4::sha256_hex(call.body);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int attempt = 1;; attempt++) {
    sigv4::Request signing{call.method, target.path, call.query, call.headers, payload_hash};
    signing.headers.emplace_back("host", target.host);
    sigv4::Signature sig = sigv4::sign(signing, opts_.credentials, opts_.region,
                                       sigv4::amz_date(std::chrono::system_clock::now()));
    HttpRequest req{call.method, url, std::move(signing.headers), call.body, call.body_split};
    req.headers.emplace_back("authorization", sig.authorization);
    Result<HttpResponse> resp = http_.perform(req, opts_.endpoint());
    bool retry = resp.ok() ? retryable_status(resp->status) : resp.status().retryable();
    if (!retry || attempt >= opts_.max_attempts) {
      if (resp.ok() || attempt == 1) return resp;
      return Status(resp.status().code(), resp.status().message() + " (gave up after " +
                                              std::to_string(attempt) + " attempts)");
    }
    int cap = std::min(kMaxBackoffMs, opts_.backoff_ms << std::min(attempt - 1, 16));
    int delay = cap / 2 + static_cast<int>(rng() % static_cast<uint64_t>(cap / 2 + 1));
    LOG_DEBUG("s3: {} '{}' on {}: {}; retry {} in {} ms", call.method, call.object, describe(),
              resp.ok() ? "HTTP " + std::to_string(resp->status) : resp.status().message(), attempt,
              delay);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
}

Status S3Store::error_of(const Call& call, const HttpResponse& resp, const std::string& key) const {
  const std::string code = xml_text(resp.body, "Code");
  const std::string msg = xml_text(resp.body, "Message");
  std::string detail = "HTTP " + std::to_string(resp.status);
  if (!code.empty()) detail += " " + code;
  if (!msg.empty()) detail += ": " + msg;
  if (resp.status == 403) {
    return Status(Code::kAccess, "access denied to " + describe() + ": " + detail +
                                     " (check the access key and secret)");
  }
  if (code == "NoSuchBucket") {
    return Status(Code::kNotFound, "bucket " + opts_.bucket + " does not exist at " +
                                       (opts_.https ? "s3://" : "s3+http://") + opts_.endpoint() +
                                       " (sluice format creates it)");
  }
  if (resp.status == 404 && !key.empty()) {
    return Status(Code::kNotFound, "object '" + key + "' not found in " + describe());
  }
  std::string what = call.method + (key.empty() ? "" : " '" + key + "'") + " on " + describe();
  if (resp.status == 301 || code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" ||
      code == "IllegalLocationConstraintException") {
    return Status(Code::kInvalid,
                  what + ": " + detail + " (check the region, now " + opts_.region + ")");
  }
  if (retryable_status(resp.status)) {
    return Status(Code::kUnavailable, what + ": " + detail + " (gave up after " +
                                          std::to_string(opts_.max_attempts) + " attempts)");
  }
  return Status(Code::kIO, what + ": " + detail);
}

Status S3Store::put(const std::string& key, std::string_view data) {
  RETURN_IF_ERROR(check_key(key));
  Call call{"PUT", full_key(key), {}, {{"content-type", "application/octet-stream"}}, data};
  ASSIGN_OR_RETURN(HttpResponse resp, send(call));
  if (resp.status / 100 != 2) return error_of(call, resp, key);
  return Status::OK();
}

Result<std::string> S3Store::get(const std::string& key, uint64_t off, int64_t len) {
  RETURN_IF_ERROR(check_key(key));
  if (len == 0) {
    // No byte range is empty in HTTP: check that the object exists instead.
    ASSIGN_OR_RETURN(ObjectInfo info, head(key));
    (void)info;
    return std::string();
  }
  Call call{"GET", full_key(key), {}, {}, {}};
  bool ranged = off > 0 || len > 0;
  if (ranged) {
    std::string range = "bytes=" + std::to_string(off) + "-";
    if (len > 0) range += std::to_string(off + static_cast<uint64_t>(len) - 1);
    call.headers.emplace_back("range", range);
  }
  ASSIGN_OR_RETURN(HttpResponse resp, send(call));
  if (resp.status == 416) return std::string();  // the range starts at or past the end
  if (resp.status == 206) return std::move(resp.body);
  if (resp.status != 200) return error_of(call, resp, key);
  if (!ranged) return std::move(resp.body);
  // The server ignored the Range header and sent the whole object.
  if (off >= resp.body.size()) return std::string();
  return resp.body.substr(off, len < 0 ? std::string::npos : static_cast<size_t>(len));
}

Result<SplitObject> S3Store::get_split(const std::string& key, size_t head_len) {
  RETURN_IF_ERROR(check_key(key));
  Call call{"GET", full_key(key), {}, {}, {}, head_len};
  ASSIGN_OR_RETURN(HttpResponse resp, send(call));
  if (resp.status != 200) {
    resp.body.insert(0, resp.head);  // the error document, whole
    return error_of(call, resp, key);
  }
  return SplitObject{std::move(resp.head), std::move(resp.body)};
}

Result<ObjectInfo> S3Store::head(const std::string& key) {
  RETURN_IF_ERROR(check_key(key));
  Call call{"HEAD", full_key(key), {}, {}, {}};
  ASSIGN_OR_RETURN(HttpResponse resp, send(call));
  if (resp.status != 200) return error_of(call, resp, key);
  ObjectInfo info{key, std::strtoull(resp.header("content-length").c_str(), nullptr, 10),
                  parse_http_date(resp.header("last-modified"))};
  return info;
}

Status S3Store::del(const std::string& key) {
  RETURN_IF_ERROR(check_key(key));
  Call call{"DELETE", full_key(key), {}, {}, {}};
  ASSIGN_OR_RETURN(HttpResponse resp, send(call));
  if (resp.status / 100 == 2) return Status::OK();
  if (resp.status == 404 && xml_text(resp.body, "Code") != "NoSuchBucket") return Status::OK();
  return error_of(call, resp, key);
}

Result<std::vector<ObjectInfo>> S3Store::list(const std::string& prefix,
                                              const std::string& start_after, size_t limit) {
  std::vector<ObjectInfo> out;
  const std::string s3_prefix = full_key(prefix);
  std::string token;
  while (true) {
    Call call{"GET", "", {{"list-type", "2"}}, {}, {}};
    if (!s3_prefix.empty()) call.query.emplace_back("prefix", s3_prefix);
    size_t page = limit == 0 ? kListPage : std::min(kListPage, limit - out.size());
    call.query.emplace_back("max-keys", std::to_string(page));
    if (!token.empty()) {
      call.query.emplace_back("continuation-token", token);
    } else if (!start_after.empty()) {
      call.query.emplace_back("start-after", full_key(start_after));
    }
    ASSIGN_OR_RETURN(HttpResponse resp, send(call));
    if (resp.status != 200) return error_of(call, resp, "");
    size_t pos = 0;
    while (auto contents = xml_element(resp.body, "Contents", &pos)) {
      std::string key = xml_text(*contents, "Key");
      if (!key.starts_with(opts_.prefix)) continue;
      out.push_back(ObjectInfo{key.substr(opts_.prefix.size()),
                               std::strtoull(xml_text(*contents, "Size").c_str(), nullptr, 10),
                               parse_iso_date(xml_text(*contents, "LastModified"))});
    }
    token = xml_text(resp.body, "NextContinuationToken");
    bool truncated = xml_text(resp.body, "IsTruncated") == "true";
    if (!truncated || token.empty() || (limit != 0 && out.size() >= limit)) break;
  }
  if (limit != 0 && out.size() > limit) out.resize(limit);
  return out;
}

Status S3Store::create() {
  std::string body;
  if (opts_.region != "us-east-1") {
    body =
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<LocationConstraint>" +
        xml_escape(opts_.region) + "</LocationConstraint></CreateBucketConfiguration>";
  }
  Call call{"PUT", "", {}, {}, body};
  ASSIGN_OR_RETURN(HttpResponse resp, send(call));
  if (resp.status / 100 == 2) return Status::OK();
  std::string code = xml_text(resp.body, "Code");
  if (code == "BucketAlreadyOwnedByYou") return Status::OK();
  if (code == "BucketAlreadyExists") {
    // Some servers (s3rver) say so to the owner too: a bucket we can read is ours.
    ASSIGN_OR_RETURN(HttpResponse probe, send(Call{"HEAD", "", {}, {}, {}}));
    if (probe.status == 200) return Status::OK();
    return Status(Code::kExists, "bucket " + opts_.bucket +
                                     " already exists and belongs to "
                                     "another account: choose another bucket name");
  }
  return error_of(call, resp, "");
}

Status S3Store::del_many(const std::vector<std::string>& keys) {
  for (const auto& key : keys) RETURN_IF_ERROR(check_key(key));
  for (size_t start = 0; start < keys.size(); start += kDeleteBatch) {
    std::string body =
        "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>";
    size_t end = std::min(keys.size(), start + kDeleteBatch);
    for (size_t i = start; i < end; i++) {
      body += "<Object><Key>" + xml_escape(full_key(keys[i])) + "</Key></Object>";
    }
    body += "</Delete>";
    Call call{"POST",
              "",
              {{"delete", ""}},
              {{"content-md5", sigv4::md5_base64(body)}, {"content-type", "application/xml"}},
              body};
    ASSIGN_OR_RETURN(HttpResponse resp, send(call));
    if (resp.status != 200) return error_of(call, resp, "");
    size_t pos = 0;
    if (auto err = xml_element(resp.body, "Error", &pos)) {
      std::string key = xml_text(*err, "Key");
      if (key.starts_with(opts_.prefix)) key = key.substr(opts_.prefix.size());
      return Status(Code::kIO, "cannot delete '" + key + "' from " + describe() + ": " +
                                   xml_text(*err, "Code") + ": " + xml_text(*err, "Message"));
    }
  }
  return Status::OK();
}

Result<std::shared_ptr<Store>> open_s3_store(const Url& url) {
  ASSIGN_OR_RETURN(S3Options opts, parse_s3_url(url));
  return std::shared_ptr<Store>(std::make_shared<S3Store>(std::move(opts)));
}

}  // namespace sluice::object
