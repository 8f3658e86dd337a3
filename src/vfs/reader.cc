// Read assembly and readahead.
//
// A read first flushes the inode's buffered writes (so it sees committed data), then
// resolves the slices of each chunk it touches (cached per handle until the inode's
// generation moves), zero-fills holes and copies data out of blocks. Blocks come through
// the block cache, whose loader fetches from the store, decodes and verifies them: a bad
// block is EIO, never data. Blocks of one read load in parallel on the download pool.
// A handle whose reads continue near where the last one ended (within a few read
// lengths, so kernel readahead requests that arrive out of order still count) grows a
// readahead window (1, 2, 4, ... readahead_blocks blocks) and prefetches it in the
// background, in parallel on the download pool; random access prefetches nothing.
//
// Tensor-aware readahead: a read that starts at offset 0 is sniffed for a safetensors
// header (9 bytes checked; other files pay nothing more); a plausible header is read
// and parsed once per inode (size, mtime) and shared by every handle. Then a read inside
// a tensor prefetches the rest of that tensor (up to tensor_prefetch_bytes), so loaders
// that fault tensors in any order fetch whole tensors in parallel. Prefetches queued or
// running are bounded (prefetch_budget_blocks); duplicate GETs are avoided by the
// cache's single-flight loads.
//
// Parted fetches: a block a reader waits for (a demand read, or tensor prefetch) on a
// volume without compression or encryption is fetched as block_get_parts ranged GETs in
// parallel, on the parts_ pool, then joined and decoded as one GET's object would be;
// readahead keeps one GET per block. A read-around that enters a tensor prefetches it
// through the end of the kernel window holding the tensor's end (tensor_ahead_locked).
//
// Ranged reads (ranged.cc): on a volume without compression or encryption, a random read
// (no stream on its handle) of a block not cached fetches only the 64 KiB sub-blocks it
// needs when they are at most half the block, and tensor prefetch fetches only the
// tensor's part of a block it covers partly. See docs/read-path.md.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <tuple>

#include "common/file_io.h"
#include "common/logging.h"
#include "object/block_codec.h"
#include "object/layout.h"
#include "vfs/internal.h"
#include "vfs/vfs.h"

namespace sluice::vfs {

namespace {

constexpr uint64_t kChunk = meta::kChunkSize;

// Walks file range [off, off+len) over the resolved chunks `segs` (starting at chunk
// off / kChunk), in order: on_zero(file_off, len) for holes, and
// on_data(block, offset_in_block, file_off, len) for each piece of a block.
template <typename OnZero, typename OnData>
void walk(const std::vector<Segments>& segs, uint64_t off, uint64_t len, uint64_t bs,
          OnZero on_zero, OnData on_data) {
  const uint64_t end = off + len;
  const uint64_t first = off / kChunk;
  for (size_t k = 0; k < segs.size(); k++) {
    const uint64_t cstart = (first + k) * kChunk;
    const uint64_t ls = std::max(off, cstart) - cstart;
    const uint64_t le = std::min(end, cstart + kChunk) - cstart;
    const std::vector<meta::Segment>& sv = *segs[k];
    auto it = std::partition_point(sv.begin(), sv.end(), [&](const meta::Segment& s) {
      return uint64_t(s.pos) + s.len <= ls;
    });
    for (; it != sv.end() && it->pos < le; ++it) {
      const uint64_t a = std::max<uint64_t>(it->pos, ls);
      const uint64_t b = std::min<uint64_t>(uint64_t(it->pos) + it->len, le);
      const uint64_t foff = cstart + a;
      if (it->id == 0) {
        on_zero(foff, b - a);
        continue;
      }
      const uint64_t so = it->off + (a - it->pos), se = so + (b - a);  // slice range
      for (uint64_t bi = so / bs; bi * bs < se; bi++) {
        const uint64_t x = std::max(so, bi * bs), y = std::min(se, (bi + 1) * bs);
        on_data(BlockRef{it->id, it->size, static_cast<uint32_t>(bi)},
                static_cast<uint32_t>(x - bi * bs), foff + (x - so), y - x);
      }
    }
  }
}

}  // namespace

Result<std::pair<std::string, uint32_t>> locate(const meta::Format& fmt, const BlockRef& b) {
  if (uint64_t(b.index) * fmt.block_size >= b.slice_size) {
    return Status(Code::kCorruption, "block " + std::to_string(b.index) +
                                         " is past the end of slice " + std::to_string(b.slice_id));
  }
  const uint32_t len = object::block_len(b.slice_size, fmt.block_size, b.index);
  return std::make_pair(object::block_key(fmt.name, b.slice_id, b.index, len), len);
}

namespace {

// A piece of a read: len bytes at offset `off` of blocks[block], or len zeros when block
// is kZeroPiece.
constexpr size_t kZeroPiece = SIZE_MAX;
struct Piece {
  size_t block;
  uint32_t off;
  uint64_t len;
};

// A handle that has read into this fraction (1/N) of a file's tensors out of order, and
// at least kLoadingAllMin of them, is taken to be loading the whole file. So is one whose
// process has gone, out of order, into 1/kPoolFraction of the tensors of all the files it
// has entered, when those are more than this one (at least kLoadingAllMin entries): a
// loader that touches every tensor of a model in its own order spreads its entries over
// the shards, and pooled they are many more, and vary much less, than one file's, so a
// lower fraction tells. A process in one file keeps the per-file rule. The benchmark's
// lazy loader enters a tenth of a model's tensors, which stays under both.
constexpr size_t kLoadingAllFraction = 5;
constexpr size_t kPoolFraction = 8;
constexpr size_t kLoadingAllMin = 8;

// The process (thread group) of thread `tid`, from /proc; tid itself when that cannot be
// read (the thread has gone). FUSE requests carry the thread's id.
uint32_t process_of(uint32_t tid) {
  if (tid == 0) return 0;
  std::FILE* f = std::fopen(("/proc/" + std::to_string(tid) + "/status").c_str(), "r");
  if (f == nullptr) return tid;
  char line[256];
  uint32_t tgid = tid;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned v = 0;
    if (std::sscanf(line, "Tgid: %u", &v) == 1) {
      tgid = v;
      break;
    }
  }
  std::fclose(f);
  return tgid;
}

// The byte of a read that a loader most likely faulted on. A page fault's read is the
// kernel's read-around, centred on the faulting page, so it starts up to half its length
// before that page, often in the tensor before. The page in the middle is the faulted
// one; a loader faults on a tensor's first byte, which lies anywhere in that page (tensors
// are not page aligned), so the page's last byte is in the faulted tensor unless that
// tensor is smaller than a page.
constexpr uint64_t kPage = 4096;
uint64_t fault_probe(uint64_t off, uint64_t len) {
  return off + std::min(len / 2 / kPage * kPage + kPage - 1, len - 1);
}

// Holes are replied from this buffer, as many times as they need.
constexpr size_t kZerosSize = 128 << 10;
const char kZeros[kZerosSize] = {};

// read() into a caller's buffer goes through read_pieces in steps of this many bytes, so
// a huge read holds a bounded number of blocks.
constexpr size_t kCopyStep = 16 << 20;

}  // namespace

