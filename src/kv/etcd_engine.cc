// etcd:// engine: optimistic transactions as compare-and-swap on etcd revisions.
//
// A transaction:
//  - reads: the first read goes to the cluster linearizably and pins its answer's header
//    revision R; every later read (get, multi_get, scan) asks for revision R, served by the
//    member itself (serializable), so all reads form one snapshot. A member that has not
//    applied R yet, or a compacted R, answers OutOfRange, which is kConflict (retry).
//  - writes are buffered (and read back by the transaction's own reads);
//  - commit is ONE etcd Txn: compares that must all hold, then the puts and deletes.
//
// The compares, i.e. what makes the commit serializable:
//  - each key read: mod_revision == the mod_revision seen at R (0 when it was missing, which
//    is also what etcd compares a missing key as). Catches updates, deletes and creations.
//  - each range scanned: range compare (etcd >= 3.3 supports range_end in a Compare)
//    "every key in [begin, end) has mod_revision < R+1". That catches keys created or
//    updated in the range after R, but not keys deleted from it (a deleted key is simply
//    absent from the range). So deletions are guarded separately: every committing
//    transaction that deletes a key also rewrites one per-prefix guard key, and a
//    transaction that scanned compares "guard mod_revision < R+1". The trade-off: a
//    transaction that scanned conflicts with every concurrent transaction that deleted
//    anything in the volume, even outside its ranges (one extra retry, never a wrong
//    answer). Creations and updates outside the scanned ranges do not conflict.
//  - more than kMaxCompares compares (etcd caps a Txn at --max-txn-ops, 128 by default)
//    collapse into the same two compares over the whole prefix: correct, but it conflicts
//    with any concurrent write to the volume.
// The puts and deletes still count against --max-txn-ops; docs/metadata-engines.md tells
// operators to raise it.
//
// A commit whose answer was lost (a member died after receiving it) may or may not have
// been applied; the client then sends it to the next member, or the driver re-runs the
// closure. This cannot apply a read-modify-write twice: if the lost commit was applied,
// every key it both read and wrote now has a newer mod_revision, so the resent Txn's
// compares fail (kConflict) and the closure runs again on fresh reads, where it sees its
// own earlier effect (e.g. the dentry it created exists). A commit whose reads were not
// changed by it computes the same writes from the same reads, so applying it twice writes
// the same values twice. The one visible artefact is an error for an operation that in
// fact succeeded (EEXIST for a create whose first reply was lost), the same as with any
// networked database whose commit acknowledgement is lost.
#include "kv/etcd_engine.h"

#include <map>
#include <utility>

#include "kv/etcd_client.h"

namespace sluice::kv {

namespace {

using nlohmann::json;

constexpr size_t kMaxCompares = 64;
constexpr size_t kMultiGetChunk = 64;  // ranges per read-only Txn, under --max-txn-ops

struct KeyLayout {
  std::string prefix;
  std::string data(std::string_view k) const {
    std::string s = prefix;
    s.append("\0d", 2);
    s.append(k);
    return s;
  }
  std::string data_end() const { return prefix + std::string("\0e", 2); }
  std::string guard() const { return prefix + std::string("\0g", 2); }
  // The user key of a data key.
  std::string user(const std::string& pk) const { return pk.substr(prefix.size() + 2); }
};

struct Fetched {
  std::string key;  // physical
  std::string value;
  int64_t mod_revision = 0;
};

Result<std::vector<Fetched>> parse_kvs(const json& range_answer) {
  std::vector<Fetched> out;
  auto it = range_answer.find("kvs");
  if (it == range_answer.end()) return out;
  for (const auto& kv : *it) {
    Fetched f;
    ASSIGN_OR_RETURN(f.key, base64_decode(kv.value("key", std::string())));
    ASSIGN_OR_RETURN(f.value, base64_decode(kv.value("value", std::string())));
    f.mod_revision = json_int(kv, "mod_revision");
    out.push_back(std::move(f));
  }
  return out;
}

json compare(const std::string& key, const std::string* range_end, const char* result,
             int64_t mod_revision) {
  json c = {{"key", base64_encode(key)},
            {"target", "MOD"},
            {"result", result},
            {"mod_revision", std::to_string(mod_revision)}};
  if (range_end != nullptr) c["range_end"] = base64_encode(*range_end);
  return c;
}

class EtcdTxn final : public Txn {
 public:
  EtcdTxn(EtcdClient& client, const KeyLayout& layout, bool read_only)
      : client_(client), layout_(layout), read_only_(read_only) {}

