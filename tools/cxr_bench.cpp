// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr bench: times a pipeline (from start to EOS) over several runs.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cxr_cli.hpp"
#include "cxr_common.hpp"

const char* cxr_help_bench =
    "time a gst-launch pipeline from start to EOS\n"
    "usage: cxr bench [--repeat N] [--warmup N] \"<pipeline description>\"\n"
    "Prints one JSON line: runs, buffers (reaching sinks per run), best/median seconds and\n"
    "buffers per second of the best run. Pin it with taskset for single-core figures.";

int cxr_cmd_bench(int argc, char** argv) {
  int repeat = 3, warmup = 1;
  CLI::App app;
  cxrtool::configure(app);
  app.add_option("--repeat", repeat)->type_name("N");
  app.add_option("--warmup", warmup)->type_name("N");
  if (const auto status = cxrtool::parse(app, argc, argv, "bench", cxr_help_bench)) return *status;
  repeat = std::max(1, repeat);
  warmup = std::max(0, warmup);
  // Every other argument is a word of the description, joined as gst-launch-1.0 joins them.
  std::string desc;
  for (const std::string& word : app.remaining()) desc += (desc.empty() ? "" : " ") + word;
  if (desc.empty()) {
    std::fprintf(stderr, "cxr bench: no pipeline given\n%s\n", cxr_help_bench);
    return 2;
  }
  cxrtool::init_gstreamer(nullptr, nullptr);
  std::vector<double> secs;
  uint64_t buffers = 0, warnings = 0;
  for (int r = 0; r < warmup + repeat; ++r) {
    GError* err = nullptr;
    GstElement* p = gst_parse_launch(desc.c_str(), &err);
    if (!p || err) {
      std::fprintf(stderr, "cxr bench: %s\n", err ? err->message : "cannot build the pipeline");
      if (err) g_error_free(err);
      if (p) gst_object_unref(p);
      return 1;
    }
    const cxrtool::RunStats st = cxrtool::run_pipeline(p, false);
    gst_object_unref(p);
    if (!st.ok) {
      std::fprintf(stderr, "cxr bench: %s\n", st.error.c_str());
      return 1;
    }
    if (r >= warmup) {
      secs.push_back(st.seconds);
      buffers = st.buffers;
      warnings = st.warnings;
    }
  }
  // A scan that failed (missing, corrupt) is a warning on the bus, not a frame: say so, or a
  // rate over fewer frames than inputs passes unnoticed.
  if (warnings)
    std::fprintf(stderr, "cxr bench: %llu warning(s) on the bus (scans that did not make it; `cxr launch` shows them)\n",
                 static_cast<unsigned long long>(warnings));
  std::sort(secs.begin(), secs.end());
  const double best = secs.front(), median = secs[secs.size() / 2];
  std::printf("{\"runs\":%zu,\"buffers\":%llu,\"warnings\":%llu,\"best_s\":%.4f,\"median_s\":%.4f,\"per_s\":%.2f}\n",
              secs.size(), static_cast<unsigned long long>(buffers), static_cast<unsigned long long>(warnings), best,
              median, best > 0 ? buffers / best : 0.0);
  return 0;
}
