// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// Running a list of pipeline runs, each into its own run directory, then their report. Shared
// by cxr sweep and cxr study.
#include <string>
#include <vector>

#include "cxr/report/study.hpp"

namespace cxrtool {

struct BatchOptions {
  std::string output;                      ///< folder of the run directories and the report
  std::string output_variable = "output";  ///< the pipelines' variable set to each run directory
  std::string title;                       ///< report title
  std::string command;                     ///< "cxr sweep" / "cxr study", for messages
  bool force = false;                      ///< re-run runs that have a summary.json
  bool report = true;                      ///< write OUTPUT/report at the end
  bool progress = false;
};

/// Runs `runs` in order (a run whose directory holds summary.json is skipped unless force),
/// writes OUTPUT/runs.csv and the report of the runs that left a run directory behind. Returns
/// the exit status: 0 when every run ran or was skipped, 1 when one failed (the others still
/// run), 2 on a configuration error found before any run started.
int run_batch(const std::vector<cxr::report::StudyRun>& runs, const BatchOptions& options);

}  // namespace cxrtool
