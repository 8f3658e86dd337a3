// redis:// engine: optimistic transactions over hiredis (see redis_engine.h for the layout).
//
// Threads: each attempt leases one connection from a pool shared by all threads; a
// connection that failed (I/O error, timeout, server restart) is closed, not pooled, and
// the idle ones are dropped too since they most likely died with it. Every failure to
// reach the server is kUnavailable, which Engine::transact retries with backoff.
//
// Reads go straight to Redis (one HMGET per get or multi_get, one script per scan) and
// record what they saw; writes stay in the Txn until commit. A commit that only wrote
// sends no checks. A read-only attempt (or one whose closure failed) that read more than
// once is validated by the commit script with no writes, so it saw one snapshot.
#include "kv/redis_engine.h"

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "kv/redis_scripts.h"

namespace sluice::kv {

namespace {

constexpr size_t kMaxIdleConnections = 16;
constexpr size_t kVersionLen = 16;  // hex digits before each stored value
// How long a commit whose reply was lost keeps trying to learn whether it happened.
constexpr auto kResolveFor = std::chrono::seconds(10);

struct Options {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user, password, prefix;
  int timeout_ms = 2000;  // connect and per-command I/O
};

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

struct Conn {
  redisContext* c = nullptr;
  bool broken = false;
  ~Conn() { redisFree(c); }
};

// One command's arguments, binary-safe.
class Args {
 public:
  Args& add(std::string_view s) {
    owned_.emplace_back(s);
    return *this;
  }
  size_t size() const { return owned_.size(); }
  std::vector<const char*> ptrs() const {
    std::vector<const char*> v;
    for (const auto& s : owned_) v.push_back(s.data());
    return v;
  }
  std::vector<size_t> lens() const {
    std::vector<size_t> v;
    for (const auto& s : owned_) v.push_back(s.size());
    return v;
  }

