// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr run: a pipeline TOML, checked against the registry, run to the end with a summary.
#include <cstdio>
#include <string>

#include "cxr/error.hpp"
#include "cxr_common.hpp"
#include "cxr_pipeline.hpp"

const char* cxr_help_run =
    "run a pipeline TOML (checked first; progress bar and summary)\n"
    "usage: cxr run FILE.toml [--set NAME=VALUE ...] [--progress | --no-progress]\n"
    "  Every element, property and value is checked against the GStreamer registry before the\n"
    "  pipeline starts; errors name FILE:LINE and the valid choices. The pipeline that runs is\n"
    "  exactly the one `cxr explain FILE.toml` prints.\n"
    "options:\n"
    "  -s, --set NAME=VALUE   set a variable used as ${NAME} in the file (overrides [variables])\n"
    "  --progress             progress bar on stderr (default: when stderr is a terminal)\n"
    "  --no-progress, -q      no progress bar\n"
    "Prints one summary line on stdout: 'cxr run: ok: N scans, E errors, S s, R scans/s; output: ...'.\n"
    "Exit status: 0 finished, 1 the pipeline failed while running, 2 usage or configuration error.";

int cxr_cmd_run(int argc, char** argv) {
  cxrtool::PipelineArgs args;
  GstElement* pipeline = nullptr;
  try {
    args = cxrtool::parse_pipeline_args(argc, argv);
    if (!args.rest.empty()) throw cxr::InvalidArgument("unknown option '" + args.rest[0] + "'");
    if (args.file.empty()) {
      std::fprintf(stderr, "usage: cxr run FILE.toml [--set NAME=VALUE ...]   (cxr run --help)\n");
      return cxrtool::kExitUsage;
    }
    const cxr::config::Pipeline p = cxr::config::load_pipeline(args.file, args.set);
    cxrtool::init_gstreamer(nullptr, nullptr);
    pipeline = cxrtool::build_pipeline(p);
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr run: %s\n", e.what());
    return cxrtool::kExitUsage;
  }
  return cxrtool::run_with_summary(pipeline, "cxr run", args.progress);
}