size_t ReadData::copy_to(char* dst, size_t from, size_t n) const {
  size_t done = 0, pos = 0;
  for (const ReadPiece& p : pieces) {
    if (done == n) break;
    if (pos + p.len > from) {
      const size_t skip = from > pos ? from - pos : 0;
      const size_t take = std::min(p.len - skip, n - done);
      if (p.data != nullptr) {
        std::memcpy(dst + done, p.data + skip, take);
      } else if (!pread_full(p.fd, dst + done, take, p.fd_off + skip)) {
        return done;
      }
      done += take;
    }
    pos += p.len;
  }
  return done;
}

bool ReadData::read_files(std::string& buf) {
  size_t total = 0;
  for (const ReadPiece& p : pieces) {
    if (p.data == nullptr) total += p.len;
  }
  if (buf.size() < total) buf.resize(total);
  size_t at = 0;
  for (ReadPiece& p : pieces) {
    if (p.data != nullptr) continue;
    if (!pread_full(p.fd, buf.data() + at, p.len, p.fd_off)) return false;
    p.data = buf.data() + at;
    p.fd = -1;
    at += p.len;
  }
  files.clear();
  return true;
}

void ReadData::clear() {
  pieces.clear();
  hold.clear();
  files.clear();
  size = 0;
}

Result<size_t> Vfs::read(const Context& ctx, Ino ino, uint64_t fh, uint64_t off, char* buf,
                         size_t size) {
  ReadData data;  // not thread_local: the header sniff of an offset-0 read reads again
  size_t done = 0;
  while (done < size) {
    const size_t step = std::min(size - done, kCopyStep);
    Status st = read_pieces(ctx, ino, fh, off + done, step, data);
    size_t got = data.copy_to(buf + done, 0, data.size);
    if (st.ok() && got < data.size) {  // a cache file failed to read: verify instead
      LOG_WARN("vfs: reading a disk-cache file of inode {}: {}; reading it verified", ino,
               std::strerror(errno));
      st = read_pieces(ctx, ino, fh, off + done, step, data, /*files=*/false);
      got = data.copy_to(buf + done, 0, data.size);
    }
    const size_t want = data.size;
    data.clear();
    RETURN_IF_ERROR(st);
    if (got < want) return Status(Code::kIO, "reading inode " + std::to_string(ino));
    done += got;
    if (got < step) break;  // end of file
  }
  return done;
}

