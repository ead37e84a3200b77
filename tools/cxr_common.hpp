// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// Shared by the cxr subcommands: GStreamer set-up with the plugin found, running a pipeline.
#include <gst/gst.h>

#include <cstdint>
#include <string>

namespace cxrtool {

/// gst_init with the gst-cxr plugin on the plugin path (the build tree's when cxr runs from
/// it, else the installed one).
void init_gstreamer(int* argc, char*** argv);

struct RunStats {
  bool ok = false;
  std::string error;        ///< first error message, if any
  double seconds = 0;       ///< PLAYING to EOS
  uint64_t rows = 0;        ///< rows cxrresultsink wrote (its cxr-summary)
  uint64_t buffers = 0;     ///< buffers that reached a sink
  uint64_t errors = 0;      ///< error rows
  uint64_t warnings = 0;
};

/// Runs a pipeline to EOS; when progress is true, prints a progress line on stderr from the
/// cxr-dataset total and the rows written.
RunStats run_pipeline(GstElement* pipeline, bool progress);

}  // namespace cxrtool
