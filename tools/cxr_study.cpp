// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr study: the runs of a study TOML in order, each into its own run directory, then the
// aggregate table and the report.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/report/study.hpp"
#include "cxr_cli.hpp"
#include "cxr_pipeline.hpp"
#include "cxr_sweep.hpp"

namespace fs = std::filesystem;

const char* cxr_help_study =
    "run the pipelines of a study TOML in order, then the table and report\n"
    "usage: cxr study STUDY.toml [--output DIR] [--set NAME=VALUE ...] [--only NAME ...] [options]\n"
    "  A study lists [[run]] entries (a pipeline, its variables, a model and dataset label) and\n"
    "  [[sweep]] entries (a pipeline over several values of one parameter); see docs/study.md.\n"
    "  Each run writes into DIR/<name>/ (a sweep: DIR/<name>/<param>=<value>/) through the\n"
    "  pipelines' output variable. Runs whose directory holds a summary.json are skipped, so an\n"
    "  interrupted study continues where it stopped.\n"
    "options:\n"
    "  -o, --output DIR       folder of the run directories (default: the study's output)\n"
    "  -s, --set NAME=VALUE   a variable for every run (over the study's own)\n"
    "  --only NAME            run only this run or sweep (repeatable; the report covers them)\n"
    "  --list                 print the runs and their run directories, run nothing\n"
    "  --force                re-run runs that already have a summary.json\n"
    "  --no-report            no report at the end\n"
    "  --progress, --no-progress\n"
    "Writes DIR/runs.csv and DIR/report/ (index.html, study.csv, figures/).\n"
    "Exit status: 0 every run finished or was skipped, 1 a run failed, 2 usage or configuration error.";

int cxr_cmd_study(int argc, char** argv) {
  cxrtool::BatchOptions options;
  options.command = "cxr study";
  cxrtool::PipelineArgs args;
  std::vector<std::string> only;
  bool list = false, no_report = false;
  std::vector<cxr::report::StudyRun> runs;
  CLI::App app;
  cxrtool::configure(app);
  cxrtool::add_pipeline_options(app, args);
  app.add_option("-o,--output", options.output)->type_name("DIR");
  cxrtool::repeatable(app.add_option("--only", only))->type_name("NAME");
  app.add_flag("--list", list);
  app.add_flag("--force", options.force);
  app.add_flag("--no-report", no_report);
  try {
    if (const auto status = cxrtool::parse(app, argc, argv, "study", cxr_help_study)) return *status;
    cxrtool::reject_unknown(app);
    options.report = !no_report;
    if (args.file.empty()) {
      std::fprintf(stderr, "usage: cxr study STUDY.toml [--output DIR]   (cxr study --help)\n");
      return cxrtool::kExitUsage;
    }
    const cxr::report::Study study = cxr::report::load_study(args.file, args.set);
    if (options.output.empty()) options.output = study.output;
    if (options.output.empty()) throw cxr::InvalidArgument(args.file + ": no output folder: give --output DIR");
    options.output_variable = study.output_variable;
    options.progress = args.progress;
    options.title = study.description.empty() ? "cxr study: " + fs::path(args.file).filename().string() : study.description;
    for (const auto& r : study.runs) {
      const std::string top = fs::path(r.subdir).begin()->string();
      bool wanted = only.empty();
      for (const auto& o : only) wanted = wanted || o == top || o == r.subdir;
      if (wanted) runs.push_back(r);
    }
    for (const auto& o : only) {
      bool known = false;
      for (const auto& r : study.runs) known = known || o == fs::path(r.subdir).begin()->string() || o == r.subdir;
      if (!known) throw cxr::InvalidArgument("--only " + o + ": no such run in " + args.file);
    }
    if (list) {
      for (const auto& r : runs)
        std::printf("%s\t%s\t%s\t%s\n", r.subdir.c_str(), r.meta.dataset.c_str(), r.meta.model.c_str(),
                    (fs::path(options.output) / r.subdir).c_str());
      return cxrtool::kExitOk;
    }
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr study: %s\n", e.what());
    return cxrtool::kExitUsage;
  }
  return cxrtool::run_batch(runs, options);
}