Status Vfs::read_pieces(const Context& ctx, Ino ino, uint64_t fh, uint64_t off, size_t size,
                        ReadData& out, bool files) {
  out.clear();
  ASSIGN_OR_RETURN(auto h, file_handle(ino, fh));
  if (!h->readable()) {
    return Status(Code::kBadFd, "handle " + std::to_string(fh) + " is not open for reading");
  }
  if (h->inode->pending_end.load() != 0) RETURN_IF_ERROR(flush_writer(*h->inode));
  // The file whole on local disk: no blocks to look up.
  if (files && read_copy(*h, off, size, out)) return Status::OK();

  uint64_t n = 0;
  std::vector<Segments> segs;
  std::vector<Prefetch> ahead;
  bool random = false;             // misses may fetch ranged
  bool opening = false;            // the handle's first read, at offset 0
  std::vector<Prefetch> deferred;  // its readahead
  std::vector<Prefetch> bulk;      // a file loaded whole out of order (bulk_ahead_locked)
  uint64_t tensor_end = 0;         // of the tensor the read is in, when the file has a layout
  bool all = false;                // the handle is loading the whole file out of order
  {
    std::lock_guard lk(h->mu);
    RETURN_IF_ERROR(refresh_locked(*h));
    if (off < h->size) n = std::min<uint64_t>(size, h->size - off);
    if (n == 0) return Status::OK();
    ASSIGN_OR_RETURN(segs, segments_locked(*h, off, n));
    // Reads of a safetensors header prefetch nothing: a loader reads the header, then
    // maps the file and jumps to the tensors it wants. The readahead of a file's opening
    // read waits until the read is sniffed (below), and is dropped for a safetensors file.
    refresh_layout_locked(*h);
    opening = off == 0 && h->last_end == 0 && opts_.tensor_prefetch_bytes > 0;
    const bool in_header = h->layout && off + n <= h->layout->data_start;
    for (const BlockRef& b : readahead_locked(*h, off, n, !in_header)) {
      (opening ? deferred : ahead).push_back({b, 0, 0});
    }
    tensor_end = tensor_ahead_locked(*h, off, n, ahead);
    // Whole blocks for a stream that reads a file from its start (a plain sequential
    // reader, or a loader in header order); a read elsewhere may fetch only what it
    // needs of a block, which for a file of tensors is up to the end of the tensor it is in.
    random = rangeable_ && !(h->streaming && entered_tensor_end(*h) == 0);
    // A loader that has gone into a fifth of a file's tensors out of order, or whose
    // process has gone into an eighth of the tensors of the files it entered (the file
    // being one of several), is loading all of it in its own order (shuffled), and the
    // whole model with it: a ranged read per tensor would cost a round
    // trip each, so it gets whole blocks, and with a disk cache to hold them the rest of
    // the file is fetched ahead in file order, in parallel, within the prefetch budget.
    all = h->loading_all;
    size_t pooled = 0, of = 0;         // the process's pool of entries: entered, of tensors
    if (h->layout && !h->streaming) {  // a random entry: which tensor it went into
      const TensorRange* t = h->layout->find(fault_probe(off, n));
      if (t != nullptr) h->entered.insert(static_cast<size_t>(t - h->layout->tensors.data()));
      std::tie(pooled, of) = pool_entries_locked(*h);
      const size_t e = h->entered.size();
      const size_t count = h->layout->tensors.size();
      all = all || (e >= kLoadingAllMin && e * kLoadingAllFraction >= count) ||
            (e > 0 && of > count && pooled >= kLoadingAllMin && pooled * kPoolFraction >= of);
    }
    if (random && h->layout && all) {
      random = false;
      if (!h->loading_all) {
        h->loading_all = true;
        LOG_INFO(
            "vfs: inode {} handle {} is loading the whole file out of order ({} of {} "
            "tensors entered at random, {} of {} in the files its process entered): whole "
            "blocks from now on",
            ino, fh, h->entered.size(), h->layout->tensors.size(), pooled, of);
      }
      if (opts_.disk_cache_enabled()) bulk_ahead_locked(*h, bulk);
    }
  }
  submit_bulk(h, std::move(bulk));
  submit_prefetch(std::move(ahead));

  const uint64_t bs = meta_->format().block_size;
  uint64_t covered = 0;
  std::vector<BlockRef> blocks;
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // per block: bytes [lo, hi) read
  std::vector<Piece> pieces;
  walk(
      segs, off, n, bs,
      [&](uint64_t, uint64_t len) {
        pieces.push_back({kZeroPiece, 0, len});
        covered += len;
      },
      [&](const BlockRef& r, uint32_t boff, uint64_t foff, uint64_t len) {
        if (blocks.empty() || !(blocks.back() == r)) {
          blocks.push_back(r);
          spans.emplace_back(boff, boff + len);
        }
        auto& [lo, hi] = spans.back();
        lo = std::min<uint64_t>(lo, boff);
        hi = std::max<uint64_t>(hi, boff + len);
        // The rest of the tensor in this block is wanted too (tensor prefetch starts at
        // the next block).
        if (tensor_end > foff + len) hi = std::max<uint64_t>(hi, boff + (tensor_end - foff));
        pieces.push_back({blocks.size() - 1, boff, len});
        covered += len;
      });
  if (covered != n) {
    return Status(Code::kCorruption,
                  "chunk layout of inode " + std::to_string(ino) + " does not cover the file size");
  }

  // Blocks load in parallel on the download pool, a batch at a time.
  std::vector<BlockData> got(blocks.size());
  std::vector<Status> errs(blocks.size());
  const size_t batch = std::max(1, opts_.download_threads) * 2;
  for (size_t s = 0; s < blocks.size(); s += batch) {
    const size_t e = std::min(blocks.size(), s + batch);
    // A random read of a block not cached whole fetches only the sub-blocks it needs
    // when that is at most half the block; any read uses cached sub-blocks.
    auto load = [&](size_t i) {
      const auto [lo, hi] = spans[i];
      const uint32_t blen =
          object::block_len(blocks[i].slice_size, static_cast<uint32_t>(bs), blocks[i].index);
      // A block with sub-blocks cached fetches only its missing ones, whatever the read.
      Result<BlockData> r = [&]() -> Result<BlockData> {
        if ((random && range_worthwhile(blen, lo, hi)) || has_cached_subs(blocks[i])) {
          return load_range(blocks[i], lo, hi, nullptr, files);
        }
        return load_whole(blocks[i], lo, hi, files, all ? 1 : 0);
      }();
      if (r.ok()) {
        got[i] = std::move(r).value();
      } else {
        errs[i] = r.status();
      }
    };
    {
      TaskGroup group(*downloads_);
      for (size_t i = s + 1; i < e; i++) group.run([&load, i] { load(i); });
      load(s);
    }
    for (size_t i = s; i < e; i++) {
      if (errs[i].ok()) continue;
      Code c = errs[i].is(Code::kCorruption) ? Code::kCorruption : Code::kIO;
      return Status(c, "reading inode " + std::to_string(ino) + ": " + errs[i].message());
    }
  }
  for (const Piece& pc : pieces) {
    if (pc.block == kZeroPiece) {
      for (uint64_t z = 0; z < pc.len; z += kZerosSize) {
        out.pieces.push_back({kZeros, std::min<uint64_t>(kZerosSize, pc.len - z)});
      }
      continue;
    }
    if (!got[pc.block].append(pc.off, pc.len, out.pieces)) {
      out.pieces.clear();
      return Status(Code::kCorruption, "block of slice " +
                                           std::to_string(blocks[pc.block].slice_id) +
                                           " is shorter than its layout");
    }
  }
  for (BlockData& d : got) d.hold_in(out);
  for (const ReadPiece& p : out.pieces) {
    if (p.data == nullptr) stats_.read_file_bytes += p.len;
  }
  out.size = n;
  stats_.read_ops++;
  stats_.read_bytes += n;
  bool tensors = false;
  if (off == 0 && opts_.tensor_prefetch_bytes > 0) {
    // The sniff looks at the first bytes; a header longer than this is read on by it.
    std::string head(std::min<uint64_t>(n, 1 << 20), '\0');
    out.copy_to(head.data(), 0, head.size());
    tensors = sniff_layout(ctx, *h, fh, head.data(), head.size());
  }
  if (opening && !deferred.empty()) {
    if (!tensors) {
      submit_prefetch(std::move(deferred));
    } else {
      std::lock_guard lk(h->mu);
      h->window = 0;
      h->prefetched_to = 0;
    }
  }
  return Status::OK();
}

