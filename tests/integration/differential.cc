// The randomized differential tester (see differential.h).
#include "differential.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <vector>

namespace sluice::testing {

namespace {

// The paths the sequence picks from: few names, so operations collide often.
const std::vector<std::string> kPaths = {"a", "b", "c", "d1", "d1/a", "d1/b", "d1/d2",
                                         "d1/d2/a", "d2", "d2/a", "d2/c"};

struct Outcome {
  long ret = 0;
  int err = 0;
  std::string data;  // bytes read, for read operations
  bool operator==(const Outcome&) const = default;
};

// A deterministic payload for (seed, offset) so both sides write the same bytes.
std::string payload(uint64_t seed, size_t len) {
  std::string s(len, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

Outcome sys(long r) { return Outcome{r < 0 ? -1 : r, r < 0 ? errno : 0, {}}; }

struct Op {
  enum Kind { kCreate, kWrite, kTruncate, kRename, kLink, kUnlink, kMkdir, kRmdir, kRead, kFsync };
  Kind kind;
  std::string a, b;
  uint64_t off = 0, len = 0, seed = 0;
  bool sync = false;

  std::string describe() const {
    static const char* names[] = {"create", "write", "truncate", "rename", "link",
                                  "unlink", "mkdir", "rmdir",    "read",   "fsync"};
    std::ostringstream o;
    o << names[kind] << "(" << a;
    if (!b.empty()) o << ", " << b;
    if (kind == kWrite || kind == kRead || kind == kTruncate) o << ", off=" << off << ", len=" << len;
    o << ")";
    return o.str();
  }

  Outcome apply(const std::string& root) const {
    std::string pa = root + "/" + a, pb = root + "/" + b;
    switch (kind) {
      case kCreate: {
        int fd = ::open(pa.c_str(), O_CREAT | O_WRONLY | (sync ? O_EXCL : 0), 0644);
        if (fd < 0) return sys(-1);
        ::close(fd);
        return {};
      }
      case kWrite: {
        int fd = ::open(pa.c_str(), O_WRONLY);
        if (fd < 0) return sys(-1);
        std::string p = payload(seed, len);
        long r = ::pwrite(fd, p.data(), p.size(), static_cast<off_t>(off));
        Outcome o = sys(r);
        if (r >= 0 && sync && ::fsync(fd) != 0) o = sys(-1);
        if (::close(fd) != 0 && o.err == 0) o = sys(-1);
        return o;
      }
      case kTruncate: return sys(::truncate(pa.c_str(), static_cast<off_t>(len)));
      case kRename: return sys(::rename(pa.c_str(), pb.c_str()));
      case kLink: return sys(::link(pa.c_str(), pb.c_str()));
      case kUnlink: return sys(::unlink(pa.c_str()));
      case kMkdir: return sys(::mkdir(pa.c_str(), 0755));
      case kRmdir: return sys(::rmdir(pa.c_str()));
      case kRead: {
        int fd = ::open(pa.c_str(), O_RDONLY);
        if (fd < 0) return sys(-1);
        std::string buf(len, '\0');
        long r = ::pread(fd, buf.data(), len, static_cast<off_t>(off));
        Outcome o = sys(r);
        if (r >= 0) o.data = buf.substr(0, static_cast<size_t>(r));
        ::close(fd);
        return o;
      }
      case kFsync: {
        int fd = ::open(pa.c_str(), O_RDONLY);
        if (fd < 0) return sys(-1);
        Outcome o = sys(::fsync(fd));
        ::close(fd);
        return o;
      }
    }
    return {};
  }
};

Op random_op(std::mt19937_64& rng, const DiffOptions& opts) {
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  Op op;
  op.a = kPaths[pick(kPaths.size())];
  op.b = kPaths[pick(kPaths.size())];
  op.seed = rng();
  op.sync = rng() % 4 == 0;
  static const Op::Kind weighted[] = {Op::kCreate, Op::kCreate, Op::kWrite,  Op::kWrite,
                                      Op::kWrite,  Op::kWrite,  Op::kTruncate, Op::kRename,
                                      Op::kRename, Op::kLink,   Op::kUnlink, Op::kMkdir,
                                      Op::kMkdir,  Op::kRmdir,  Op::kRead,   Op::kRead,
                                      Op::kFsync};
  op.kind = weighted[pick(sizeof weighted / sizeof weighted[0])];
  if (op.kind != Op::kRename && op.kind != Op::kLink) op.b.clear();
  // Mostly small writes near the start; sometimes large ones or far offsets.
  uint64_t max = opts.max_file_size;
  switch (pick(4)) {
    case 0: op.off = rng() % 8192; op.len = 1 + rng() % 8192; break;
    case 1: op.off = rng() % max; op.len = 1 + rng() % 65536; break;
    case 2: op.off = rng() % (max / 2); op.len = 1 + rng() % (max / 2); break;
    default: op.off = rng() % 200000; op.len = 1 + rng() % 300000; break;
  }
  if (op.kind == Op::kTruncate) op.len = rng() % max;
  return op;
}

// A canonical description of a tree: one line per entry with type, size, nlink and a
// content hash for files; entries sorted.
bool describe_tree(const std::string& root, const std::string& rel, std::map<std::string, std::string>& out,
                   std::string& err) {
  std::string path = rel.empty() ? root : root + "/" + rel;
  DIR* d = ::opendir(path.c_str());
  if (!d) {
    err = "opendir " + path + ": " + std::strerror(errno);
    return false;
  }
  std::vector<std::string> names;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  for (auto& n : names) {
    std::string r = rel.empty() ? n : rel + "/" + n;
    std::string p = root + "/" + r;
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) {
      err = "lstat " + p + ": " + std::strerror(errno);
      return false;
    }
    std::ostringstream o;
    if (S_ISDIR(st.st_mode)) {
      o << "dir nlink=" << st.st_nlink;
      out[r] = o.str();
      if (!describe_tree(root, r, out, err)) return false;
      continue;
    }
    o << "file size=" << st.st_size << " nlink=" << st.st_nlink << " mode=" << std::oct
      << (st.st_mode & 07777) << std::dec;
    int fd = ::open(p.c_str(), O_RDONLY);
    if (fd < 0) {
      err = "open " + p + ": " + std::strerror(errno);
      return false;
    }
    uint64_t h = 1469598103934665603ull, total = 0;
    char buf[1 << 16];
    for (;;) {
      ssize_t r = ::read(fd, buf, sizeof buf);
      if (r < 0) {
        err = "read " + p + ": " + std::strerror(errno);
        ::close(fd);
        return false;
      }
      if (r == 0) break;
      for (ssize_t i = 0; i < r; i++) h = (h ^ static_cast<uint8_t>(buf[i])) * 1099511628211ull;
      total += static_cast<uint64_t>(r);
    }
    ::close(fd);
    o << " read=" << total << " hash=" << std::hex << h;
    out[r] = o.str();
  }
  return true;
}

std::string diff_trees(const std::map<std::string, std::string>& ref,
                       const std::map<std::string, std::string>& sub) {
  std::ostringstream o;
  for (auto& [k, v] : ref) {
    auto it = sub.find(k);
    if (it == sub.end()) o << " missing " << k << " (" << v << ");";
    else if (it->second != v) o << " " << k << ": reference [" << v << "] subject [" << it->second << "];";
  }
  for (auto& [k, v] : sub) {
    if (!ref.count(k)) o << " extra " << k << " (" << v << ");";
  }
  return o.str();
}

}  // namespace

DiffResult run_differential(const std::string& reference_root, const std::string& subject_root,
                            const DiffOptions& opts) {
  DiffResult res;
  std::mt19937_64 rng(opts.seed);
  for (int step = 0; step < opts.steps; step++) {
    Op op = random_op(rng, opts);
    Outcome r = op.apply(reference_root);
    Outcome s = op.apply(subject_root);
    res.steps_run = step + 1;
    std::string where = "seed " + std::to_string(opts.seed) + " step " + std::to_string(step) +
                        " " + op.describe() + ": ";
    if (!(r == s)) {
      res.ok = false;
      res.failure = where + "reference returned " + std::to_string(r.ret) + " errno " +
                    std::to_string(r.err) + " (" + std::strerror(r.err) + "), subject returned " +
                    std::to_string(s.ret) + " errno " + std::to_string(s.err) + " (" +
                    std::strerror(s.err) + ")" + (r.data != s.data ? ", read data differs" : "");
      return res;
    }
    std::map<std::string, std::string> rt, st;
    std::string err;
    if (!describe_tree(reference_root, "", rt, err) || !describe_tree(subject_root, "", st, err)) {
      res.ok = false;
      res.failure = where + err;
      return res;
    }
    if (rt != st) {
      res.ok = false;
      res.failure = where + "trees differ:" + diff_trees(rt, st);
      return res;
    }
  }
  return res;
}

DiffOptions diff_options_from_env(DiffOptions d) {
  if (const char* s = std::getenv("SLUICE_DIFF_SEED")) d.seed = std::strtoull(s, nullptr, 10);
  if (const char* s = std::getenv("SLUICE_DIFF_STEPS")) d.steps = std::atoi(s);
  return d;
}

}  // namespace sluice::testing
