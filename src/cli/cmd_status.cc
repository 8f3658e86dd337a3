// sluice status: a volume's settings, usage and live sessions (the mounts using it).
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/encryption.h"
#include "common/clock.h"
#include "kv/engine.h"
#include "meta/meta.h"

namespace sluice::cli {

namespace {

struct StatusArgs {
  std::string meta_url;
  bool json = false;
};

std::string limit_text(uint64_t limit, const std::string& shown) {
  return limit == 0 ? "unlimited" : shown;
}

std::string age_text(int64_t ns) {
  int64_t s = (now_ns() - ns) / 1'000'000'000;
  if (s < 0) s = 0;
  if (s < 120) return fmt::format("{}s ago", s);
  if (s < 7200) return fmt::format("{}m ago", s / 60);
  return fmt::format("{}h ago", s / 3600);
}

void print_text(const std::string& url, const meta::Format& f, const meta::StatFs& fs,
                const std::vector<meta::SessionInfo>& sessions) {
  auto row = [](const char* k, const std::string& v) { printf("%-13s %s\n", k, v.c_str()); };
  row("volume", f.name);
  row("uuid", f.uuid);
  row("metadata", redact_url(url));
  row("storage", redact_url(f.storage));
  row("block size", format_size(f.block_size));
  row("compression", f.compression);
  row("encryption", encryption_text(f));
  row("capacity", limit_text(f.capacity, format_size(f.capacity)));
  row("inodes", limit_text(f.inodes, std::to_string(f.inodes)));
  row("trash days", std::to_string(f.trash_days));
  row("created", format_time(f.created_ns));
  row("used", fmt::format("{} in {} inodes", format_size(fs.used_bytes), fs.used_inodes));
  row("sessions", std::to_string(sessions.size()));
  if (sessions.empty()) return;
  printf("\n%-6s %-20s %-8s %-10s %-12s %s\n", "ID", "HOST", "PID", "VERSION", "HEARTBEAT",
         "MOUNTPOINT");
  for (const meta::SessionInfo& s : sessions) {
    printf("%-6llu %-20s %-8u %-10s %-12s %s\n", static_cast<unsigned long long>(s.id),
           s.hostname.c_str(), s.pid, s.version.c_str(), age_text(s.heartbeat_ns).c_str(),
           s.mountpoint.c_str());
  }
}

void print_json(const std::string& url, const meta::Format& f, const meta::StatFs& fs,
                const std::vector<meta::SessionInfo>& sessions) {
  nlohmann::json out;
  out["metadata"] = redact_url(url);
  out["settings"] = nlohmann::json::parse(f.to_json());
  out["settings"]["storage"] = redact_url(f.storage);
  out["usage"] = {{"used_bytes", fs.used_bytes}, {"used_inodes", fs.used_inodes}};
  out["sessions"] = nlohmann::json::array();
  for (const meta::SessionInfo& s : sessions) {
    nlohmann::json j = nlohmann::json::parse(s.to_json());
    j["heartbeat_age_s"] = (now_ns() - s.heartbeat_ns) / 1'000'000'000;
    out["sessions"].push_back(j);
  }
  printf("%s\n", out.dump(2).c_str());
}

Status run_status(const StatusArgs& a) {
  std::string url = absolute_url(a.meta_url);
  ASSIGN_OR_RETURN(auto engine, kv::open_engine(url, false));
  ASSIGN_OR_RETURN(auto m, meta::Meta::open(engine));
  ASSIGN_OR_RETURN(meta::StatFs fs, m->statfs(meta::Context::root()));
  ASSIGN_OR_RETURN(std::vector<meta::SessionInfo> sessions, m->list_sessions());
  if (a.json) {
    print_json(url, m->format(), fs, sessions);
  } else {
    print_text(url, m->format(), fs, sessions);
  }
  return Status::OK();
}

}  // namespace

Command add_status(CLI::App& app) {
  auto a = std::make_shared<StatusArgs>();
  CLI::App* sub = add_command(
      app, "status", "Show a volume's settings and sessions",
      "Show the settings of the volume at META_URL (name, uuid, storage, block size, "
      "compression, encryption, limits), its usage, and its live sessions: one per mount, with the "
      "host, process id, mountpoint and the age of its last heartbeat. Passwords in URLs "
      "are not shown.",
      "  sluice status sqlite3:///var/lib/sluice/models.db\n"
      "  sluice status --json sqlite3://models.db | jq .sessions");
  sub->add_option("META_URL", a->meta_url, "Metadata engine URL of a formatted volume")
      ->required();
  sub->add_flag("--json", a->json, "Print JSON instead of aligned text");
  return {sub, [a] { return run_status(*a); }};
}

}  // namespace sluice::cli
