// load_safetensors: loads safetensors shards the way inference servers do, for the
// model-loading benchmark (bench/model_bench.sh), and checks their headers. Not part of
// Sluice.
//
//   load_safetensors MODE [--touch page|copy] [--fraction F] [--seed S] PATH...
//
// PATH is a .safetensors file or a directory (its *.safetensors files, sorted). Each file
// is opened and mmap()ed (read-only, shared) and its header parsed; then tensors are read
// through the mapping:
//   order    every tensor, shard by shard in header (offset) order
//   shuffle  every tensor, all shards' tensors in one random order
//   lazy     a random --fraction (default 0.1) of the tensors, in random order
//   check    no timing: validates each header (length in range, JSON object, known dtypes,
//            shape x dtype size == data_offsets span, offsets contiguous from 0 to the end
//            of the file without gaps or overlap); exits 1 on the first problem
// --touch page (default) reads one byte per 4 KiB page (what faulting weights in costs);
// --touch copy memcpy()s each tensor into a 64 MiB staging buffer (a GPU upload's read).
//
// Prints one JSON line: mode, files, tensors, bytes_touched (tensor bytes read), seconds
// (open to last byte, headers included), gb_per_s (10^9 bytes/s) and a checksum.
// LOAD_TRACE=FILE also writes a line per tensor with its timing (see below).
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& msg) {
  fprintf(stderr, "load_safetensors: %s\n", msg.c_str());
  exit(1);
}

struct TensorRef {
  size_t file;
  uint64_t begin, end;  // absolute offsets in the file
};

struct Shard {
  std::string path;
  const unsigned char* base = nullptr;
  uint64_t size = 0;
  std::vector<TensorRef> tensors;  // header order sorted by offset
};

uint64_t dtype_size(const std::string& d) {
  static const std::map<std::string, uint64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},    {"U32", 4},     {"F32", 4},
      {"I64", 8},  {"U64", 8}, {"F64", 8}};
  auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

