// gen_safetensors: writes a synthetic transformer checkpoint in the safetensors format, for
// the model-loading benchmark (bench/model_bench.sh). Not part of Sluice.
//
//   gen_safetensors OUTDIR [--size-mib N=4096] [--shards K] [--seed S]
//
// The model is Llama-shaped: token embedding, per layer q/k/v/o projections, gate/up/down
// MLP and two norms, final norm and lm_head. Hidden size grows with N; the layer count is
// chosen so the total is close to N MiB. Weights are BF16, norms F32, the embedding F16.
// Tensors are cut into K shards in order (default: one per GiB, at least 4), written as
// model-0000i-of-0000K.safetensors plus model.safetensors.index.json (weight_map), as
// Hugging Face checkpoints are.
//
// Each file follows the safetensors specification: an 8-byte little-endian header length
// N, N bytes of JSON (padded with spaces to a multiple of 8) mapping each tensor name to
// {"dtype","shape","data_offsets":[begin,end]} plus "__metadata__", then the data; offsets
// are relative to the byte after the header, contiguous from 0, without gaps or overlap.
// Data is pseudo-random (xoshiro256**), so it neither compresses nor dedups.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

struct Tensor {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  uint64_t bytes() const {
    uint64_t n = dtype == "F32" ? 4 : 2;
    for (uint64_t d : shape) n *= d;
    return n;
  }
};

[[noreturn]] void die(const std::string& msg) {
  fprintf(stderr, "gen_safetensors: %s\n", msg.c_str());
  exit(1);
}

// The tensors of a Llama-like model of about `target` bytes.
std::vector<Tensor> make_model(uint64_t target) {
  const uint64_t mib = target >> 20;
  const uint64_t h = mib >= 16384 ? 4096 : mib >= 2048 ? 2048 : mib >= 256 ? 1024 : 256;
  const uint64_t inter = h * 8 / 3 / 256 * 256 + 256;
  const uint64_t vocab = 32000;
  const uint64_t kv = h / 4;  // grouped-query attention: 1/4 as many key/value heads
  auto layer = [&](uint64_t i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    return std::vector<Tensor>{{p + "input_layernorm.weight", "F32", {h}},
                               {p + "self_attn.q_proj.weight", "BF16", {h, h}},
                               {p + "self_attn.k_proj.weight", "BF16", {kv, h}},
                               {p + "self_attn.v_proj.weight", "BF16", {kv, h}},
                               {p + "self_attn.o_proj.weight", "BF16", {h, h}},
                               {p + "post_attention_layernorm.weight", "F32", {h}},
                               {p + "mlp.gate_proj.weight", "BF16", {inter, h}},
                               {p + "mlp.up_proj.weight", "BF16", {inter, h}},
                               {p + "mlp.down_proj.weight", "BF16", {h, inter}}};
  };
  uint64_t per_layer = 0;
  for (const Tensor& t : layer(0)) per_layer += t.bytes();
  const Tensor embed{"model.embed_tokens.weight", "F16", {vocab, h}};
  const Tensor head{"lm_head.weight", "BF16", {vocab, h}};
  const uint64_t fixed = embed.bytes() + head.bytes() + h * 4;
  uint64_t layers = target > fixed ? (target - fixed + per_layer / 2) / per_layer : 1;
  if (layers == 0) layers = 1;
  std::vector<Tensor> out{embed};
  for (uint64_t i = 0; i < layers; i++) {
    for (Tensor& t : layer(i)) out.push_back(std::move(t));
  }
  out.push_back({"model.norm.weight", "F32", {h}});
  out.push_back(head);
  return out;
}

// xoshiro256** (public domain, Blackman & Vigna): fast, good enough to defeat compression.
struct Rng {
  uint64_t s[4];
  explicit Rng(uint64_t seed) {
    for (uint64_t& x : s) {  // splitmix64 seeding
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      x = z ^ (z >> 31);
    }
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
  void fill(char* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t v = next();
      memcpy(p + i, &v, 8);
    }
    for (; i < n; i++) p[i] = static_cast<char>(next());
  }
};