Status Vfs::refresh_locked(FileHandle& h) {
  const uint64_t gen = h.inode->generation.load();
  if (gen == h.generation) return Status::OK();
  ASSIGN_OR_RETURN(Attr a, meta_->getattr(h.ino));
  h.size = a.size;
  h.mtime_ns = a.mtime_ns;
  h.chunks.clear();
  h.copy = nullptr;
  h.generation = gen;
  h.layout = nullptr;
  h.layout_version = 0;
  h.sniffed = false;
  h.tensor_prefetched.clear();
  h.entered.clear();
  h.loading_all = false;
  h.bulk_next = 0;
  return Status::OK();
}

Result<std::vector<Segments>> Vfs::segments_locked(FileHandle& h, uint64_t off, uint64_t len) {
  std::vector<Segments> out;
  for (uint64_t idx = off / kChunk; idx * kChunk < off + len; idx++) {
    auto it = h.chunks.find(static_cast<uint32_t>(idx));
    if (it == h.chunks.end()) {
      ASSIGN_OR_RETURN(auto slices, meta_->read_chunk(h.ino, static_cast<uint32_t>(idx)));
      const uint64_t cstart = idx * kChunk;
      const auto clen =
          static_cast<uint32_t>(h.size > cstart ? std::min(kChunk, h.size - cstart) : 0);
      auto segs =
          std::make_shared<const std::vector<meta::Segment>>(meta::resolve_slices(slices, clen));
      it = h.chunks.emplace(static_cast<uint32_t>(idx), std::move(segs)).first;
    }
    out.push_back(it->second);
  }
  return out;
}

uint64_t Vfs::entered_tensor_end(const FileHandle& h) const {
  // A stream that began in the header (offset 0: a loader reading the file in order) is
  // no random entry. The first read of a random entry may start a little before the
  // faulted tensor (the kernel's fault read-around), hence the slack.
  constexpr uint64_t kEntrySlack = 1 << 20;
  if (!h.layout || h.stream_from < h.layout->data_start) return 0;
  const TensorRange* t = h.layout->find(h.stream_from + kEntrySlack);
  if (t == nullptr) t = h.layout->find(h.stream_from);
  if (t == nullptr) return 0;
  // Nor is a stream that went on far past the end of the tensor it entered, further than
  // the kernel reads past a faulted tensor (a window or two, as the loader touches the
  // last pages of one it reads): 4 blocks. It reads tensors in file order (a loader
  // whose stream a stray read broke, picking it up again).
  if (h.last_end > t->end + 4 * meta_->format().block_size) return 0;
  return t->end;
}

std::vector<BlockRef> Vfs::readahead_locked(FileHandle& h, uint64_t off, uint64_t len,
                                            bool prefetch) {
  std::vector<BlockRef> out;
  const uint64_t end = off + len;
  // Near the last end: concurrent kernel readahead requests may arrive out of order. A
  // request that overtook the one before it lands a whole request past the last end; that
  // one is about as long as the last read (up to twice, as the kernel's window grows),
  // while the overtaking one may be short: the file's tail.
  const uint64_t slack = std::min<uint64_t>(std::max(4 * len, 2 * h.last_len), 8 << 20);
  h.last_len = len;
  auto near = [&](uint64_t at) { return off <= at + slack && off + slack >= at; };
  bool sequential = near(h.last_end);
  if (h.inode) {
    // Another handle's stream from the file's start that this read continues (readers
    // in other processes filled the page cache up to here) is taken over; then this
    // handle's stream is published.
    std::lock_guard lk(h.inode->streams_mu);
    auto& streams = h.inode->streams;
    if (!sequential || !h.from_start) {
      for (const FileWriter::Stream& s : streams) {
        if (s.owner != &h && s.from_start && near(s.end)) {
          sequential = true;
          h.stream_from = s.from;
          h.from_start = true;
          h.last_end = s.end;
          break;
        }
      }
    }
    if (!sequential || h.last_end == 0) h.from_start = off == 0;
    auto mine = std::find_if(streams.begin(), streams.end(),
                             [&](const FileWriter::Stream& s) { return s.owner == &h; });
    if (mine == streams.end()) {
      mine = streams.begin() + h.inode->streams_next;
      h.inode->streams_next = (h.inode->streams_next + 1) % streams.size();
    }
    *mine = {&h, sequential ? h.stream_from : off, h.from_start,
             sequential ? std::max(h.last_end, off + len) : off + len};
  }
  h.streaming = sequential;
  if (!sequential || opts_.readahead_blocks == 0 || !prefetch) {
    h.last_end = sequential ? std::max(h.last_end, end) : end;
    h.window = 0;
    h.prefetched_to = 0;
    if (!sequential) h.stream_from = off;
    return out;
  }
  h.last_end = std::max(h.last_end, end);
  const auto max_window = static_cast<uint32_t>(opts_.readahead_blocks);
  h.window = h.window == 0 ? 1 : std::min(h.window * 2, max_window);
  const uint64_t bs = meta_->format().block_size;
  // Whole blocks, from the boundary after the read (the block under `end` is being read
  // now), so that no block is submitted twice.
  auto round_up = [bs](uint64_t x) { return (x + bs - 1) / bs * bs; };
  const uint64_t from = std::max(round_up(end), h.prefetched_to);
  uint64_t to = std::min(h.size, round_up(end + h.window * bs));
  // A stream that entered a tensor at random stops at the last block boundary of it.
  if (const uint64_t limit = entered_tensor_end(h); limit > 0) {
    to = std::min(to, std::max(from, limit / bs * bs));
  }
  if (from >= to) return out;
  auto segs = segments_locked(h, from, to - from);
  if (!segs.ok()) {
    LOG_WARN("vfs: readahead of inode {}: {}", h.ino, segs.status().ToString());
    return out;
  }
  walk(
      *segs, from, to - from, bs, [](uint64_t, uint64_t) {},
      [&](const BlockRef& r, uint32_t, uint64_t, uint64_t) {
        if (out.empty() || !(out.back() == r)) out.push_back(r);
      });
  h.prefetched_to = to;
  return out;
}

