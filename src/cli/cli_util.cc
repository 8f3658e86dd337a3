// cli: helpers shared by the subcommands — sizes, times, URLs, the mount table.
#include <fmt/format.h>
#include <pwd.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "cli/cli.h"

namespace sluice::cli {

namespace {

constexpr size_t kHelpWidth = 80;

// Greedy word wrap of each paragraph (blank-line separated) to `width` columns.
std::string wrap(const std::string& text, size_t width) {
  std::string out, line;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find("\n\n", start);
    std::string para = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::istringstream words(para);
    line.clear();
    for (std::string w; words >> w;) {
      if (!line.empty() && line.size() + 1 + w.size() > width) {
        out += line + "\n";
        line.clear();
      }
      line += (line.empty() ? "" : " ") + w;
    }
    out += line;
    if (end == std::string::npos) break;
    out += "\n\n";
    start = end + 2;
  }
  return out;
}

// Lists subcommands by their one-line summary and wraps option descriptions to fit
// beside the option column.
class HelpFormatter : public CLI::Formatter {
 public:
  std::map<std::string, std::string> summaries;

  std::string make_subcommand(const CLI::App* sub) const override {
    auto it = summaries.find(sub->get_name());
    std::stringstream out;
    CLI::detail::format_help(out, sub->get_display_name(true),
                             it == summaries.end() ? sub->get_description() : it->second,
                             get_column_width());
    return out.str();
  }
  std::string make_option_desc(const CLI::Option* opt) const override {
    return wrap(opt->get_description(), kHelpWidth - get_column_width());
  }
};

}  // namespace

CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& summary,
                      const std::string& description, const std::string& examples) {
  auto f = std::dynamic_pointer_cast<HelpFormatter>(app.get_formatter());
  if (!f) {
    f = std::make_shared<HelpFormatter>();
    app.formatter(f);
  }
  f->summaries[name] = summary;
  CLI::App* sub = app.add_subcommand(name, wrap(description, kHelpWidth) + "\n");
  sub->footer("Examples:\n" + examples);
  return sub;
}

Result<uint64_t> parse_size(const std::string& text, const std::string& what) {
  auto bad = [&] {
    return Status(Code::kInvalid, "invalid size '" + text + "' for " + what +
                                      " (expected a number with an optional K, M, G or T "
                                      "suffix, e.g. 4M)");
  };
  size_t i = 0;
  while (i < text.size() && (isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) i++;
  if (i == 0) return bad();
  double number;
  try {
    size_t used = 0;
    number = std::stod(text.substr(0, i), &used);
    if (used != i) return bad();
  } catch (const std::exception&) {
    return bad();
  }
  std::string unit = text.substr(i);
  for (char& c : unit) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();  // "MB", "MIB"
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();  // "MI"
  static const std::string kUnits = "BKMGTP";
  size_t power = 0;
  if (!unit.empty()) {
    if (unit.size() != 1 || kUnits.find(unit[0]) == std::string::npos) return bad();
    power = kUnits.find(unit[0]);
  }
  double bytes = number * std::pow(1024.0, static_cast<double>(power));
  if (bytes >= 18446744073709551615.0) return bad();
  if (bytes != std::floor(bytes)) {
    return Status(Code::kInvalid, "invalid size '" + text + "' for " + what +
                                      ": not a whole number of bytes");
  }
  return static_cast<uint64_t>(bytes);
}

std::string format_size(uint64_t bytes) {
  static const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 6) {
    v /= 1024;
    unit++;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  if (v == std::floor(v)) return fmt::format("{:.0f} {}", v, kNames[unit]);
  return fmt::format("{:.1f} {}", v, kNames[unit]);
}

std::string format_time(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string absolute_url(const std::string& url) {
  size_t p = url.find("://");
  if (p == std::string::npos) return url;
  std::string scheme = url.substr(0, p);
  std::string body = url.substr(p + 3);
  if ((scheme != "sqlite3" && scheme != "file") || body.empty() || body[0] == '/') return url;
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd) == nullptr) return url;
  std::string dir = cwd;
  if (body.rfind("./", 0) == 0) body.erase(0, 2);
  return scheme + "://" + (dir == "/" ? "" : dir) + "/" + body;
}

std::string redact_url(const std::string& url) {
  std::string out = url;
  // Secrets in query options (s3:// URLs): "secret_key=..." -> "secret_key=***".
  for (const char* opt : {"secret_key=", "session_token=", "password="}) {
    for (size_t p = out.find(opt); p != std::string::npos; p = out.find(opt, p + 1)) {
      if (p == 0 || (out[p - 1] != '?' && out[p - 1] != '&')) continue;
      size_t v = p + strlen(opt);
      size_t end = out.find('&', v);
      out.replace(v, end == std::string::npos ? std::string::npos : end - v, "***");
    }
  }
  size_t p = out.find("://");
  if (p == std::string::npos) return out;
  size_t start = p + 3;
  size_t at = out.find('@', start);
  size_t slash = out.find('/', start);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) return out;
  size_t colon = out.find(':', start);
  if (colon == std::string::npos || colon > at) return out;
  return out.substr(0, colon) + out.substr(at);
}

std::string home_dir() {
  if (const char* h = getenv("HOME"); h != nullptr && *h != '\0') return h;
  if (struct passwd* pw = getpwuid(getuid()); pw != nullptr) return pw->pw_dir;
  return "/tmp";
}

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    bool octal = s[i] == '\\' && i + 3 < s.size() &&
                 s.find_first_not_of("01234567", i + 1) >= i + 4;
    if (octal) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

Result<std::vector<MountEntry>> read_mounts() {
  std::ifstream f("/proc/self/mountinfo");
  if (!f) return errno_error(errno, "cannot read /proc/self/mountinfo");
  std::vector<MountEntry> out;
  std::string line;
  while (std::getline(f, line)) {
    // id parent major:minor root mount_point options [optional...] - fstype source super
    std::istringstream in(line);
    std::vector<std::string> w;
    std::string word;
    while (in >> word) w.push_back(word);
    size_t dash = 6;
    while (dash < w.size() && w[dash] != "-") dash++;
    if (w.size() < 5 || dash + 2 >= w.size()) continue;
    unsigned maj = 0, min = 0;
    if (sscanf(w[2].c_str(), "%u:%u", &maj, &min) != 2) continue;
    MountEntry e;
    e.dev = makedev(maj, min);
    e.mount_point = unescape_octal(w[4]);
    e.fstype = w[dash + 1];
    e.source = unescape_octal(w[dash + 2]);
    out.push_back(std::move(e));
  }
  return out;
}

std::optional<MountEntry> find_mount_at(const std::string& path) {
  auto mounts = read_mounts();
  if (!mounts.ok()) return std::nullopt;
  std::optional<MountEntry> found;
  for (const MountEntry& e : *mounts) {
    if (e.mount_point == path) found = e;
  }
  return found;
}

std::optional<MountEntry> find_mount_of(dev_t dev) {
  auto mounts = read_mounts();
  if (!mounts.ok()) return std::nullopt;
  std::optional<MountEntry> found;
  for (const MountEntry& e : *mounts) {
    if (e.dev == dev) found = e;
  }
  return found;
}

Status errno_error(int err, const std::string& what) {
  return Status::FromErrno(err, what + ": " + std::strerror(err));
}

}  // namespace sluice::cli
