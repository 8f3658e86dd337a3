// sluice info: what Sluice stores for a path — the inode's attributes and, for files,
// each chunk's slices and the object keys of their blocks. The path's mount (found by
// device number in /proc/self/mountinfo) names the volume: source "sluice:META_URL".
// Reads only committed metadata: writes still buffered in a mount do not show.
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/encryption.h"
#include "kv/engine.h"
#include "meta/meta.h"
#include "object/layout.h"

namespace sluice::cli {

namespace {

using nlohmann::json;

struct InfoArgs {
  std::vector<std::string> paths;
  bool json = false;
};

const char* type_name(meta::FileType t) {
  switch (t) {
    case meta::FileType::kRegular: return "regular file";
    case meta::FileType::kDirectory: return "directory";
    case meta::FileType::kSymlink: return "symlink";
    case meta::FileType::kFifo: return "fifo";
    case meta::FileType::kBlockDev: return "block device";
    case meta::FileType::kCharDev: return "character device";
    case meta::FileType::kSocket: return "socket";
  }
  return "unknown";
}

// Everything `info` prints about one inode, built as JSON and printed as JSON or text.
Result<json> describe(meta::Meta& m, meta::Ino ino) {
  ASSIGN_OR_RETURN(meta::Attr attr, m.getattr(ino));
  json j = {{"inode", ino},        {"type", type_name(attr.type)}, {"size", attr.size},
            {"mode", fmt::format("{:04o}", attr.mode)},             {"nlink", attr.nlink},
            {"uid", attr.uid},     {"gid", attr.gid}};
  meta::Context root = meta::Context::root();
  if (attr.is_dir()) {
    ASSIGN_OR_RETURN(auto entries, m.readdir(root, ino, false));
    j["entries"] = entries.size();
  } else if (attr.type == meta::FileType::kSymlink) {
    ASSIGN_OR_RETURN(j["target"], m.readlink(root, ino));
  } else if (attr.is_file()) {
    const meta::Format& f = m.format();
    j["chunks"] = json::array();
    uint64_t nchunks = (attr.size + meta::kChunkSize - 1) / meta::kChunkSize;
    for (uint64_t c = 0; c < nchunks; c++) {
      ASSIGN_OR_RETURN(auto slices, m.read_chunk(ino, static_cast<uint32_t>(c)));
      json chunk = {{"index", c}, {"slices", json::array()}};
      for (const meta::Slice& s : slices) {
        json js = {{"pos", s.pos}, {"id", s.id}, {"size", s.size}, {"off", s.off},
                   {"len", s.len}, {"blocks", json::array()}};
        for (uint32_t b = 0; s.id != 0 && b < object::block_count(s.size, f.block_size); b++) {
          js["blocks"].push_back(object::block_key(
              f.name, s.id, b, object::block_len(s.size, f.block_size, b)));
        }
        chunk["slices"].push_back(js);
      }
      j["chunks"].push_back(chunk);
    }
  }
  return j;
}

void print_text(const json& j) {
  printf("%s\n", j["path"].get<std::string>().c_str());
  printf("  volume: %s\n", j["volume"].get<std::string>().c_str());
  printf("  encryption: %s\n", j["encryption"].get<std::string>().c_str());
  printf("  inode:  %llu\n", j["inode"].get<unsigned long long>());
  printf("  type:   %s\n", j["type"].get<std::string>().c_str());
  uint64_t size = j["size"].get<uint64_t>();
  printf("  size:   %llu (%s)\n", static_cast<unsigned long long>(size), format_size(size).c_str());
  printf("  mode:   %s\n", j["mode"].get<std::string>().c_str());
  printf("  nlink:  %u\n", j["nlink"].get<uint32_t>());
  printf("  owner:  %u:%u\n", j["uid"].get<uint32_t>(), j["gid"].get<uint32_t>());
  if (j.contains("entries")) printf("  entries: %zu\n", j["entries"].get<size_t>());
  if (j.contains("target")) printf("  target: %s\n", j["target"].get<std::string>().c_str());
  if (!j.contains("chunks")) return;
  printf("  chunks: %zu\n", j["chunks"].size());
  for (const json& c : j["chunks"]) {
    printf("  chunk %llu: %zu slice(s)\n", c["index"].get<unsigned long long>(),
           c["slices"].size());
    for (const json& s : c["slices"]) {
      printf("    slice id=%llu pos=%u size=%u off=%u len=%u\n", s["id"].get<unsigned long long>(),
             s["pos"].get<uint32_t>(), s["size"].get<uint32_t>(), s["off"].get<uint32_t>(),
             s["len"].get<uint32_t>());
      for (const json& b : s["blocks"]) printf("      block %s\n", b.get<std::string>().c_str());
    }
  }
}

Status run_info(const InfoArgs& a) {
  std::map<std::string, std::unique_ptr<meta::Meta>> volumes;  // by META_URL
  json all = json::array();
  for (const std::string& path : a.paths) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return errno_error(errno, "cannot stat " + path);
    auto mount = find_mount_of(st.st_dev);
    if (!mount || !mount->is_sluice()) {
      return Status(Code::kInvalid, path + " is not inside a Sluice mount");
    }
    std::string url = mount->meta_url();
    auto& m = volumes[url];
    if (!m) {
      ASSIGN_OR_RETURN(auto engine, kv::open_engine(url, false));
      ASSIGN_OR_RETURN(m, meta::Meta::open(engine));
    }
    auto j = describe(*m, st.st_ino);
    if (!j.ok()) return Status(j.status().code(), path + ": " + j.status().message());
    (*j)["path"] = path;
    (*j)["volume"] = m->format().name;
    (*j)["encryption"] = encryption_text(m->format());
    if (a.json) {
      all.push_back(*j);
    } else {
      print_text(*j);
    }
  }
  if (a.json) printf("%s\n", (a.paths.size() == 1 ? all[0] : all).dump(2).c_str());
  return Status::OK();
}

}  // namespace

Command add_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* sub = add_command(
      app, "info", "Show how Sluice stores a path",
      "For each PATH inside a mounted Sluice volume, print the volume's name and "
      "encryption, then the path's inode number, type, size, "
      "mode, link count and owner; for directories the number of entries, for symlinks "
      "the target, and for regular files every 64 MiB chunk with its slices (pos: offset "
      "in the chunk, id, size: stored bytes, off/len: the part of the slice in use) and "
      "the object keys of the slices' blocks. The volume is found from the mount table "
      "and its metadata is read directly, so data still buffered by a writer is not "
      "shown until the file is closed or synced.",
      "  sluice info /mnt/models/llama/model-00001.safetensors\n"
      "  sluice info --json /mnt/models/config.json /mnt/models/llama");
  sub->add_option("PATH", a->paths, "Files or directories inside a Sluice mount")->required();
  sub->add_flag("--json", a->json,
                "Print JSON (an object for one PATH, an array for several)");
  return {sub, [a] { return run_info(*a); }};
}

}  // namespace sluice::cli