void write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write " + path + ": " + strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

std::string shard_name(size_t i, size_t k) {
  char buf[64];
  snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, k);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  uint64_t size_mib = 4096, seed = 1;
  size_t shards = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--size-mib") {
      size_mib = std::strtoull(val().c_str(), nullptr, 10);
    } else if (a == "--shards") {
      shards = std::strtoull(val().c_str(), nullptr, 10);
    } else if (a == "--seed") {
      seed = std::strtoull(val().c_str(), nullptr, 10);
    } else if (a == "-h" || a == "--help") {
      printf("usage: gen_safetensors OUTDIR [--size-mib N=4096] [--shards K] [--seed S]\n");
      return 0;
    } else if (dir.empty() && a[0] != '-') {
      dir = a;
    } else {
      die("unknown argument " + a);
    }
  }
  if (dir.empty()) die("usage: gen_safetensors OUTDIR [--size-mib N] [--shards K] [--seed S]");
  if (size_mib == 0) die("--size-mib must be positive");
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) die("mkdir " + dir + ": " + strerror(errno));
  std::vector<Tensor> tensors = make_model(size_mib << 20);
  uint64_t total = 0;
  for (const Tensor& t : tensors) total += t.bytes();
  if (shards == 0) shards = std::max<size_t>(4, static_cast<size_t>((size_mib + 1023) / 1024));
  shards = std::min(shards, tensors.size());

  // Cut in order near multiples of total/shards, leaving no shard empty.
  std::vector<std::vector<const Tensor*>> parts(shards);
  uint64_t acc = 0;
  size_t s = 0;
  for (size_t i = 0; i < tensors.size(); i++) {
    const size_t tensors_left = tensors.size() - i, shards_left = shards - 1 - s;
    if (!parts[s].empty() && s + 1 < shards &&
        (acc >= (s + 1) * total / shards || tensors_left <= shards_left)) {
      s++;
    }
    parts[s].push_back(&tensors[i]);
    acc += tensors[i].bytes();
  }

  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", {}}};
  Rng rng(seed);
  std::vector<char> buf(8 << 20);
  for (size_t s = 0; s < shards; s++) {
    const std::string name = shard_name(s, shards), path = dir + "/" + name;
    nlohmann::ordered_json hdr = {{"__metadata__", {{"format", "pt"}}}};
    uint64_t off = 0;
    for (const Tensor* t : parts[s]) {
      hdr[t->name] = {{"dtype", t->dtype}, {"shape", t->shape}, {"data_offsets", {off, off + t->bytes()}}};
      off += t->bytes();
      index["weight_map"][t->name] = name;
    }
    std::string json = hdr.dump();
    json.append((8 - json.size() % 8) % 8, ' ');
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("open " + path + ": " + strerror(errno));
    char len[8];
    for (int b = 0; b < 8; b++) len[b] = static_cast<char>((uint64_t{json.size()} >> (8 * b)) & 0xff);
    write_all(fd, len, 8, path);
    write_all(fd, json.data(), json.size(), path);
    for (uint64_t left = off; left > 0;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
      rng.fill(buf.data(), n);
      write_all(fd, buf.data(), n, path);
      left -= n;
    }
    if (::close(fd) != 0) die("close " + path + ": " + strerror(errno));
  }
  const std::string ipath = dir + "/model.safetensors.index.json";
  FILE* f = fopen(ipath.c_str(), "w");
  if (f == nullptr) die("open " + ipath + ": " + strerror(errno));
  std::string idx = index.dump(2) + "\n";
  fwrite(idx.data(), 1, idx.size(), f);
  if (fclose(f) != 0) die("close " + ipath + ": " + strerror(errno));
  printf("{\"dir\":\"%s\",\"shards\":%zu,\"tensors\":%zu,\"bytes\":%llu}\n", dir.c_str(), shards,
         tensors.size(), static_cast<unsigned long long>(total));
  return 0;
}
