// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr_cli.hpp"

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr_pipeline.hpp"

namespace cxrtool {

void configure(CLI::App& app) {
  // As the hand-written parsers did: the last --output counts, and an unknown argument gets a
  // message that names it (reject_unknown) instead of CLI11's list.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.allow_extras();
}

CLI::Option* repeatable(CLI::Option* option) {
  // Without allow_extra_args(false), `--set a=1 FILE.toml` would take FILE.toml as a second value.
  return option->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

std::optional<int> parse(CLI::App& app, int argc, char** argv, const char* name, const char* help) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("cxr %s: %s\n", name, help);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "cxr %s: %s\n", name, e.what());
    return kExitUsage;
  }
  return std::nullopt;
}

void reject_unknown(const CLI::App& app) {
  const std::vector<std::string> rest = app.remaining();
  if (rest.empty()) return;
  const std::string& a = rest.front();
  if (!a.empty() && a[0] == '-') throw cxr::InvalidArgument("unknown option '" + a + "'");
  throw cxr::InvalidArgument("unexpected argument '" + a + "'");
}

void add_pipeline_options(CLI::App& app, PipelineArgs& args) {
  app.add_option("file", args.file)->type_name("FILE.toml");
  // In command-line order, so that a later --set of a name wins.
  auto set = [&args](const std::vector<std::string>& assignments) {
    for (const std::string& a : assignments) {
      const auto kv = cxr::config::parse_assignment(a);
      args.set[kv.first] = kv.second;
    }
  };
  repeatable(app.add_option_function<std::vector<std::string>>("-s,--set", set))->type_name("NAME=VALUE");
  args.progress = isatty(STDERR_FILENO) != 0;
  app.add_flag("--progress,!--no-progress,!-q,!--quiet", args.progress);
}

}  // namespace cxrtool