  Result<std::optional<std::string>> get(std::string_view key) override {
    auto w = writes_.find(std::string(key));
    if (w != writes_.end()) return w->second;
    ASSIGN_OR_RETURN(auto vals, fetch_keys({std::string(key)}));
    return std::move(vals[0]);
  }

  Result<std::vector<std::optional<std::string>>> multi_get(
      const std::vector<std::string>& keys) override {
    std::vector<std::optional<std::string>> out(keys.size());
    std::vector<std::string> remote;
    std::vector<size_t> where;
    for (size_t i = 0; i < keys.size(); i++) {
      auto w = writes_.find(keys[i]);
      if (w != writes_.end()) {
        out[i] = w->second;
      } else {
        remote.push_back(keys[i]);
        where.push_back(i);
      }
    }
    for (size_t start = 0; start < remote.size(); start += kMultiGetChunk) {
      size_t end = std::min(remote.size(), start + kMultiGetChunk);
      ASSIGN_OR_RETURN(auto vals, fetch_keys(std::vector<std::string>(
                                      remote.begin() + static_cast<ptrdiff_t>(start),
                                      remote.begin() + static_cast<ptrdiff_t>(end))));
      for (size_t i = start; i < end; i++) out[where[i]] = std::move(vals[i - start]);
    }
    return out;
  }

  Result<std::vector<KeyValue>> scan(std::string_view begin, std::string_view end,
                                     size_t limit) override {
    if (!end.empty() && end <= begin) return std::vector<KeyValue>{};
    // Local writes in range, and how many remote keys they could hide.
    auto lo = writes_.lower_bound(std::string(begin));
    auto hi = end.empty() ? writes_.end() : writes_.lower_bound(std::string(end));
    size_t deletes = 0;
    for (auto it = lo; it != hi; ++it) deletes += it->second ? 0 : 1;
    // Fetching limit + deletes remote keys leaves at least `limit` survivors, all before
    // the last key fetched, so the first `limit` merged keys are exact.
    const std::string pbegin = layout_.data(begin);
    const std::string pend = end.empty() ? layout_.data_end() : layout_.data(end);
    json req = {{"key", base64_encode(pbegin)}, {"range_end", base64_encode(pend)}};
    if (limit > 0) req["limit"] = std::to_string(limit + deletes);
    ASSIGN_OR_RETURN(json answer, read_call("kv/range", req));
    ASSIGN_OR_RETURN(auto fetched, parse_kvs(answer));
    const bool more = answer.value("more", false);
    // The range this scan depends on: all of it, or up to the last key fetched.
    std::string guarded_end = pend;
    if (more && !fetched.empty()) guarded_end = fetched.back().key + std::string(1, '\0');
    read_ranges_.emplace_back(pbegin, guarded_end);

    std::map<std::string, std::string> merged;
    for (auto& f : fetched) merged.emplace(layout_.user(f.key), std::move(f.value));
    std::string last_remote = fetched.empty() ? std::string() : layout_.user(fetched.back().key);
    for (auto it = lo; it != hi; ++it) {
      // Beyond the last remote key fetched of a truncated range, the merge is not exact;
      // those keys are never among the first `limit` (see above), so leave them out.
      if (more && it->first > last_remote) break;
      if (it->second) {
        merged[it->first] = *it->second;
      } else {
        merged.erase(it->first);
      }
    }
    std::vector<KeyValue> out;
    for (auto& [k, v] : merged) {
      if (limit > 0 && out.size() == limit) break;
      out.push_back({k, std::move(v)});
    }
    return out;
  }

  Status put(std::string_view key, std::string_view value) override {
    if (read_only_) return Status(Code::kReadOnly, "write in a read-only transaction");
    writes_[std::string(key)] = std::string(value);
    return Status::OK();
  }

