// Ranged reads: fetching only the 64 KiB sub-blocks of a block that a read needs.
//
// Blocks stored uncompressed and unencrypted carry a table of sub-block checksums
// (object/block_codec.h). A ranged fetch of sub-blocks [a, z) of a block is one GET of
// that data range and, the first time, one small GET of the block's header and table,
// the two in parallel; the verified table is kept (tables_, bounded) so later ranges of
// the block need one GET. Every sub-block is verified against the table before use; one
// that fails is fetched again (3 attempts in all, as fetch_block does), then the read
// fails with EIO. A block whose header says it has no table (written before tables
// existed) is remembered as such and read whole from then on.
//
// Sub-blocks live in the memory cache under "<block key>#<index>", one entry per
// sub-block, and never in the disk cache (get_or_load_memory / put_memory), so the disk
// tier only ever holds whole blocks. A fetch is single-flighted on the key of its first
// missing sub-block, and ranged fetches of one block take turns (range_locks_), each
// fetching only the runs of sub-blocks still missing when its turn comes: overlapping
// ranges fetch no sub-block twice. Whole and ranged loads of one block exclude each other
// (InFlight claims): a ranged load joins a whole fetch under way, and a whole load of a
// block with sub-blocks cached or being fetched fetches only the missing sub-blocks.
#include <algorithm>
#include <cstring>
#include <future>

#include "common/logging.h"
#include "object/block_codec.h"
#include "vfs/internal.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

namespace {

constexpr uint64_t kSub = object::kSubBlockSize;
// Tables kept (a 4 MiB block's is 512 bytes); the map restarts when full.
constexpr size_t kMaxTables = 8192;

std::string sub_key(const std::string& key, uint32_t i) { return key + "#" + std::to_string(i); }

// Sub-blocks [first, end) that cover block bytes [lo, hi) of a block of len bytes.
std::pair<uint32_t, uint32_t> sub_span(uint32_t len, uint64_t lo, uint64_t hi) {
  const auto first = static_cast<uint32_t>(lo / kSub);
  const auto end = static_cast<uint32_t>(
      std::min<uint64_t>((hi + kSub - 1) / kSub, object::sub_block_count(len)));
  return {first, end};
}

}  // namespace

bool BlockData::append(uint64_t off, uint64_t len, std::vector<ReadPiece>& out) const {
  if (whole) {
    if (off + len > whole->size()) return false;
    out.push_back({whole->data() + off, len});
    return true;
  }
  if (file) {
    if (off + len > file->len) return false;
    out.push_back({nullptr, len, file->fd, off});
    return true;
  }
  while (len > 0) {
    const uint64_t i = off / kSub;
    if (i < first || i - first >= subs.size() || !subs[i - first]) return false;
    const std::string& sb = *subs[i - first];
    const uint64_t at = off % kSub;
    if (at >= sb.size()) return false;
    const uint64_t n = std::min(len, sb.size() - at);
    out.push_back({sb.data() + at, n});
    off += n;
    len -= n;
  }
  return true;
}

void BlockData::hold_in(ReadData& out) {
  if (whole) out.hold.push_back(std::move(whole));
  if (file) out.files.push_back(std::move(file));
  for (cache::Block& b : subs) {
    if (b) out.hold.push_back(std::move(b));
  }
}

bool Vfs::range_worthwhile(uint32_t block_len, uint64_t lo, uint64_t hi) const {
  if (!rangeable_ || hi <= lo) return false;
  const auto [first, end] = sub_span(block_len, lo, hi);
  const uint64_t bytes = std::min<uint64_t>(uint64_t(end) * kSub, block_len) - first * kSub;
  return 2 * bytes <= block_len;
}

Vfs::InFlight::InFlight(Vfs& v, std::unordered_map<std::string, int>& mine,
                        const std::unordered_map<std::string, int>& other, const std::string& key)
    : v_(v), m_(mine), key_(key) {
  std::lock_guard lk(v_.inflight_mu_);
  if (other.count(key_) > 0) return;
  m_[key_]++;
  claimed_ = true;
}

Vfs::InFlight::~InFlight() {
  if (!claimed_) return;
  std::lock_guard lk(v_.inflight_mu_);
  if (--m_[key_] == 0) m_.erase(key_);
}

Result<BlockData> Vfs::load_whole(const BlockRef& b, uint64_t lo, uint64_t hi, bool files,
                                  int parts) {
  if (rangeable_) {
    auto loc = locate(meta_->format(), b);
    if (loc.ok()) {
      InFlight whole(*this, whole_inflight_, range_inflight_, loc->first);
      if (!whole.claimed()) return load_range(b, lo, hi, nullptr, files);
      return load_block(b, files, parts);
    }
  }
  return load_block(b, files, parts);  // a bad layout is reported here
}