Result<BlockData> Vfs::load_block(const BlockRef& b, bool files, int parts) {
  ASSIGN_OR_RETURN(auto loc, locate(meta_->format(), b));
  const auto& [key, len] = loc;
  {
    std::lock_guard lk(prefetched_mu_);
    if (prefetched_.erase(key) > 0) stats_.prefetch_hits++;
  }
  // A block the disk cache may serve as it is is read from its file (spliced), not into
  // memory. One not checked yet since the mount (--verify-cache-checksum once) is checked
  // where it lies and then read from its file too: lifting it into memory whole for this
  // read would put a 4 MiB buffer on the reader's wait (a loader's random entries into a
  // disk-cached model wait for this; docs/read-path.md).
  if (files) {
    cache::FileBlock f = cache_->open_file(key);
    if (!f) f = cache_->ready_file(key);
    if (f && f->len == len) return BlockData::of_file(std::move(f));
  }
  cache::LoadSum sum;  // the disk tier writes the block under the checksum decoding checked
  ASSIGN_OR_RETURN(
      cache::Block w,
      cache_->get_or_load(
          key,
          [&] { return fetch_block(key, len, parts > 0 ? parts : opts_.block_get_parts, &sum); },
          &sum));
  return BlockData::of_whole(std::move(w));
}

cache::Block Vfs::prefetch_block(const Prefetch& p, const std::shared_ptr<FileHandle>& h) {
  const BlockRef& b = p.block;
  const PrefetchFor why = p.why;
  auto loc = locate(meta_->format(), b);
  if (!loc.ok()) return nullptr;  // a bad layout is reported by read
  if (cache::Block cached = cache_->peek(loc->first)) return cached;
  const auto& [key, len] = *loc;
  // A block in the disk cache stays there, not lifted into memory: it is readied for its
  // reader (verified now if it must be, its file's pages read ahead), who then reads it
  // from its file (load_block). Lifting it cost a block-sized buffer, zero-filled and
  // copied into, for every block (measured, 4 GiB from a warm disk cache after a
  // remount: header order 1.18-1.26 GB/s readied against 0.95-1.02 lifted, shuffled
  // 0.92-0.98 against 0.82-0.85); and for a whole file loaded out of order, lifting in
  // file order would evict the blocks the loader is about to read. With a page store on,
  // a readied block of a whole file is pushed into the kernel's page cache of that file,
  // read from its cache file (queue_page_store), so the loader's faults on it need no
  // FUSE read (measured, 4 GiB shuffled from a warm disk cache: 0.95-1.03 GB/s against
  // 0.83-0.86 without, traced, in the same turns).
  if (why == PrefetchFor::kWholeFile && cache_->contains(key)) {
    ready_in_turn({key, page_store_on_.load() ? h : nullptr, p});
    return nullptr;
  }
  if (cache_->ready_file(key)) return nullptr;
  // Parts of it were fetched as sub-blocks, or are being: fetch only the rest.
  if (has_cached_subs(b)) {
    prefetch_range({b, 0, len});
    return nullptr;
  }
  InFlight whole(*this, whole_inflight_, range_inflight_, key);
  if (!whole.claimed()) {
    prefetch_range({b, 0, len});
    return nullptr;
  }
  // The key is recorded before the load, so a read that arrives during it counts as a
  // hit. At the bound, keys whose block left the cache unread count as wasted (roughly:
  // a load still in flight counts too); if all are still cached, the record restarts.
  bool inserted = false;
  {
    const size_t bound = 2 * prefetch_budget_blocks();
    std::lock_guard lk(prefetched_mu_);
    if (prefetched_.size() >= bound) {
      for (auto it = prefetched_.begin(); it != prefetched_.end();) {
        if (cache_->contains(*it)) {
          ++it;
        } else {
          stats_.prefetch_wasted++;
          it = prefetched_.erase(it);
        }
      }
      if (prefetched_.size() >= bound) prefetched_.clear();
    }
    inserted = prefetched_.insert(key).second;
  }
  bool fetched = false;
  cache::LoadSum sum;
  auto r = cache_->get_or_load(
      key,
      [&] {
        fetched = true;
        return fetch_block(key, len, why == PrefetchFor::kReader ? opts_.block_get_parts : 1, &sum);
      },
      &sum);
  if (r.ok() && fetched) {
    stats_.prefetch_issued++;
    return *r;
  }
  // Failed (errors are logged; a read will report them) or loaded by another caller
  // first: the record is dropped unless another prefetch made it (and fetches it).
  if (inserted) {
    std::lock_guard lk(prefetched_mu_);
    prefetched_.erase(key);
  }
  return r.ok() ? *r : nullptr;
}

