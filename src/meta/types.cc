// Value types of the metadata layer: mode bits, caller groups, JSON forms.
#include "meta/types.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace sluice::meta {

uint32_t type_bits(FileType t) {
  switch (t) {
    case FileType::kRegular: return S_IFREG;
    case FileType::kDirectory: return S_IFDIR;
    case FileType::kSymlink: return S_IFLNK;
    case FileType::kFifo: return S_IFIFO;
    case FileType::kBlockDev: return S_IFBLK;
    case FileType::kCharDev: return S_IFCHR;
    case FileType::kSocket: return S_IFSOCK;
  }
  return 0;
}

std::optional<FileType> type_from_mode(uint32_t st_mode) {
  switch (st_mode & S_IFMT) {
    case S_IFREG: return FileType::kRegular;
    case S_IFDIR: return FileType::kDirectory;
    case S_IFLNK: return FileType::kSymlink;
    case S_IFIFO: return FileType::kFifo;
    case S_IFBLK: return FileType::kBlockDev;
    case S_IFCHR: return FileType::kCharDev;
    case S_IFSOCK: return FileType::kSocket;
    default: return std::nullopt;
  }
}

bool Context::in_group(uint32_t g) const {
  return g == gid || std::find(gids.begin(), gids.end(), g) != gids.end();
}

std::string Format::to_json() const {
  nlohmann::json j = {{"name", name},
                      {"uuid", uuid},
                      {"storage", storage},
                      {"block_size", block_size},
                      {"compression", compression},
                      {"capacity", capacity},
                      {"inodes", inodes},
                      {"trash_days", trash_days},
                      {"meta_version", meta_version},
                      {"created_ns", created_ns}};
  if (!encryption.empty()) {
    j["encryption"] = encryption;
    j["encryption_key"] = encryption_key;
    j["encryption_key_fingerprint"] = encryption_key_fingerprint;
  }
  return j.dump();
}

std::optional<Format> Format::from_json(const std::string& s) {
  try {
    auto j = nlohmann::json::parse(s);
    Format f;
    f.name = j.at("name").get<std::string>();
    f.uuid = j.at("uuid").get<std::string>();
    f.storage = j.at("storage").get<std::string>();
    f.block_size = j.at("block_size").get<uint32_t>();
    f.compression = j.value("compression", std::string("none"));
    f.encryption = j.value("encryption", std::string());
    f.encryption_key = j.value("encryption_key", std::string());
    f.encryption_key_fingerprint = j.value("encryption_key_fingerprint", std::string());
    f.capacity = j.value("capacity", uint64_t{0});
    f.inodes = j.value("inodes", uint64_t{0});
    f.trash_days = j.value("trash_days", uint32_t{1});
    f.meta_version = j.value("meta_version", uint32_t{1});
    f.created_ns = j.value("created_ns", int64_t{0});
    return f;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string SessionInfo::to_json() const {
  nlohmann::json j = {{"id", id},
                      {"hostname", hostname},
                      {"pid", pid},
                      {"mountpoint", mountpoint},
                      {"version", version},
                      {"started_ns", started_ns},
                      {"heartbeat_ns", heartbeat_ns}};
  return j.dump();
}

std::optional<SessionInfo> SessionInfo::from_json(const std::string& s) {
  try {
    auto j = nlohmann::json::parse(s);
    SessionInfo i;
    i.id = j.at("id").get<uint64_t>();
    i.hostname = j.value("hostname", std::string());
    i.pid = j.value("pid", uint32_t{0});
    i.mountpoint = j.value("mountpoint", std::string());
    i.version = j.value("version", std::string());
    i.started_ns = j.value("started_ns", int64_t{0});
    i.heartbeat_ns = j.value("heartbeat_ns", int64_t{0});
    return i;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace sluice::meta
