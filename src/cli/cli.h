// cli: the `sluice` command. Each subcommand lives in its own cmd_<name>.cc and
// registers itself with add_<name>(); main.cc parses, runs the chosen one and turns a
// failed Status into one line "sluice: <message>" on stderr and exit code 1.
// cli_util.cc holds what several commands share: size parsing, URL clean-up and the
// mount table.
#pragma once

#include <sys/types.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

namespace sluice::cli {

// A subcommand: its parser and what runs when it is the one chosen.
struct Command {
  CLI::App* app = nullptr;
  std::function<Status()> run;
};

// Adds subcommand `name` to app. `summary` is its line in 'sluice --help';
// `description` (paragraphs separated by blank lines) and `examples` (one command a
// line) frame its own --help. Help text is wrapped to 80 columns.
CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& summary,
                      const std::string& description, const std::string& examples);

Command add_format(CLI::App& app);
Command add_mount(CLI::App& app);
Command add_umount(CLI::App& app);
Command add_status(CLI::App& app);
Command add_info(CLI::App& app);
Command add_fsck(CLI::App& app);
Command add_objbench(CLI::App& app);
Command add_stats(CLI::App& app);
Command add_warmup(CLI::App& app);
Command add_dump(CLI::App& app);
Command add_load(CLI::App& app);

// ---- sizes ----
// "4096", "4K", "4M", "1.5G", "64KiB", "2TB": units are binary (K = 1024). `what` names
// the option in the error message.
Result<uint64_t> parse_size(const std::string& text, const std::string& what);
// 4194304 -> "4 MiB", 1536 -> "1.5 KiB", 0 -> "0 B".
std::string format_size(uint64_t bytes);
// Nanoseconds since the epoch -> "2024-05-01 12:00:00 UTC".
std::string format_time(int64_t ns);

// ---- URLs ----
// Local paths in sqlite3:// and file:// URLs made absolute (the mount process changes
// directory); other URLs unchanged.
std::string absolute_url(const std::string& url);
// The URL without its password ("user:secret@host" -> "user@host"), fit for logs and
// /proc/mounts.
std::string redact_url(const std::string& url);

// ---- paths ----
std::string home_dir();
// The mount source of Sluice mounts is "sluice:" + META_URL; their type "fuse.sluice".
constexpr const char* kSourcePrefix = "sluice:";
constexpr const char* kFsType = "fuse.sluice";

struct MountEntry {
  dev_t dev = 0;
  std::string mount_point;  // unescaped
  std::string fstype;
  std::string source;
  bool is_sluice() const { return fstype == kFsType && source.rfind(kSourcePrefix, 0) == 0; }
  std::string meta_url() const { return source.substr(std::char_traits<char>::length(kSourcePrefix)); }
};
// Parses /proc/self/mountinfo.
Result<std::vector<MountEntry>> read_mounts();
// The mount whose mount point is exactly `path` (absolute, resolved); the last such
// mount if several are stacked.
std::optional<MountEntry> find_mount_at(const std::string& path);
// The mount of a device number (from stat's st_dev).
std::optional<MountEntry> find_mount_of(dev_t dev);

// An errno as a Status: "<what>: <strerror>".
Status errno_error(int err, const std::string& what);

}  // namespace sluice::cli