  Status del(std::string_view key) override {
    if (read_only_) return Status(Code::kReadOnly, "write in a read-only transaction");
    writes_[std::string(key)] = std::nullopt;
    return Status::OK();
  }

  // Commits the buffered writes if nothing read has changed since R (see the file comment).
  Status commit() {
    if (writes_.empty()) return Status::OK();
    json compares = json::array();
    if (rev_ != 0) {
      if (read_keys_.size() + read_ranges_.size() + 1 > kMaxCompares) {
        const std::string all_begin = layout_.data("");
        const std::string all_end = layout_.data_end();
        compares.push_back(compare(all_begin, &all_end, "LESS", rev_ + 1));
        compares.push_back(compare(layout_.guard(), nullptr, "LESS", rev_ + 1));
      } else {
        for (const auto& [k, mod] : read_keys_) {
          compares.push_back(compare(k, nullptr, "EQUAL", mod));
        }
        for (const auto& [b, e] : read_ranges_) {
          compares.push_back(compare(b, &e, "LESS", rev_ + 1));
        }
        if (!read_ranges_.empty()) {
          compares.push_back(compare(layout_.guard(), nullptr, "LESS", rev_ + 1));
        }
      }
    }
    json ops = json::array();
    bool bump_guard = false;
    for (const auto& [k, v] : writes_) {
      const std::string pk = layout_.data(k);
      if (v) {
        ops.push_back({{"request_put", {{"key", base64_encode(pk)}, {"value", base64_encode(*v)}}}});
      } else {
        ops.push_back({{"request_delete_range", {{"key", base64_encode(pk)}}}});
        // A key this transaction saw missing (and the compares keep missing) deletes
        // nothing, so it need not disturb scanners.
        auto seen = read_keys_.find(pk);
        if (seen == read_keys_.end() || seen->second != 0) bump_guard = true;
      }
    }
    if (bump_guard) {
      ops.push_back({{"request_put", {{"key", base64_encode(layout_.guard())}, {"value", ""}}}});
    }
    json req = {{"compare", std::move(compares)}, {"success", std::move(ops)}};
    ASSIGN_OR_RETURN(json answer, client_.call("kv/txn", req));
    if (!answer.value("succeeded", false)) {
      return Status(Code::kConflict, "etcd: transaction conflict");
    }
    return Status::OK();
  }

 private:
  // A read at the pinned revision (or the first read, which pins it).
  // Ranges carry the revision themselves; a Txn of ranges (pin=false) has them inside.
  Result<json> read_call(const std::string& path, json req, bool pin = true) {
    if (rev_ != 0 && pin) {
      req["revision"] = std::to_string(rev_);
      req["serializable"] = true;
    }
    ASSIGN_OR_RETURN(json answer, client_.call(path, req));
    if (rev_ == 0) {
      auto h = answer.find("header");
      rev_ = h == answer.end() ? 0 : json_int(*h, "revision");
      if (rev_ == 0) return Status(Code::kIO, "etcd: answer without a header revision");
    }
    return answer;
  }

  // Reads keys (none of them written by this transaction) at R, recording what was seen.
  Result<std::vector<std::optional<std::string>>> fetch_keys(
      const std::vector<std::string>& keys) {
    std::vector<std::optional<std::string>> out(keys.size());
    std::vector<json> answers;
    if (keys.size() == 1) {
      ASSIGN_OR_RETURN(json a, read_call("kv/range", {{"key", base64_encode(layout_.data(keys[0]))}}));
      answers.push_back(std::move(a));
    } else {
      // One read-only Txn of ranges: one round trip, and one read view.
      json ops = json::array();
      for (const auto& k : keys) {
        json r = {{"key", base64_encode(layout_.data(k))}};
        if (rev_ != 0) {
          r["revision"] = std::to_string(rev_);
          r["serializable"] = true;
        }
        ops.push_back({{"request_range", std::move(r)}});
      }
      json req = {{"success", std::move(ops)}};
      ASSIGN_OR_RETURN(json a, read_call("kv/txn", req, /*pin=*/false));
      auto resp = a.find("responses");
      if (resp == a.end() || resp->size() != keys.size()) {
        return Status(Code::kIO, "etcd: malformed txn answer");
      }
      for (const auto& r : *resp) answers.push_back(r.value("response_range", json::object()));
    }
    for (size_t i = 0; i < keys.size(); i++) {
      ASSIGN_OR_RETURN(auto kvs, parse_kvs(answers[i]));
      const std::string pk = layout_.data(keys[i]);
      int64_t mod = 0;
      if (!kvs.empty()) {
        mod = kvs[0].mod_revision;
        out[i] = std::move(kvs[0].value);
      }
      read_keys_.emplace(pk, mod);
    }
    return out;
  }