void Vfs::ready_in_turn(ReadyItem item) {
  {
    std::lock_guard lk(ready_mu_);
    if (readying_ >= kReadyingMax) {
      ready_backlog_.push_back(std::move(item));
      return;
    }
    readying_++;
  }
  // This task readies the backlog too, in order, until it is empty.
  for (;;) {
    cache::FileBlock f = cache_->ready_file(item.key);
    if (f && item.h) queue_page_store(item.h, item.p, std::move(f));
    std::lock_guard lk(ready_mu_);
    if (ready_backlog_.empty()) {
      readying_--;
      return;
    }
    item = std::move(ready_backlog_.front());
    ready_backlog_.pop_front();
  }
}

uint64_t Vfs::prefetch_budget_blocks() const {
  const uint64_t bytes = std::min(opts_.prefetch_budget_bytes, opts_.memory_cache_size / 2);
  return std::max<uint64_t>(1, bytes / meta_->format().block_size);
}

void Vfs::submit_prefetch(std::vector<Prefetch> items) {
  for (const Prefetch& p : items) {
    prefetch_queued_++;
    downloads_->submit([this, p] {
      if (p.hi == 0) {
        prefetch_block(p);
      } else {
        prefetch_range(p);
      }
      std::lock_guard lk(prefetch_mu_);
      if (--prefetch_queued_ == 0) prefetch_cv_.notify_all();
    });
  }
}

void Vfs::submit_bulk(const std::shared_ptr<FileHandle>& h, std::vector<Prefetch> items) {
  for (const Prefetch& p : items) {
    prefetch_queued_++;
    downloads_->submit([this, h, p] {
      if (cache::Block data = prefetch_block(p, h)) {
        queue_page_store(h, p, std::move(data));
      }
      // Each one done queues the next of the file, so the budget stays in use while the
      // loader waits for its own reads. The next are queued before this one counts as
      // done, so wait_prefetches() does not return in between.
      std::vector<Prefetch> more;
      {
        std::lock_guard lk(h->mu);
        if (h->layout) bulk_ahead_locked(*h, more);
      }
      submit_bulk(h, std::move(more));
      std::lock_guard lk(prefetch_mu_);
      if (--prefetch_queued_ == 0) prefetch_cv_.notify_all();
    });
  }
}

void Vfs::wait_prefetches() {
  std::unique_lock lk(prefetch_mu_);
  prefetch_cv_.wait(lk, [this] { return prefetch_queued_.load() == 0; });
}

void Vfs::bulk_ahead_locked(FileHandle& h, std::vector<Prefetch>& out) {
  const uint64_t bs = meta_->format().block_size;
  const uint64_t queued = prefetch_queued_.load();
  uint64_t budget = prefetch_budget_blocks();
  // Blocks pushed into the kernel's page cache need not stay in memory for the loader:
  // as many in flight as a stream's readahead window (measured: 2 GiB shuffled loads
  // 0.259-0.281 GB/s with the budget, 0.272-0.295 with 16).
  if (page_store_on_.load()) budget = std::max<uint64_t>(budget, opts_.readahead_blocks);
  // Done once bulk_next reaches the end (checked before rounding down: the last block
  // of a file that does not end on a block boundary would be queued again and again).
  if (h.bulk_next >= h.size || queued >= budget) return;
  const uint64_t from = std::max(h.bulk_next, h.layout->data_start) / bs * bs;
  const uint64_t to = std::min(h.size, from + (budget - queued) * bs);
  auto segs = segments_locked(h, from, to - from);
  if (!segs.ok()) {
    LOG_WARN("vfs: bulk readahead of inode {}: {}", h.ino, segs.status().ToString());
    return;
  }
  walk(
      *segs, from, to - from, bs, [](uint64_t, uint64_t) {},
      [&](const BlockRef& r, uint32_t boff, uint64_t foff, uint64_t n) {
        if (out.empty() || !(out.back().block == r)) {
          out.push_back({r, 0, 0, PrefetchFor::kWholeFile, foff, boff, 0});
        }
        Prefetch& p = out.back();
        // The pieces of one block in a file are contiguous, both in the file and in it.
        if (p.file_off + p.len == foff && p.block_off + p.len == boff) {
          p.len += static_cast<uint32_t>(n);
        }
      });
  h.bulk_next = to;
}

void Vfs::refresh_layout_locked(FileHandle& h) {
  const uint64_t version = layouts_version_.load();
  if (h.layout_version != version) {
    h.layout_version = version;
    std::lock_guard lk(layouts_mu_);
    auto it = layouts_.find(h.ino);
    auto found =
        it != layouts_.end() && it->second.size == h.size && it->second.mtime_ns == h.mtime_ns
            ? it->second.layout
            : nullptr;
    if (found != h.layout) {
      h.tensor_prefetched.clear();
      h.entered.clear();
      h.loading_all = false;
    }
    h.layout = std::move(found);
  }
}

std::pair<size_t, size_t> Vfs::pool_entries_locked(FileHandle& h) {
  const size_t entered = h.layout ? h.entered.size() : 0;
  const size_t tensors = entered > 0 ? h.layout->tensors.size() : 0;
  // A reader the mount cannot see (thread id 0: a PID namespace outside the mount's, such
  // as an application pod beside a mount pod) is pooled with nothing: all such readers,
  // of whatever model, would share one pool.
  if (h.opener == 0) return {entered, tensors};
  if (entered == 0 && h.pooled_entered == 0 && h.pooled_tensors == 0) return {0, 0};
  if (entered > 0 && h.pool == 0) h.pool = process_of(h.opener);
  std::lock_guard lk(pools_mu_);
  auto& [pe, pt] = pools_[h.pool];
  pe = pe + entered - h.pooled_entered;
  pt = pt + tensors - h.pooled_tensors;
  h.pooled_entered = entered;
  h.pooled_tensors = tensors;
  const std::pair<size_t, size_t> out{pe, pt};
  if (pe == 0 && pt == 0) pools_.erase(h.pool);
  return out;
}

