// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// Pipeline TOML meets GStreamer: registry checks with file:line, building, running with a
// summary. Shared by cxr run, launch, explain and sweep.
#include <gst/gst.h>

#include <string>
#include <vector>

#include "cxr/config/pipeline.hpp"

namespace cxrtool {

/// Exit statuses of the pipeline commands.
enum ExitStatus { kExitOk = 0, kExitPipelineError = 1, kExitUsage = 2 };

/// Checks every factory, property and value against the registry (gst_init first). Throws
/// cxr::ConfigError "file:line: what" listing similar factories, the element's properties, or
/// the expected type / enum nicks.
void check_pipeline(const cxr::config::Pipeline& pipeline);

/// check_pipeline, then the pipeline built from its launch string (so `cxr run` runs exactly
/// what `cxr explain` prints). Throws cxr::ConfigError.
GstElement* build_pipeline(const cxr::config::Pipeline& pipeline);

/// A gst-launch description as a pipeline; throws cxr::ConfigError with GStreamer's message.
GstElement* parse_launch(const std::string& description);

/// The files and folders the pipeline's sinks write (their location / image-dir).
std::vector<std::string> pipeline_outputs(GstElement* pipeline);

/// Runs to EOS with a progress bar (when `progress`), prints the summary line
/// "<command>: ok|failed: N scans, E errors, S s, R scans/s; output: ..." and returns the exit
/// status. Takes the pipeline.
int run_with_summary(GstElement* pipeline, const std::string& command, bool progress);

/// Options common to the commands that read a pipeline file: FILE.toml, --set k=v, --progress
/// (see add_pipeline_options in cxr_cli.hpp).
struct PipelineArgs {
  std::string file;
  cxr::config::Variables set;
  bool progress = false;  ///< whether stderr is a terminal unless --progress / --no-progress
};

}  // namespace cxrtool
