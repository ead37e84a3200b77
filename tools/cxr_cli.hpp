// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// Option parsing of the cxr subcommands (CLI11): one CLI::App per subcommand. The help a
// subcommand prints is its own text (cxr_help_<command>), not CLI11's generated one.
#include <CLI/CLI.hpp>

#include <optional>

namespace cxrtool {

struct PipelineArgs;

/// Sets up app for a cxr subcommand: an option given twice keeps its last value (a list option
/// must say TakeAll), and arguments it does not know are left for reject_unknown() to name.
void configure(CLI::App& app);

/// A list option (--set, --only): one value per occurrence, every occurrence kept in order.
CLI::Option* repeatable(CLI::Option* option);

/// Parses argc/argv (argv[0] the command name). Returns nothing when the command goes on, else
/// its exit status: 0 after printing "cxr NAME: HELP" on stdout for -h / --help, 2 after
/// printing "cxr NAME: MESSAGE" on stderr for a malformed command line. Exceptions thrown by
/// option callbacks (cxr::InvalidArgument) pass through.
std::optional<int> parse(CLI::App& app, int argc, char** argv, const char* name, const char* help);

/// Throws cxr::InvalidArgument "unknown option 'X'" or "unexpected argument 'X'" for the first
/// argument app did not take.
void reject_unknown(const CLI::App& app);

/// FILE.toml, -s/--set NAME=VALUE (repeatable; a later one wins) and --progress /
/// --no-progress (-q, --quiet; default: whether stderr is a terminal) into args. A malformed
/// --set throws cxr::InvalidArgument from parse().
void add_pipeline_options(CLI::App& app, PipelineArgs& args);

}  // namespace cxrtool
