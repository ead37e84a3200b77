// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr explain: the gst-launch-1.0 equivalent of a pipeline TOML.
#include <cstdio>
#include <string>

#include "cxr/error.hpp"
#include "cxr_cli.hpp"
#include "cxr_common.hpp"
#include "cxr_pipeline.hpp"

const char* cxr_help_explain =
    "print the gst-launch-1.0 command a pipeline TOML stands for\n"
    "usage: cxr explain FILE.toml [--set NAME=VALUE ...] [--launch-string] [--no-check]\n"
    "  Prints one line, a shell command that runs the same pipeline as `cxr run FILE.toml`\n"
    "  (values quoted for the launch syntax, words quoted for a POSIX shell).\n"
    "options:\n"
    "  -s, --set NAME=VALUE   set a variable used as ${NAME} in the file\n"
    "  --launch-string        print the gst_parse_launch() description instead (no shell quoting)\n"
    "  --no-check             do not check factories and properties against the registry\n"
    "Exit status: 0 printed, 2 usage or configuration error.";

int cxr_cmd_explain(int argc, char** argv) {
  cxrtool::PipelineArgs args;
  bool launch_string = false, no_check = false;
  CLI::App app;
  cxrtool::configure(app);
  cxrtool::add_pipeline_options(app, args);
  app.add_flag("--launch-string", launch_string);
  app.add_flag("--no-check", no_check);
  try {
    if (const auto status = cxrtool::parse(app, argc, argv, "explain", cxr_help_explain)) return *status;
    cxrtool::reject_unknown(app);
    if (args.file.empty()) {
      std::fprintf(stderr, "usage: cxr explain FILE.toml [--set NAME=VALUE ...]   (cxr explain --help)\n");
      return cxrtool::kExitUsage;
    }
    const cxr::config::Pipeline p = cxr::config::load_pipeline(args.file, args.set);
    if (!no_check) {
      cxrtool::init_gstreamer(nullptr, nullptr);
      cxrtool::check_pipeline(p);
    }
    std::printf("%s\n", (launch_string ? cxr::config::to_launch_string(p) : cxr::config::to_shell_command(p)).c_str());
    return cxrtool::kExitOk;
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr explain: %s\n", e.what());
    return cxrtool::kExitUsage;
  }
}