std::pair<size_t, size_t> Vfs::pooled_entries(uint32_t process) {
  std::lock_guard lk(pools_mu_);
  auto it = pools_.find(process);
  return it == pools_.end() ? std::pair<size_t, size_t>{0, 0} : it->second;
}

void Vfs::pool_leave(FileHandle& h) {
  if (h.pooled_entered == 0 && h.pooled_tensors == 0) return;
  std::lock_guard lk(pools_mu_);
  auto it = pools_.find(h.pool);
  if (it != pools_.end()) {
    it->second.first -= h.pooled_entered;
    it->second.second -= h.pooled_tensors;
    if (it->second.first == 0 && it->second.second == 0) pools_.erase(it);
  }
  h.pooled_entered = h.pooled_tensors = 0;
}

uint64_t Vfs::tensor_ahead_locked(FileHandle& h, uint64_t off, uint64_t len,
                                  std::vector<Prefetch>& out) {
  if (opts_.tensor_prefetch_bytes == 0) return 0;
  if (!h.layout) return 0;
  // The tensor of the faulting byte (see fault_probe).
  const TensorRange* t = h.layout->find(fault_probe(off, len));
  if (t == nullptr) t = h.layout->find(off);
  if (t == nullptr) return 0;
  // A stream that entered a tensor at random and ran past it (the kernel reading ahead
  // of the loader's faults) does not prefetch the tensors after it.
  if (const uint64_t limit = entered_tensor_end(h); limit > 0 && t->begin >= limit) return 0;
  const uint64_t cap = opts_.tensor_prefetch_bytes;
  const uint64_t bs = meta_->format().block_size;
  // From the block after the one under the read's end: the read loads that one itself,
  // with the tensor's part of it (see read_pieces).
  auto round_up = [bs](uint64_t x) { return (x + bs - 1) / bs * bs; };
  uint64_t& done = h.tensor_prefetched[static_cast<size_t>(t - h.layout->tensors.data())];
  uint64_t target = std::min({t->end, off + cap, h.size});
  // A read that starts before the tensor is a page fault's read-around. The kernel reads
  // on in windows of its length as the loader moves through the tensor, and reads the
  // window holding the tensor's end whole: that window is prefetched too, so the loader
  // does not wait a round trip for the bytes past the tensor at its end.
  if (off < t->begin && target == t->end && len > 0) {
    target = std::min(h.size, off + (target - off + len - 1) / len * len);
  }
  // A tensor longer than cap moves on in steps of a quarter of cap.
  const uint64_t from = std::max(round_up(std::min(off + len, target)), done);
  if (from >= target || (target < t->end && target - done < cap / 4)) return target;
  const uint64_t queued = prefetch_queued_.load();
  const uint64_t budget = prefetch_budget_blocks();
  if (queued >= budget) {
    stats_.prefetch_over_budget++;
    return target;
  }
  const uint64_t to = std::min(target, from + (budget - queued) * bs);
  auto segs = segments_locked(h, from, to - from);
  if (!segs.ok()) {
    LOG_WARN("vfs: tensor readahead of inode {}: {}", h.ino, segs.status().ToString());
    return target;
  }
  // Each block whole, except those the range covers partly (its first and last) when
  // fetching only their part is worth it.
  const size_t first_new = out.size();
  const PrefetchFor why = h.loading_all ? PrefetchFor::kAhead : PrefetchFor::kReader;
  walk(
      *segs, from, to - from, bs, [](uint64_t, uint64_t) {},
      [&](const BlockRef& r, uint32_t boff, uint64_t, uint64_t n) {
        if (out.size() > first_new && out.back().block == r) {
          out.back().hi = std::max<uint64_t>(out.back().hi, boff + n);
        } else {
          out.push_back({r, boff, boff + n, why});
        }
      });
  for (size_t i = first_new; i < out.size(); i++) {
    Prefetch& p = out[i];
    const uint32_t blen =
        object::block_len(p.block.slice_size, static_cast<uint32_t>(bs), p.block.index);
    if (!range_worthwhile(blen, p.lo, p.hi)) p.lo = p.hi = 0;  // whole
  }
  done = to;
  stats_.tensor_prefetches++;
  return target;
}

bool Vfs::sniff_layout(const Context& ctx, FileHandle& h, uint64_t fh, const char* buf, size_t n) {
  // Headers this large are valid but not worth their parse (a JSON tree many times the
  // header's size): such files get sequential readahead only.
  constexpr uint64_t kMaxParsedHeader = 16 << 20;
  uint64_t size = 0;
  int64_t mtime = 0;
  {
    std::lock_guard lk(h.mu);
    if (h.sniffed || h.layout) return h.layout != nullptr;
    h.sniffed = true;
    size = h.size;
    mtime = h.mtime_ns;
  }
  auto hl = safetensors_header_len(std::string_view(buf, n), size, kMaxParsedHeader);
  if (!hl) return false;
  {
    std::lock_guard lk(layouts_mu_);
    auto it = layouts_.find(h.ino);
    if (it != layouts_.end() && it->second.size == size && it->second.mtime_ns == mtime) {
      return it->second.layout != nullptr;
    }
  }
  std::string header(*hl, '\0');
  const size_t have = std::min<uint64_t>(*hl, n - 8);
  std::memcpy(header.data(), buf + 8, have);
  for (size_t got = have; got < header.size();) {
    auto r = read(ctx, h.ino, fh, 8 + got, header.data() + got, header.size() - got);
    if (!r.ok() || *r == 0) return false;  // the file changed or failed: no layout
    got += *r;
  }
  LayoutEntry e{size, mtime, nullptr};
  bool parsed = false;
  auto layout = parse_safetensors_header(header, size);
  if (layout.ok()) {
    stats_.safetensors_parsed++;
    parsed = true;
    e.layout = std::make_shared<const TensorLayout>(std::move(layout).value());
  } else {
    LOG_DEBUG("vfs: inode {} is not a safetensors file: {}", h.ino, layout.status().ToString());
  }
  {
    std::lock_guard lk(layouts_mu_);
    // A volume of many model files keeps the newest layouts only.
    constexpr size_t kMaxLayouts = 4096;
    if (layouts_.size() >= kMaxLayouts) layouts_.clear();
    layouts_[h.ino] = std::move(e);
  }
  layouts_version_++;
  return parsed;
}