bool Vfs::in_flight(const std::unordered_map<std::string, int>& m, const std::string& key) {
  std::lock_guard lk(inflight_mu_);
  return m.count(key) > 0;
}

bool Vfs::has_cached_subs(const BlockRef& b) {
  if (!rangeable_) return false;
  auto loc = locate(meta_->format(), b);
  if (!loc.ok() || cache_->peek(loc->first)) return false;
  if (in_flight(range_inflight_, loc->first)) return true;
  {
    // Sub-blocks are fetched with their block's table: without a table known, there are
    // none (the table map is bounded, so rarely some are missed). This spares a lookup
    // per sub-block for every block read whole.
    std::lock_guard lk(tables_mu_);
    if (tables_.count(loc->first) == 0) return false;
  }
  const uint32_t n = object::sub_block_count(loc->second);
  for (uint32_t i = 0; i < n; i++) {
    if (cache_->peek(sub_key(loc->first, i))) return true;
  }
  return false;
}

Result<BlockData> Vfs::load_range(const BlockRef& b, uint64_t lo, uint64_t hi, bool* fetched,
                                  bool files) {
  ASSIGN_OR_RETURN(auto loc, locate(meta_->format(), b));
  const auto& [key, len] = loc;
  auto whole_block = [&]() -> Result<BlockData> {
    // load_block does not say whether it fetched; a prefetch of a block read whole is
    // counted by prefetch_block's rules instead.
    return load_block(b, files);
  };
  if (cache_->peek(key)) return whole_block();  // counts the hit
  if (known_without_table(key)) return whole_block();
  if (cache_->contains(key)) return whole_block();  // on disk: no GET at all
  const auto [first, end] = sub_span(len, lo, hi);
  BlockData d;
  d.first = first;
  d.subs.resize(end - first);
  // Ranged fetches of one block take turns (a lock per stripe of block keys), so each
  // sees what the one before it fetched and fetches only what is still missing: no
  // sub-block is fetched twice by overlapping ranges.
  InFlight ranging(*this, range_inflight_, whole_inflight_, key);
  if (!ranging.claimed()) return whole_block();  // joins the whole fetch under way
  std::unique_lock turn(range_locks_[std::hash<std::string>{}(key) % range_locks_.size()]);
  // A sub-block fetched by another caller may leave the cache before it is taken here;
  // after a few rounds the whole block is read instead.
  for (int round = 0; round < 3; round++) {
    // The missing sub-blocks as runs [a, z); cached gaps shorter than kMinGap are fetched
    // again rather than costing a GET of their own.
    constexpr uint32_t kMinGap = 4;
    std::vector<std::pair<uint32_t, uint32_t>> runs;
    for (uint32_t i = first; i < end; i++) {
      if (!d.subs[i - first]) d.subs[i - first] = cache_->peek(sub_key(key, i));
      if (d.subs[i - first]) continue;
      if (!runs.empty() && i - runs.back().second < kMinGap) {
        runs.back().second = i + 1;
      } else {
        runs.emplace_back(i, i + 1);
      }
    }
    if (runs.empty()) return d;
    for (const auto& [a, z] : runs) {
      auto r = cache_->get_or_load_memory(sub_key(key, a), [&, a = a, z = z] {
        if (fetched != nullptr) *fetched = true;
        return fetch_sub_blocks(key, len, a, z);
      });
      if (!r.ok()) {
        if (r.status().is(Code::kNotSupported)) {
          turn.unlock();
          return whole_block();
        }
        return r.status();
      }
      d.subs[a - first] = std::move(r).value();
    }
  }
  turn.unlock();
  return whole_block();
}

Result<std::string> Vfs::fetch_sub_blocks(const std::string& key, uint32_t len, uint32_t a,
                                          uint32_t z) {
  ASSIGN_OR_RETURN(std::string raw, fetch_range(key, len, a, z));
  for (uint32_t i = a + 1; i < z; i++) {
    cache_->put_memory(sub_key(key, i), raw.substr((i - a) * kSub, kSub));
  }
  raw.resize(std::min<uint64_t>(raw.size(), kSub));
  return raw;
}

