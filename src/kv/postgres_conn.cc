// postgres:// URL parsing, libpq connections and PostgreSQL error mapping.
#include "kv/postgres_conn.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace sluice::kv::pg {

namespace {

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// A positive integer option no larger than max; false when malformed.
bool parse_int(const std::string& v, long max, int& out) {
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || n <= 0 || n > max) return false;
  out = static_cast<int>(n);
  return true;
}

// libpq's connection errors span lines ("connection to server at ... failed: FATAL:  x\n\t
// Is the server running ...?"): keep the reason only.
std::string one_line(std::string_view msg) {
  std::string s(msg.substr(0, msg.find('\n')));
  if (auto p = s.rfind(" failed: "); p != std::string::npos) s = s.substr(p + 9);
  for (const char* lvl : {"FATAL:  ", "ERROR:  "}) {
    if (s.rfind(lvl, 0) == 0) s = s.substr(strlen(lvl));
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s.empty() ? "unknown error" : s;
}

void ignore_notice(void*, const char*) {}

}  // namespace

std::string Config::describe() const {
  std::string s = scheme + "://";
  if (!user.empty()) s += user + "@";
  s += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (!port.empty()) s += ":" + port;
  s += "/" + dbname;
  if (!prefix.empty()) s += "?prefix=" + prefix;
  return s;
}

Result<Config> parse_config(const Url& url) {
  Config c;
  c.scheme = url.scheme;
  const std::string example = " (expected " + url.scheme + "://USER@HOST:PORT/DATABASE)";
  std::string_view body = url.body;
  auto slash = body.find('/');
  if (slash == std::string_view::npos || slash + 1 == body.size()) {
    return Status(Code::kInvalid, url.scheme + ":// URL needs a database name" + example);
  }
  c.dbname = percent_decode(body.substr(slash + 1));
  if (c.dbname.find('/') != std::string::npos) {
    return Status(Code::kInvalid, "invalid database name '" + c.dbname + "'" + example);
  }
  std::string_view authority = body.substr(0, slash);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = userinfo.find(':');
    c.user = percent_decode(userinfo.substr(0, colon));
    if (colon != std::string_view::npos) c.password = percent_decode(userinfo.substr(colon + 1));
  }
  std::string_view hostport = authority;
  std::string_view port;
  if (!hostport.empty() && hostport[0] == '[') {  // [IPv6]:port
    auto close = hostport.find(']');
    if (close == std::string_view::npos) {
      return Status(Code::kInvalid, "invalid host in " + url.scheme + ":// URL" + example);
    }
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') {
        return Status(Code::kInvalid, "invalid host in " + url.scheme + ":// URL" + example);
      }
      port = hostport.substr(close + 2);
    }
    hostport = hostport.substr(1, close - 1);
  } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    port = hostport.substr(colon + 1);
    hostport = hostport.substr(0, colon);
  }
  c.host = percent_decode(hostport);
  if (!port.empty() || authority.find(':') != std::string_view::npos) {
    int p = 0;
    if (!parse_int(std::string(port), 65535, p)) {
      return Status(Code::kInvalid, "invalid port '" + std::string(port) + "' in " + url.scheme +
                                        ":// URL" + example);
    }
    c.port = std::to_string(p);
  }
  if (c.password.empty()) {
    if (const char* pw = std::getenv("SLUICE_META_PASSWORD"); pw != nullptr) c.password = pw;
  }
  for (const auto& [k, v] : url.query) {
    if (k == "prefix") {
      if (v.find('\0') != std::string::npos) {
        return Status(Code::kInvalid, "postgres option prefix must not contain a NUL byte");
      }
      c.prefix = v;
    } else if (k == "sslmode") {
      c.sslmode = v;
    } else if (k == "connect_timeout") {
      if (!parse_int(v, 3600, c.connect_timeout_s)) {
        return Status(Code::kInvalid,
                      "postgres option connect_timeout='" + v + "': expected seconds");
      }
    } else if (k == "max_connections") {
      if (!parse_int(v, 10000, c.max_connections)) {
        return Status(Code::kInvalid,
                      "postgres option max_connections='" + v + "': expected a positive number");
      }
    } else {
      return Status(Code::kInvalid,
                    "unknown postgres option '" + k +
                        "' (supported: prefix, sslmode, connect_timeout, max_connections)");
    }
  }
  return c;
}

Result<PgConn> connect(const Config& cfg, const std::string& dbname) {
  const std::string db = dbname.empty() ? cfg.dbname : dbname;
  const std::string timeout = std::to_string(cfg.connect_timeout_s);
  std::vector<const char*> keys, values;
  auto add = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    keys.push_back(k);
    values.push_back(v.c_str());
  };
  add("host", cfg.host);
  add("port", cfg.port);
  add("dbname", db);
  add("user", cfg.user);
  add("password", cfg.password);
  add("sslmode", cfg.sslmode);
  add("connect_timeout", timeout);
  // A server that vanishes without closing the socket is noticed within seconds, not
  // after the kernel's default of hours.
  static const std::string kOne = "1", kIdle = "5", kInterval = "2", kCount = "2",
                           kUserTimeout = "5000", kApp = "sluice";
  add("keepalives", kOne);
  add("keepalives_idle", kIdle);
  add("keepalives_interval", kInterval);
  add("keepalives_count", kCount);
  add("tcp_user_timeout", kUserTimeout);
  add("application_name", kApp);
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PgConn c(PQconnectdbParams(keys.data(), values.data(), 0));
  if (!c) return Status(Code::kUnavailable, "out of memory opening a PostgreSQL connection");
  if (PQstatus(c.get()) == CONNECTION_OK) {
    // Notices ("relation already exists, skipping") are not errors; keep them off stderr.
    PQsetNoticeProcessor(c.get(), ignore_notice, nullptr);
    return c;
  }
  const std::string why = one_line(PQerrorMessage(c.get()));
  const std::string where = cfg.describe();
  if (why.find("database \"") != std::string::npos &&
      why.find("does not exist") != std::string::npos) {
    return Status(Code::kNotFound, "metadata database " + where + ": " + why);
  }
  if (PQconnectionNeedsPassword(c.get()) ||
      why.find("authentication failed") != std::string::npos) {
    return Status(Code::kAccess, "cannot connect to metadata engine " + where + ": " + why);
  }
  return Status(Code::kUnavailable, "cannot connect to metadata engine " + where + ": " + why);
}

bool connection_lost(PGconn* c, const PGresult* r) {
  if (c == nullptr || PQstatus(c) == CONNECTION_BAD || r == nullptr) return true;
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  if (state == nullptr) return false;
  std::string_view s(state);
  return s.substr(0, 2) == "08" || s.substr(0, 4) == "57P0";
}

Status error_of(PGconn* c, const PGresult* r, const std::string& engine, std::string_view what) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string why = primary ? primary : one_line(c ? PQerrorMessage(c) : "no connection");
  std::string_view s = state ? state : "";
  Code code = Code::kIO;
  if (s == "40001" || s == "40P01") {
    code = Code::kConflict;
  } else if (connection_lost(c, r) || s.substr(0, 2) == "53") {
    code = Code::kUnavailable;
  } else if (s == "25006") {
    code = Code::kReadOnly;
  } else if (s == "42501" || s.substr(0, 2) == "28") {
    code = Code::kAccess;
  } else if (s == "54000") {
    code = Code::kTooBig;
  }
  std::string msg = "metadata engine " + engine + ": " + std::string(what) + ": " + why;
  if (!s.empty()) msg += " (SQLSTATE " + std::string(s) + ")";
  return Status(code, msg);
}

}  // namespace sluice::kv::pg
