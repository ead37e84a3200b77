// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr launch: a gst-launch-1.0 description with the gst-cxr plugin found, a progress bar and the
// same summary as cxr run.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr_cli.hpp"
#include "cxr_common.hpp"
#include "cxr_pipeline.hpp"

const char* cxr_help_launch =
    "run a gst-launch-1.0 pipeline description with progress and summary\n"
    "usage: cxr launch [--progress | --no-progress] \"ELEMENT [PROP=VALUE ...] ! ELEMENT ...\"\n"
    "       cxr launch [options] ELEMENT PROP=VALUE ! ELEMENT ...   (words as gst-launch-1.0 takes them)\n"
    "  The gst-cxr plugin is on the plugin path. One argument is taken as the whole description;\n"
    "  several are joined as gst-launch-1.0 joins its arguments.\n"
    "Prints one summary line on stdout: 'cxr launch: ok: N scans, E errors, S s, R scans/s; output: ...'.\n"
    "Exit status: 0 finished, 1 the pipeline failed while running, 2 usage error or a description\n"
    "that does not build.";

int cxr_cmd_launch(int argc, char** argv) {
  bool progress = isatty(STDERR_FILENO) != 0;
  CLI::App app;
  cxrtool::configure(app);
  // Options come before the description; from its first word on, everything is the description.
  app.prefix_command();
  app.add_flag("--progress,!--no-progress,!-q", progress);
  if (const auto status = cxrtool::parse(app, argc, argv, "launch", cxr_help_launch)) return *status;
  std::vector<std::string> words = app.remaining();
  if (!words.empty() && words.front() == "--") words.erase(words.begin());
  if (words.empty()) {
    std::fprintf(stderr, "usage: cxr launch \"DESCRIPTION\"   (cxr launch --help)\n");
    return cxrtool::kExitUsage;
  }
  cxrtool::init_gstreamer(nullptr, nullptr);
  GstElement* pipeline = nullptr;
  if (words.size() == 1) {
    try {
      pipeline = cxrtool::parse_launch(words.front());
    } catch (const cxr::Error& e) {
      std::fprintf(stderr, "cxr launch: %s\n", e.what());
      return cxrtool::kExitUsage;
    }
  } else {
    // gst_parse_launchv escapes each word as gst-launch-1.0 does.
    std::vector<const gchar*> argv_words;
    for (const std::string& w : words) argv_words.push_back(w.c_str());
    argv_words.push_back(nullptr);
    GError* err = nullptr;
    pipeline = gst_parse_launchv_full(argv_words.data(), nullptr, GST_PARSE_FLAG_FATAL_ERRORS, &err);
    if (err) {
      std::fprintf(stderr, "cxr launch: cannot build the pipeline: %s\n", err->message);
      g_error_free(err);
      if (pipeline) gst_object_unref(pipeline);
      return cxrtool::kExitUsage;
    }
    if (!GST_IS_PIPELINE(pipeline)) {
      GstElement* p = gst_pipeline_new(nullptr);
      gst_bin_add(GST_BIN(p), pipeline);
      pipeline = p;
    }
  }
  return cxrtool::run_with_summary(pipeline, "cxr launch", progress);
}