int Vfs::part_count(uint64_t bytes) const {
  // Parts of at least this size: below it a GET's first-byte latency outweighs its
  // transfer, and splitting only adds requests.
  constexpr uint64_t kMinPart = 512 << 10;
  if (!parts_) return 1;
  return static_cast<int>(std::clamp<uint64_t>(bytes / kMinPart, 1, opts_.block_get_parts));
}

Result<std::vector<std::string>> Vfs::get_ranges(
    const std::string& key, const std::vector<std::pair<uint64_t, int64_t>>& ranges) {
  std::vector<Result<std::string>> got(ranges.size(), Status(Code::kIO, "not fetched"));
  auto fetch = [&](size_t i) { got[i] = store_->get(key, ranges[i].first, ranges[i].second); };
  if (ranges.size() > 1) {
    TaskGroup group(*parts_);
    for (size_t i = 1; i < ranges.size(); i++) group.run([&fetch, i] { fetch(i); });
    fetch(0);
  } else if (!ranges.empty()) {
    fetch(0);
  }
  stats_.object_gets += ranges.size();
  if (ranges.size() > 1) {
    stats_.parted_fetches++;
    stats_.part_gets += ranges.size();
  }
  std::vector<std::string> out;
  out.reserve(ranges.size());
  for (auto& r : got) {
    if (!r.ok()) return r.status();
    stats_.object_get_bytes += r->size();
    out.push_back(std::move(r).value());
  }
  return out;
}

Result<object::SplitObject> Vfs::get_parts(const std::string& key, uint32_t len, int parts) {
  // Block data split into parts of whole sub-blocks; the first GET also takes the header
  // and table, the last runs to the object's end (a block written without a table is
  // shorter by its table).
  const uint64_t table_end = object::block_table_end(len);
  const uint64_t per = part_len(len, parts);
  const uint64_t n = (len + per - 1) / per;
  std::vector<std::pair<uint64_t, int64_t>> ranges;
  for (uint64_t i = 0; i < n; i++) {
    const uint64_t from = i == 0 ? 0 : table_end + i * per;
    const uint64_t to = table_end + (i + 1) * per;
    ranges.emplace_back(from, i == n - 1 ? -1 : static_cast<int64_t>(to - from));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> got, get_ranges(key, ranges));
  object::SplitObject obj;
  std::string& first = got[0];
  // A first part too short to hold a table: the object (damaged) goes whole into head,
  // where decoding rejects it.
  const bool short_first = first.size() < table_end;
  if (short_first) {
    obj.head = std::move(first);
  } else {
    obj.head = first.substr(0, table_end);
    obj.body.reserve(len);
    obj.body.append(first, table_end);
  }
  for (size_t i = 1; i < got.size(); i++) (short_first ? obj.head : obj.body) += got[i];
  return obj;
}

Result<std::string> Vfs::fetch_block(const std::string& key, uint32_t len, int parts,
                                     cache::LoadSum* sum) {
  // part_count is 1 on volumes whose blocks are not all plain (no parts_ pool).
  parts = std::min(parts, part_count(len));
  // A block that fails verification may have been damaged in transfer (a truncated
  // body): it is fetched again, whole, before the read fails.
  constexpr int kAttempts = 3;
  for (int attempt = 1;; attempt++) {
    auto stored = [&]() -> Result<object::SplitObject> {
      if (parts > 1 && attempt == 1) return get_parts(key, len, parts);
      stats_.object_gets++;
      // Split after the header and sub-block table: the rest is kept as the block, uncopied.
      auto r = store_->get_split(key, object::block_table_end(len));
      if (r.ok()) stats_.object_get_bytes += r->head.size() + r->body.size();
      return r;
    }();
    if (!stored.ok()) {
      stats_.object_errors++;
      LOG_WARN("vfs: get {}: {}", key, stored.status().ToString());
      return Status(Code::kIO, "reading " + key + ": " + stored.status().message());
    }
    uint64_t checked = 0;
    auto raw = object::decode_block_split(stored->head, std::move(stored->body), key,
                                          opts_.cipher.get(), &checked);
    if (raw.ok() && raw->size() == len) {
      if (sum != nullptr) *sum = checked;
      return raw;
    }
    stats_.object_errors++;
    Status err =
        raw.ok() ? Status(Code::kCorruption,
                          "block " + key + " has the wrong length (" + std::to_string(raw->size()) +
                              " bytes, its key says " + std::to_string(len) + ")")
                 : raw.status();
    if (attempt == kAttempts) {
      LOG_ERROR("vfs: block {} failed verification {} times: {}", key, kAttempts, err.ToString());
      return err;
    }
    LOG_WARN("vfs: block {} failed verification, fetching it again: {}", key, err.ToString());
  }
}

}  // namespace sluice::vfs
