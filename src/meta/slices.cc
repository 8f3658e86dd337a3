// resolve_slices: turns a chunk's slice list (later records win) into the ordered,
// non-overlapping segments a read assembles, with zero segments for holes.
//
// The slices are visited newest first. A map of the byte ranges already claimed by newer
// slices (disjoint, touching ranges merged) tells which parts of each older slice still
// show; every claimed range is inserted once and erased at most once, so the whole pass
// is O(n log n) in the number of slices.
#include "meta/slices.h"

#include <algorithm>
#include <iterator>
#include <map>

namespace sluice::meta {

namespace {

// Chunk bytes [lo, hi) of slice s, as a segment.
Segment piece_of(const Slice& s, uint32_t lo, uint32_t hi) {
  Segment seg;
  seg.pos = lo;
  seg.len = hi - lo;
  if (s.id != 0) {
    seg.id = s.id;
    seg.size = s.size;
    seg.off = s.off + (lo - s.pos);
  }
  return seg;
}

}  // namespace

std::vector<Segment> resolve_slices(const std::vector<Slice>& slices, uint32_t chunk_len) {
  std::map<uint32_t, uint32_t> claimed;  // start -> end of ranges owned by newer slices
  std::vector<Segment> out;
  for (auto s = slices.rbegin(); s != slices.rend(); ++s) {
    uint64_t end64 = std::min<uint64_t>(uint64_t{s->pos} + s->len, chunk_len);
    if (s->len == 0 || s->pos >= end64) continue;
    uint32_t lo = s->pos;
    uint32_t hi = static_cast<uint32_t>(end64);

    // The first claimed range that touches or overlaps [lo, hi).
    auto it = claimed.upper_bound(lo);
    if (it != claimed.begin() && std::prev(it)->second >= lo) --it;
    uint32_t merged_lo = lo, merged_hi = hi;
    uint32_t cur = lo;
    while (it != claimed.end() && it->first <= hi) {
      if (it->first > cur) out.push_back(piece_of(*s, cur, it->first));
      cur = std::max(cur, it->second);
      merged_lo = std::min(merged_lo, it->first);
      merged_hi = std::max(merged_hi, it->second);
      it = claimed.erase(it);
    }
    if (cur < hi) out.push_back(piece_of(*s, cur, hi));
    claimed.emplace(merged_lo, merged_hi);
  }

  std::sort(out.begin(), out.end(),
            [](const Segment& a, const Segment& b) { return a.pos < b.pos; });
  std::vector<Segment> result;
  result.reserve(out.size() * 2 + 1);
  uint32_t at = 0;
  for (const Segment& seg : out) {
    if (seg.pos > at) result.push_back(Segment{at, seg.pos - at, 0, 0, 0});
    result.push_back(seg);
    at = seg.pos + seg.len;
  }
  if (at < chunk_len) result.push_back(Segment{at, chunk_len - at, 0, 0, 0});
  return result;
}

}  // namespace sluice::meta
