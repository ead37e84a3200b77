// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr run: a pipeline TOML, checked against the registry, run to the end with a summary.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr_cli.hpp"
#include "cxr_common.hpp"
#include "cxr_nproc.hpp"
#include "cxr_pipeline.hpp"

const char* cxr_help_run =
    "run a pipeline TOML (checked first; progress bar and summary)\n"
    "usage: cxr run FILE.toml [--set NAME=VALUE ...] [--progress | --no-progress] [--nproc N]\n"
    "  Every element, property and value is checked against the GStreamer registry before the\n"
    "  pipeline starts; errors name FILE:LINE and the valid choices. The pipeline that runs is\n"
    "  exactly the one `cxr explain FILE.toml` prints.\n"
    "options:\n"
    "  -s, --set NAME=VALUE   set a variable used as ${NAME} in the file (overrides [variables])\n"
    "  --progress             progress bar on stderr (default: when stderr is a terminal)\n"
    "  --no-progress, -q      no progress bar\n"
    "  --nproc N              N local ranks of a data-parallel training job (c10d/Gloo on 127.0.0.1, as\n"
    "                         torchrun --nproc-per-node N): each runs the pipeline with RANK, WORLD_SIZE,\n"
    "                         LOCAL_RANK, MASTER_ADDR, MASTER_PORT set; cxrscansrc shards the scans and\n"
    "                         cxrtrain averages gradients. Several hosts: run `cxr run FILE.toml` on each\n"
    "                         with those variables set (README). Fails when any rank fails.\n"
    "Prints one summary line on stdout: 'cxr run: ok: N scans, E errors, S s, R scans/s; output: ...'.\n"
    "Exit status: 0 finished, 1 the pipeline failed while running, 2 usage or configuration error.";

namespace {

int parse_nproc(const std::string& value) {
  char* end = nullptr;
  const long n = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end || n < 1 || n > 1024)
    throw cxr::InvalidArgument("--nproc: '" + value + "' is not a number of processes (1..1024)");
  return static_cast<int>(n);
}

}  // namespace

int cxr_cmd_run(int argc, char** argv) {
  cxrtool::PipelineArgs args;
  int nproc = 1;
  CLI::App app;
  cxrtool::configure(app);
  cxrtool::add_pipeline_options(app, args);
  app.add_option_function<std::string>("--nproc", [&nproc](const std::string& n) { nproc = parse_nproc(n); })
      ->type_name("N");
  GstElement* pipeline = nullptr;
  try {
    if (const auto status = cxrtool::parse(app, argc, argv, "run", cxr_help_run)) return *status;
    cxrtool::reject_unknown(app);
    if (args.file.empty()) {
      std::fprintf(stderr, "usage: cxr run FILE.toml [--set NAME=VALUE ...]   (cxr run --help)\n");
      return cxrtool::kExitUsage;
    }
    const cxr::config::Pipeline p = cxr::config::load_pipeline(args.file, args.set);
    cxrtool::init_gstreamer(nullptr, nullptr);
    // Checked once here, so that a configuration error is reported once, before any rank starts.
    pipeline = cxrtool::build_pipeline(p);
    if (nproc > 1) {
      gst_object_unref(pipeline);
      // Every rank runs `cxr run` on the same file and variables (run_ranks quiets all but rank 0).
      std::vector<std::string> rank_args = {"run", args.file, args.progress ? "--progress" : "--no-progress"};
      for (const auto& [name, value] : args.set) {
        rank_args.push_back("--set");
        rank_args.push_back(name + "=" + value);
      }
      std::vector<char*> rank_argv;
      for (std::string& a : rank_args) rank_argv.push_back(a.data());
      rank_argv.push_back(nullptr);
      return cxrtool::run_ranks(nproc, static_cast<int>(rank_args.size()), rank_argv.data());
    }
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr run: %s\n", e.what());
    return cxrtool::kExitUsage;
  }
  return cxrtool::run_with_summary(pipeline, "cxr run", args.progress);
}
