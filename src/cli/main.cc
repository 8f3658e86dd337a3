// sluice: the command-line entry point. Parses the subcommand, runs it and reports a
// failure as one line "sluice: <message>" on stderr with exit code 1.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.h"

namespace {

// CLI11 messages may span lines; the user gets one.
std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// The help hint names the subcommand the user was typing, if any.
std::string help_hint(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands()) return "sluice " + sub->get_name() + " --help";
  return "sluice --help";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sluice;
  CLI::App app(
      "Sluice: a POSIX file system for AI inference. File data lives in an object\n"
      "store (a local directory or S3), metadata in a transactional key-value engine\n"
      "(SQLite by default). Format a volume once, then mount it anywhere that reaches\n"
      "both.\n",
      "sluice");
  app.set_version_flag("--version", "sluice " SLUICE_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Examples:\n"
      "  sluice format sqlite3:///var/lib/sluice/models.db models --storage file:///data/objects\n"
      "  sluice mount sqlite3:///var/lib/sluice/models.db /mnt/models\n"
      "  sluice info /mnt/models/llama/model-00001.safetensors\n"
      "  sluice umount /mnt/models\n"
      "\n"
      "Run 'sluice COMMAND --help' for the options of a command.");

  std::vector<cli::Command> commands = {cli::add_format(app), cli::add_mount(app),
                                        cli::add_umount(app), cli::add_status(app),
                                        cli::add_info(app),   cli::add_fsck(app),
                                        cli::add_dump(app),   cli::add_load(app),
                                        cli::add_objbench(app), cli::add_warmup(app),
                                        cli::add_stats(app)};
  // CLI11 would report a mistyped command as a missing one.
  auto known = [&](const char* name) {
    for (const cli::Command& c : commands) {
      if (c.app->get_name() == name) return true;
    }
    return false;
  };
  if (argc > 1 && argv[1][0] != '-' && !known(argv[1])) {
    fprintf(stderr, "sluice: unknown command '%s' (see 'sluice --help')\n", argv[1]);
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fprintf(stderr, "sluice: %s (see '%s')\n", one_line(e.what()).c_str(),
            help_hint(app).c_str());
    return 1;
  }
  for (const cli::Command& c : commands) {
    if (!c.app->parsed()) continue;
    Status st = c.run();
    if (st.ok()) return 0;
    fprintf(stderr, "sluice: %s\n", one_line(st.message()).c_str());
    return 1;
  }
  return 1;  // unreachable: require_subcommand(1)
}