 private:
  std::vector<std::string> owned_;
};

// Server error replies: transient ones are kUnavailable (the driver retries).
Code code_of_error(std::string_view msg) {
  auto starts = [&](std::string_view p) { return msg.substr(0, p.size()) == p; };
  if (starts("LOADING") || starts("BUSY") || starts("TRYAGAIN") || starts("READONLY") ||
      starts("MASTERDOWN") || starts("CLUSTERDOWN") || starts("MISCONF")) {
    return Code::kUnavailable;
  }
  if (starts("NOAUTH") || starts("WRONGPASS") || starts("NOPERM")) return Code::kAccess;
  if (starts("OOM")) return Code::kNoSpace;
  return Code::kIO;
}

// A commit id unique across threads and processes (a forked child reseeds).
std::string hex_id() {
  thread_local pid_t seeded_for = -1;
  thread_local std::mt19937_64 rng;
  if (seeded_for != ::getpid()) {
    seeded_for = ::getpid();
    std::random_device rd;
    rng.seed((uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(seeded_for));
  }
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (int w = 0; w < 2; w++) {
    uint64_t x = rng();
    for (int i = 0; i < 16; i++, x >>= 4) s.push_back(kHex[x & 15]);
  }
  return s;
}

class RedisEngine final : public Engine {
 public:
  explicit RedisEngine(Options o) : o_(std::move(o)) {
    const std::string base = o_.prefix.empty() ? "sluice" : o_.prefix;
    hash_ = base + ":kv";
    index_ = base + ":idx";
    gen_ = base + ":gen";
    marker_ = base + ":commit:";
    desc_ = "redis://" + (o_.user.empty() ? "" : o_.user + "@") + host_port() + "/" +
            std::to_string(o_.db) + (o_.prefix.empty() ? "" : "?prefix=" + o_.prefix);
  }

  // Connects once (so a dead server fails now) and loads the scripts.
  Status init() {
    ASSIGN_OR_RETURN(auto c, connect());
    for (auto [body, sha] : {std::pair{redis_scripts::kScan, &scan_sha_},
                             std::pair{redis_scripts::kCommit, &commit_sha_}}) {
      Args a;
      a.add("SCRIPT").add("LOAD").add(body);
      ASSIGN_OR_RETURN(Reply r, command(*c, a, "loading scripts"));
      if (r->type != REDIS_REPLY_STRING) return bad_reply("loading scripts");
      *sha = std::string(r->str, r->len);
    }
    release(std::move(c));
    return Status::OK();
  }

  std::string describe() const override { return desc_; }

  // Sends one command; a lost connection marks it broken.
  Result<Reply> command(Conn& c, const Args& a, std::string_view what) {
    auto ptrs = a.ptrs();
    auto lens = a.lens();
    redisReply* r = static_cast<redisReply*>(
        redisCommandArgv(c.c, static_cast<int>(a.size()), ptrs.data(), lens.data()));
    if (r == nullptr) {
      c.broken = true;
      return Status(Code::kUnavailable, "metadata engine " + desc_ + ": " + std::string(what) +
                                            ": " + (c.c->errstr[0] ? c.c->errstr : "I/O error"));
    }
    Reply reply(r);
    if (r->type == REDIS_REPLY_ERROR) {
      std::string msg(r->str, r->len);
      return Status(code_of_error(msg),
                    "metadata engine " + desc_ + ": " + std::string(what) + ": " + msg);
    }
    return reply;
  }

  // EVALSHA of a loaded script, falling back to EVAL when the server forgot it (restart,
  // SCRIPT FLUSH). `keys` are the script's KEYS, then ARGV follows in `argv`.
  Result<Reply> eval(Conn& c, bool commit, const std::vector<std::string_view>& keys,
                     const Args& argv_tail, std::string_view what) {
    for (int round = 0; round < 2; round++) {
      Args a;
      if (round == 0) {
        a.add("EVALSHA").add(commit ? commit_sha_ : scan_sha_);
      } else {
        a.add("EVAL").add(commit ? redis_scripts::kCommit : redis_scripts::kScan);
      }
      a.add(std::to_string(keys.size()));
      for (auto k : keys) a.add(k);
      auto ptrs = a.ptrs();
      auto lens = a.lens();
      auto tp = argv_tail.ptrs();
      auto tl = argv_tail.lens();
      ptrs.insert(ptrs.end(), tp.begin(), tp.end());
      lens.insert(lens.end(), tl.begin(), tl.end());
      redisReply* r = static_cast<redisReply*>(
          redisCommandArgv(c.c, static_cast<int>(ptrs.size()), ptrs.data(), lens.data()));
      if (r == nullptr) {
        c.broken = true;
        return Status(Code::kUnavailable,
                      "metadata engine " + desc_ + ": " + std::string(what) + ": " +
                          (c.c->errstr[0] ? c.c->errstr : "I/O error"));
      }
      Reply reply(r);
      if (r->type != REDIS_REPLY_ERROR) return reply;
      std::string msg(r->str, r->len);
      if (round == 0 && msg.substr(0, 8) == "NOSCRIPT") continue;
      return Status(code_of_error(msg),
                    "metadata engine " + desc_ + ": " + std::string(what) + ": " + msg);
    }
    return bad_reply(what);
  }

  Status bad_reply(std::string_view what) const {
    return Status(Code::kIO,
                  "metadata engine " + desc_ + ": " + std::string(what) + ": unexpected reply");
  }

  const std::string& hash_key() const { return hash_; }
  const std::string& index_key() const { return index_; }
  const std::string& gen_key() const { return gen_; }
  std::string marker_key(const std::string& id) const { return marker_ + id; }
  const std::string& desc() const { return desc_; }

  // After a commit's reply was lost: did it happen? Fences the commit id (so a copy of
  // the commit still in flight can no longer apply) unless its marker already exists.
  // OK: it committed; kConflict: it did not (safe to run again); kUnavailable: unknown.
  Status resolve(const std::string& marker) {
    auto deadline = std::chrono::steady_clock::now() + kResolveFor;
    Status last;
    while (true) {
      auto c = acquire();
      if (c.ok()) {
        Args a;
        a.add("SET").add(marker).add("0").add("NX").add("PX").add("600000");
        auto r = command(**c, a, "resolving a commit");
        if (r.ok()) {
          release(std::move(*c));
          if ((*r)->type == REDIS_REPLY_NIL) return Status::OK();
          return Status(Code::kConflict, "metadata engine " + desc_ + ": commit was lost");
        }
        last = r.status();
        release(std::move(*c));
      } else {
        last = c.status();
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return Status(Code::kUnavailable, last.message() + " (outcome of a commit unknown)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

 protected:
  Status attempt(const TxnFn& fn, bool read_only) override;

 private:
  std::string host_port() const {
    bool v6 = o_.host.find(':') != std::string::npos;
    return (v6 ? "[" + o_.host + "]" : o_.host) + ":" + std::to_string(o_.port);
  }

  Result<std::unique_ptr<Conn>> connect() {
    timeval tv{o_.timeout_ms / 1000, (o_.timeout_ms % 1000) * 1000};
    auto c = std::make_unique<Conn>();
    c->c = redisConnectWithTimeout(o_.host.c_str(), o_.port, tv);
    if (c->c == nullptr || c->c->err) {
      std::string why = c->c ? c->c->errstr : "out of memory";
      return Status(Code::kUnavailable, "cannot connect to metadata engine " + desc_ + ": " + why);
    }
    redisSetTimeout(c->c, tv);
    if (!o_.password.empty()) {
      Args a;
      a.add("AUTH");
      if (!o_.user.empty()) a.add(o_.user);
      a.add(o_.password);
      RETURN_IF_ERROR(command(*c, a, "authenticating").status());
    }
    if (o_.db != 0) {
      Args a;
      a.add("SELECT").add(std::to_string(o_.db));
      RETURN_IF_ERROR(command(*c, a, "selecting the database").status());
    }
    return c;
  }

 public:
  Result<std::unique_ptr<Conn>> acquire() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    return connect();
  }

  // Pools a healthy connection; a broken one is closed along with the idle ones.
  void release(std::unique_ptr<Conn> c) {
    std::lock_guard<std::mutex> g(mu_);
    if (c->broken) {
      idle_.clear();
      return;
    }
    if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(c));
  }

 private:
  const Options o_;
  std::string hash_, index_, gen_, marker_, desc_;
  std::string scan_sha_, commit_sha_;
  std::mutex mu_;  // guards idle_
  std::vector<std::unique_ptr<Conn>> idle_;
};

// Strips and checks the version in front of a stored value.
Result<std::pair<std::string, std::string>> split_stored(const RedisEngine& e, const char* p,
                                                         size_t n) {
  if (n < kVersionLen) {
    return Status(Code::kCorruption, "metadata engine " + e.desc() + ": stored value too short");
  }
  return std::pair{std::string(p, kVersionLen), std::string(p + kVersionLen, n - kVersionLen)};
}

class RedisTxn final : public Txn {
 public:
  RedisTxn(RedisEngine& e, Conn& c, bool read_only) : e_(e), c_(c), read_only_(read_only) {}

  Result<std::optional<std::string>> get(std::string_view key) override {
    ASSIGN_OR_RETURN(auto v, multi_get({std::string(key)}));
    return std::move(v[0]);
  }

  Result<std::vector<std::optional<std::string>>> multi_get(
      const std::vector<std::string>& keys) override {
    std::vector<std::optional<std::string>> out(keys.size());
    Args a;
    a.add("HMGET").add(e_.hash_key());
    std::vector<size_t> remote;  // indexes of keys not written by this Txn
    for (size_t i = 0; i < keys.size(); i++) {
      auto w = writes_.find(keys[i]);
      if (w != writes_.end()) {
        out[i] = w->second;
      } else {
        remote.push_back(i);
        a.add(keys[i]);
      }
    }
    if (remote.empty()) return out;
    ASSIGN_OR_RETURN(Reply r, e_.command(c_, a, "get"));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != remote.size()) return e_.bad_reply("get");
    read_ops_++;
    for (size_t j = 0; j < remote.size(); j++) {
      const redisReply* el = r->element[j];
      std::string version;
      if (el->type == REDIS_REPLY_STRING) {
        ASSIGN_OR_RETURN(auto vv, split_stored(e_, el->str, el->len));
        version = std::move(vv.first);
        out[remote[j]] = std::move(vv.second);
      }
      RETURN_IF_ERROR(note_read(keys[remote[j]], version));
    }
    return out;
  }

  Result<std::vector<KeyValue>> scan(std::string_view begin, std::string_view end,
                                     size_t limit) override {
    if (!end.empty() && begin >= end) return std::vector<KeyValue>{};
    // Local writes in range; the server is asked for that many more keys, since each may
    // hide one of its keys.
    auto lo = writes_.lower_bound(begin);
    auto hi = end.empty() ? writes_.end() : writes_.lower_bound(end);
    size_t local = static_cast<size_t>(std::distance(lo, hi));
    size_t server_limit = limit == 0 ? 0 : limit + local;

    Scan rec;
    rec.min = begin.empty() ? "-" : "[" + std::string(begin);
    rec.max = end.empty() ? "+" : "(" + std::string(end);
    rec.limit = std::to_string(server_limit);
    Args argv;
    argv.add(rec.min).add(rec.max).add(rec.limit);
    ASSIGN_OR_RETURN(Reply r, e_.eval(c_, false, {e_.hash_key(), e_.index_key()}, argv, "scan"));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[0]->elements != r->element[1]->elements ||
        r->element[2]->type != REDIS_REPLY_STRING) {
      return e_.bad_reply("scan");
    }
    read_ops_++;
    rec.digest.assign(r->element[2]->str, r->element[2]->len);
    scans_.push_back(std::move(rec));

    std::vector<KeyValue> out;
    const redisReply* ks = r->element[0];
    const redisReply* vs = r->element[1];
    auto w = lo;
    auto emit_local_before = [&](const std::string* key) {
      for (; w != hi && (key == nullptr || w->first < *key); ++w) {
        if (w->second) out.push_back({w->first, *w->second});
      }
    };
    for (size_t i = 0; i < ks->elements; i++) {
      std::string key(ks->element[i]->str, ks->element[i]->len);
      const redisReply* v = vs->element[i];
      emit_local_before(&key);
      if (w != hi && w->first == key) {  // this Txn overwrote or deleted it
        if (w->second) out.push_back({w->first, *w->second});
        ++w;
        continue;
      }
      ASSIGN_OR_RETURN(auto vv, split_stored(e_, v->str, v->len));
      out.push_back({std::move(key), std::move(vv.second)});
    }
    // Local keys past the last server key count only when the server's answer was not cut
    // short by the limit (otherwise unseen server keys may come first).
    bool server_complete = server_limit == 0 || ks->elements < server_limit;
    if (server_complete) emit_local_before(nullptr);
    if (limit != 0 && out.size() > limit) out.resize(limit);
    return out;
  }

  Status put(std::string_view key, std::string_view value) override {
    if (read_only_) return Status(Code::kReadOnly, "put in a read-only transaction");
    writes_.insert_or_assign(std::string(key), std::string(value));
    return Status::OK();
  }

  Status del(std::string_view key) override {
    if (read_only_) return Status(Code::kReadOnly, "delete in a read-only transaction");
    writes_.insert_or_assign(std::string(key), std::nullopt);
    return Status::OK();
  }

  // Commits the writes, or (none, or !with_writes) checks that the reads saw one snapshot.
  Status commit(bool with_writes = true) {
    bool has_writes = with_writes && !writes_.empty();
    if (!has_writes && read_ops_ <= 1) return Status::OK();
    Args argv;
    argv.add(std::to_string(reads_.size()))
        .add(std::to_string(scans_.size()))
        .add(has_writes ? std::to_string(writes_.size()) : "0");
    for (const auto& [k, ver] : reads_) argv.add(k).add(ver);
    for (const auto& s : scans_) argv.add(s.min).add(s.max).add(s.limit).add(s.digest);
    if (has_writes) {
      for (const auto& [k, v] : writes_) argv.add(v ? "p" : "d").add(k).add(v ? *v : "");
    }
    const std::string marker = e_.marker_key(has_writes ? hex_id() : "none");
    auto r = e_.eval(c_, true, {e_.hash_key(), e_.index_key(), e_.gen_key(), marker}, argv,
                     "commit");
    if (!r.ok()) {
      // A writing commit whose reply never came may have happened: find out.
      if (has_writes && c_.broken) return e_.resolve(marker);
      return r.status();
    }
    if ((*r)->type != REDIS_REPLY_INTEGER) return e_.bad_reply("commit");
    if ((*r)->integer == 1) return Status::OK();
    return Status(Code::kConflict, "metadata engine " + e_.desc() + ": commit conflict");
  }

 private:
  // Remembers the version a read saw; a key that changed between two reads of this Txn
  // is a conflict already.
  Status note_read(const std::string& key, const std::string& version) {
    auto [it, inserted] = reads_.try_emplace(key, version);
    if (!inserted && it->second != version) {
      return Status(Code::kConflict, "metadata engine " + e_.desc() + ": read conflict");
    }
    return Status::OK();
  }

  struct Scan {
    std::string min, max, limit, digest;
  };

  RedisEngine& e_;
  Conn& c_;
  const bool read_only_;
  int read_ops_ = 0;
  std::map<std::string, std::optional<std::string>, std::less<>> writes_;  // nullopt: del
  std::map<std::string, std::string> reads_;  // key -> version seen ('' = missing)
  std::vector<Scan> scans_;
};

Status RedisEngine::attempt(const TxnFn& fn, bool read_only) {
  ASSIGN_OR_RETURN(auto conn, acquire());
  struct Lease {
    RedisEngine& e;
    std::unique_ptr<Conn> c;
    ~Lease() { e.release(std::move(c)); }
  } lease{*this, std::move(conn)};
  RedisTxn txn(*this, *lease.c, read_only);
  Status st = fn(txn);
  if (st.ok()) return txn.commit();
  if (st.retryable()) return st;
  // The closure gave up, perhaps on an inconsistent view: its error stands only if the
  // reads it made still hold (a check that writes nothing); otherwise run it again.
  Status v = txn.commit(/*with_writes=*/false);
  return v.is(Code::kConflict) ? v : st;
}

Result<int> parse_int(const std::string& s, int lo, int hi, const std::string& what) {
  char* endp = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &endp, 10);
  if (s.empty() || *endp != '\0' || errno != 0 || v < lo || v > hi) {
    return Status(Code::kInvalid, "redis URL: bad " + what + " '" + s + "'");
  }
  return static_cast<int>(v);
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

Result<Options> parse_options(const Url& url) {
  Options o;
  std::string body = url.body;
  if (auto at = body.rfind('@'); at != std::string::npos) {
    std::string cred = body.substr(0, at);
    body = body.substr(at + 1);
    auto colon = cred.find(':');
    o.user = percent_decode(cred.substr(0, colon));
    if (colon != std::string::npos) o.password = percent_decode(cred.substr(colon + 1));
  }
  std::string hostport = body.substr(0, body.find('/'));
  if (auto slash = body.find('/'); slash != std::string::npos && slash + 1 < body.size()) {
    ASSIGN_OR_RETURN(o.db, parse_int(body.substr(slash + 1), 0, 1 << 20, "database number"));
  }
  if (!hostport.empty() && hostport[0] == '[') {  // [v6]:port
    auto close = hostport.find(']');
    if (close == std::string::npos) return Status(Code::kInvalid, "redis URL: bad host");
    o.host = hostport.substr(1, close - 1);
    std::string rest = hostport.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return Status(Code::kInvalid, "redis URL: bad host '" + hostport + "'");
      ASSIGN_OR_RETURN(o.port, parse_int(rest.substr(1), 1, 65535, "port"));
    }
  } else if (auto colon = hostport.find(':'); colon != std::string::npos) {
    o.host = hostport.substr(0, colon);
    ASSIGN_OR_RETURN(o.port, parse_int(hostport.substr(colon + 1), 1, 65535, "port"));
  } else {
    o.host = hostport;
  }
  if (o.host.empty()) {
    return Status(Code::kInvalid, "redis URL needs a host, e.g. redis://127.0.0.1:6379/0");
  }
  for (const auto& [k, v] : url.query) {
    if (k == "prefix") {
      o.prefix = v;
    } else if (k == "timeout_ms") {
      ASSIGN_OR_RETURN(o.timeout_ms, parse_int(v, 1, 600000, "timeout_ms"));
    } else {
      return Status(Code::kInvalid,
                    "unknown redis option '" + k + "' (supported: prefix, timeout_ms)");
    }
  }
  if (o.password.empty()) {
    for (const char* var : {"SLUICE_META_PASSWORD", "REDISCLI_AUTH"}) {
      const char* p = std::getenv(var);
      if (p != nullptr && *p != '\0') {
        o.password = p;
        break;
      }
    }
  }
  return o;
}

}  // namespace

Result<std::shared_ptr<Engine>> open_redis_engine(const Url& url, bool create) {
  (void)create;
  if (url.scheme == "rediss") {
    return Status(Code::kInvalid,
                  "rediss:// (Redis over TLS) is not supported; use redis:// on a trusted "
                  "network or through a TLS tunnel");
  }
  ASSIGN_OR_RETURN(Options o, parse_options(url));
  auto e = std::make_shared<RedisEngine>(std::move(o));
  RETURN_IF_ERROR(e->init());
  return std::shared_ptr<Engine>(std::move(e));
}

}  // namespace sluice::kv