// Parses (and, with strict, fully validates) the header of the mapped shard.
void parse(Shard& s, size_t index, bool strict) {
  auto bad = [&](const std::string& why) { die(s.path + ": " + why); };
  if (s.size < 8) bad("shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int b = 7; b >= 0; b--) n = (n << 8) | s.base[b];
  if (n > s.size - 8) bad("header length " + std::to_string(n) + " past the end of the file");
  const uint64_t data = 8 + n, data_len = s.size - data;
  nlohmann::json hdr = nlohmann::json::parse(s.base + 8, s.base + data, nullptr, false);
  if (!hdr.is_object()) bad("header is not a JSON object");
  for (auto& [name, t] : hdr.items()) {
    if (name == "__metadata__") {
      if (strict && !t.is_object()) bad("__metadata__ is not an object");
      continue;
    }
    if (!t.is_object() || !t.contains("data_offsets") || !t["data_offsets"].is_array() ||
        t["data_offsets"].size() != 2) {
      bad(name + ": no data_offsets [begin, end]");
    }
    const uint64_t b = t["data_offsets"][0].get<uint64_t>(), e = t["data_offsets"][1].get<uint64_t>();
    if (b > e || e > data_len) bad(name + ": data_offsets out of range");
    if (strict) {
      const uint64_t ds = t.contains("dtype") && t["dtype"].is_string() ? dtype_size(t["dtype"]) : 0;
      if (ds == 0) bad(name + ": unknown or missing dtype");
      if (!t.contains("shape") || !t["shape"].is_array()) bad(name + ": no shape");
      uint64_t elems = 1;
      for (auto& d : t["shape"]) {
        if (!d.is_number_unsigned()) bad(name + ": shape has a non-integer");
        elems *= d.get<uint64_t>();
      }
      if (elems * ds != e - b) bad(name + ": shape x dtype size != data_offsets span");
    }
    s.tensors.push_back({index, data + b, data + e});
  }
  std::sort(s.tensors.begin(), s.tensors.end(),
            [](const TensorRef& x, const TensorRef& y) { return x.begin < y.begin; });
  if (strict) {
    uint64_t at = data;
    for (const TensorRef& t : s.tensors) {
      if (t.begin != at) bad("gap or overlap at data offset " + std::to_string(at - data));
      at = t.end;
    }
    if (at != s.size) bad("data ends before the end of the file");
  }
}

std::vector<std::string> expand(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const std::string& p : paths) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) die("stat " + p + ": " + strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
      out.push_back(p);
      continue;
    }
    DIR* d = ::opendir(p.c_str());
    if (d == nullptr) die("opendir " + p + ": " + strerror(errno));
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) out.push_back(p + "/" + n);
  }
  if (out.empty()) die("no .safetensors files");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode, touch = "page";
  double fraction = 0.1;
  uint64_t seed = 42;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--touch") {
      touch = val();
    } else if (a == "--fraction") {
      fraction = std::atof(val().c_str());
    } else if (a == "--seed") {
      seed = std::strtoull(val().c_str(), nullptr, 10);
    } else if (a == "-h" || a == "--help") {
      printf("usage: load_safetensors order|shuffle|lazy|check [--touch page|copy] "
             "[--fraction F] [--seed S] PATH...\n");
      return 0;
    } else if (mode.empty()) {
      mode = a;
    } else {
      paths.push_back(a);
    }
  }
  if (mode != "order" && mode != "shuffle" && mode != "lazy" && mode != "check") {
    die("MODE must be order, shuffle, lazy or check");
  }
  if (touch != "page" && touch != "copy") die("--touch must be page or copy");
  if (paths.empty()) die("no PATH given");

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Shard> shards;
  for (const std::string& p : expand(paths)) {
    Shard s;
    s.path = p;
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + p + ": " + strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0) die("fstat " + p + ": " + strerror(errno));
    s.size = static_cast<uint64_t>(st.st_size);
    if (s.size > 0) {
      void* m = ::mmap(nullptr, s.size, PROT_READ, MAP_SHARED, fd, 0);
      if (m == MAP_FAILED) die("mmap " + p + ": " + strerror(errno));
      s.base = static_cast<const unsigned char*>(m);
    }
    ::close(fd);
    parse(s, shards.size(), mode == "check");
    shards.push_back(std::move(s));
  }

  std::vector<TensorRef> todo;
  for (const Shard& s : shards) todo.insert(todo.end(), s.tensors.begin(), s.tensors.end());
  const size_t all = todo.size();
  if (mode == "check") {
    uint64_t bytes = 0;
    for (const TensorRef& t : todo) bytes += t.end - t.begin;
    printf("{\"mode\":\"check\",\"ok\":true,\"files\":%zu,\"tensors\":%zu,\"tensor_bytes\":%llu}\n",
           shards.size(), all, static_cast<unsigned long long>(bytes));
    return 0;
  }
  std::mt19937_64 rng(seed);
  if (mode != "order") std::shuffle(todo.begin(), todo.end(), rng);
  if (mode == "lazy") {
    todo.resize(std::max<size_t>(1, static_cast<size_t>(static_cast<double>(all) * fraction)));
  }

  uint64_t bytes = 0, sum = 0;
  std::vector<unsigned char> staging(touch == "copy" ? (64u << 20) : 0);
  // LOAD_TRACE=FILE (with --touch page): one line per tensor, to see where a load waits:
  // shard index, offset, bytes, start (us since the open), us until its first page was
  // in, us for the rest of it.
  FILE* trace = getenv("LOAD_TRACE") != nullptr ? fopen(getenv("LOAD_TRACE"), "w") : nullptr;
  if (getenv("LOAD_TRACE") != nullptr && trace == nullptr) {
    die(std::string("LOAD_TRACE ") + getenv("LOAD_TRACE") + ": " + strerror(errno));
  }
  using Clock = std::chrono::steady_clock;
  auto us = [](Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); };
  for (const TensorRef& t : todo) {
    const unsigned char* p = shards[t.file].base;
    if (touch == "page") {
      const auto start = Clock::now();
      if (trace != nullptr) {
        volatile unsigned char first = p[t.begin];  // the fault into the tensor
        (void)first;
      }
      const auto first_in = Clock::now();
      for (uint64_t o = t.begin; o < t.end; o = (o | 4095) + 1) sum += p[o];
      if (trace != nullptr) {
        fprintf(trace, "%zu %llu %llu %.0f %.0f %.0f\n", t.file,
                static_cast<unsigned long long>(t.begin),
                static_cast<unsigned long long>(t.end - t.begin), us(start - t0),
                us(first_in - start), us(Clock::now() - first_in));
      }
    } else {
      for (uint64_t o = t.begin; o < t.end;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(t.end - o, staging.size()));
        memcpy(staging.data(), p + o, n);
        sum += staging[n - 1];
        o += n;
      }
    }
    bytes += t.end - t.begin;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (trace != nullptr) fclose(trace);
  for (const Shard& s : shards) {
    if (s.base != nullptr) ::munmap(const_cast<unsigned char*>(s.base), s.size);
  }
  printf("{\"mode\":\"%s\",\"touch\":\"%s\",\"files\":%zu,\"tensors\":%zu,\"bytes_touched\":%llu,"
         "\"seconds\":%.3f,\"gb_per_s\":%.3f,\"checksum\":%llu}\n",
         mode.c_str(), touch.c_str(), shards.size(), todo.size(),
         static_cast<unsigned long long>(bytes), secs, secs > 0 ? static_cast<double>(bytes) / secs / 1e9 : 0.0,
         static_cast<unsigned long long>(sum));
  return 0;
}