Vfs::TableFuture Vfs::table_of(const std::string& key, uint32_t len,
                               std::future<void>& fetch) {
  std::lock_guard lk(tables_mu_);
  if (auto it = tables_.find(key); it != tables_.end()) return it->second;
  auto promise = std::make_shared<std::promise<TableResult>>();
  TableFuture f = promise->get_future().share();
  if (tables_.size() >= kMaxTables) tables_.clear();
  tables_.emplace(key, f);
  fetch = std::async(std::launch::async, [this, key, len, promise] {
    TableResult r = fetch_table(key, len);
    if (!r.ok() && !r.status().is(Code::kNotSupported)) {
      // Failures are not kept: the next range fetches the table again.
      std::lock_guard lk(tables_mu_);
      tables_.erase(key);
    }
    promise->set_value(std::move(r));
  });
  return f;
}

Vfs::TableResult Vfs::fetch_table(const std::string& key, uint32_t len) {
  const uint64_t end = object::block_table_end(len);
  stats_.object_gets++;
  stats_.ranged_gets++;
  auto head = store_->get(key, 0, static_cast<int64_t>(end));
  if (!head.ok()) {
    stats_.object_errors++;
    LOG_WARN("vfs: get {} (header): {}", key, head.status().ToString());
    return Status(Code::kIO, "reading " + key + ": " + head.status().message());
  }
  stats_.object_get_bytes += head->size();
  stats_.ranged_get_bytes += head->size();
  auto t = object::decode_block_table(*head, key, len);
  if (!t.ok()) {
    if (!t.status().is(Code::kNotSupported)) stats_.object_errors++;
    return t.status();
  }
  return std::make_shared<const object::BlockTable>(std::move(t).value());
}

bool Vfs::known_without_table(const std::string& key) {
  std::lock_guard lk(tables_mu_);
  auto it = tables_.find(key);
  if (it == tables_.end()) return false;
  if (it->second.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return false;
  const TableResult& r = it->second.get();
  return !r.ok() && r.status().is(Code::kNotSupported);
}

Result<std::string> Vfs::fetch_range(const std::string& key, uint32_t len, uint32_t a,
                                     uint32_t z) {
  const uint64_t off = object::block_table_end(len) + a * kSub;
  const uint64_t n = std::min<uint64_t>(uint64_t(z) * kSub, len) - a * kSub;
  constexpr int kAttempts = 3;
  for (int attempt = 1;; attempt++) {
    // The table (fetched once per block, shared by concurrent ranges) in parallel with
    // the data.
    std::future<void> table_fetch;
    TableFuture table = table_of(key, len, table_fetch);
    // A long range is fetched in parallel parts of whole sub-blocks.
    const uint64_t per = part_len(n, part_count(n));
    std::vector<std::pair<uint64_t, int64_t>> ranges;
    for (uint64_t at = 0; at < n; at += per) {
      ranges.emplace_back(off + at, static_cast<int64_t>(std::min(per, n - at)));
    }
    stats_.ranged_gets += ranges.size();
    auto data = [&]() -> Result<std::string> {
      ASSIGN_OR_RETURN(std::vector<std::string> got, get_ranges(key, ranges));
      if (got.size() == 1) return std::move(got[0]);
      std::string joined;
      joined.reserve(n);
      for (const std::string& g : got) joined += g;
      return joined;
    }();
    const TableResult& t = table.get();
    if (!t.ok() && (t.status().is(Code::kNotSupported) || t.status().is(Code::kIO))) {
      return t.status();
    }
    if (!data.ok()) {
      stats_.object_errors++;
      LOG_WARN("vfs: get {} [{}, +{}): {}", key, off, n, data.status().ToString());
      return Status(Code::kIO, "reading " + key + ": " + data.status().message());
    }
    stats_.ranged_get_bytes += data->size();
    Status err = t.ok() ? object::verify_block_range(**t, a, *data, key) : t.status();
    if (err.ok()) return data;
    if (t.ok()) stats_.object_errors++;  // a bad table was counted when fetched
    if (attempt == kAttempts) {
      LOG_ERROR("vfs: sub-blocks [{}, {}) of block {} failed verification {} times: {}", a, z,
                key, kAttempts, err.ToString());
      return err;
    }
    LOG_WARN("vfs: sub-blocks [{}, {}) of block {} failed verification, fetching again: {}", a,
             z, key, err.ToString());
  }
}

void Vfs::prefetch_range(const Prefetch& p) {
  auto loc = locate(meta_->format(), p.block);
  if (!loc.ok() || cache_->peek(loc->first)) return;  // a bad layout is reported by read
  bool fetched = false;
  auto r = load_range(p.block, p.lo, p.hi, &fetched);
  // Errors are logged; a read reports them.
  if (r.ok() && fetched) stats_.prefetch_issued++;
}

}  // namespace sluice::vfs