  EtcdClient& client_;
  const KeyLayout& layout_;
  const bool read_only_;
  int64_t rev_ = 0;  // the pinned snapshot revision R; 0 before the first read
  std::map<std::string, std::optional<std::string>> writes_;  // user key -> value/delete
  std::map<std::string, int64_t> read_keys_;  // physical key -> mod_revision seen at R
  std::vector<std::pair<std::string, std::string>> read_ranges_;  // physical [begin, end)
};

class EtcdEngine final : public Engine {
 public:
  EtcdEngine(std::vector<std::string> endpoints, std::string prefix, std::string described)
      : client_(std::move(endpoints)), layout_{std::move(prefix)},
        described_(std::move(described)) {}

  std::string describe() const override { return described_; }

  // Fails with kUnavailable naming the URL when no member answers.
  Status ping() {
    auto r = client_.call("maintenance/status", json::object());
    if (!r.ok()) {
      return Status(r.status().code(), "cannot connect to metadata engine " + described_ +
                                           ": " + r.status().message());
    }
    return Status::OK();
  }

 protected:
  Status attempt(const TxnFn& fn, bool read_only) override {
    EtcdTxn txn(client_, layout_, read_only);
    RETURN_IF_ERROR(fn(txn));
    if (read_only) return Status::OK();
    return txn.commit();
  }

 private:
  EtcdClient client_;
  const KeyLayout layout_;
  const std::string described_;
};

}  // namespace

Result<std::shared_ptr<Engine>> open_etcd_engine(const Url& url, bool create) {
  (void)create;  // an empty prefix is an empty database; nothing to create
  // Error messages name the URL without any credentials in it.
  std::string whole = url.body;
  if (auto at = whole.find('@'); at != std::string::npos && at < whole.find('/')) {
    whole.erase(0, at + 1);
  }
  whole = "etcd://" + whole;
  auto bad = [&](const std::string& why) {
    return Status(Code::kInvalid, "invalid etcd URL '" + whole + "': " + why);
  };
  for (const auto& [k, v] : url.query) {
    if (k != "prefix") return bad("unknown option '" + k + "' (supported: prefix)");
  }
  std::string hosts = url.body;
  std::string prefix;
  if (auto slash = hosts.find('/'); slash != std::string::npos) {
    prefix = hosts.substr(slash + 1);
    hosts.resize(slash);
  }
  if (hosts.find('@') != std::string::npos) {
    return bad("authentication (user:password@) is not supported yet");
  }
  const std::string qprefix = url.param("prefix");
  if (!qprefix.empty()) {
    if (!prefix.empty() && prefix != qprefix) return bad("two different prefixes given");
    prefix = qprefix;
  }
  if (prefix.find('\0') != std::string::npos) return bad("the prefix contains a NUL byte");
  std::vector<std::string> endpoints;
  size_t start = 0;
  while (start <= hosts.size()) {
    size_t comma = hosts.find(',', start);
    std::string ep = hosts.substr(start, comma == std::string::npos ? std::string::npos
                                                                   : comma - start);
    if (ep.empty()) return bad("expected HOST:PORT[,HOST:PORT...]");
    // A bare host (or [v6] address) gets etcd's client port.
    if (ep.back() == ']' || ep.find(':') == std::string::npos) ep += ":2379";
    endpoints.push_back(ep);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::string described = "etcd://" + hosts + (prefix.empty() ? "" : "/" + prefix);
  auto engine = std::make_shared<EtcdEngine>(std::move(endpoints), prefix, described);
  RETURN_IF_ERROR(engine->ping());
  return std::shared_ptr<Engine>(std::move(engine));
}

}  // namespace sluice::kv
