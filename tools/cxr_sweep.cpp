// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr sweep: one pipeline over several values of a variable or element property, each value in
// its own run directory, then the aggregate table and the report.
#include "cxr_sweep.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/report/html.hpp"
#include "cxr/report/runs.hpp"
#include "cxr_cli.hpp"
#include "cxr_common.hpp"
#include "cxr_pipeline.hpp"

namespace fs = std::filesystem;

const char* cxr_help_sweep =
    "run one pipeline over several values of a variable or element property, then report\n"
    "usage: cxr sweep FILE.toml --param NAME=V1,V2,... --output DIR [--set NAME=VALUE ...] [options]\n"
    "  Each value runs into its own run directory DIR/NAME=VALUE/: the pipeline's output variable\n"
    "  (default 'output'; cxrtrain's output-dir should be \"${output}\") is set to it, and NAME is\n"
    "  set as a variable when the pipeline uses ${NAME} or declares it, else as the property NAME\n"
    "  of the one element that sets it (FACTORY.NAME or ELEMENT-NAME.NAME to choose or add one).\n"
    "  At the end: DIR/runs.csv (one row per run with a metrics.jsonl or summary.json) and the\n"
    "  report in DIR/report/ (see cxr report).\n"
    "options:\n"
    "  --param NAME=V1,V2,...  the values to sweep (required)\n"
    "  -o, --output DIR        folder of the run directories (required)\n"
    "  -s, --set NAME=VALUE    a variable for every run\n"
    "  --output-variable NAME  the variable that names the run directory (default: output)\n"
    "  --force                 re-run values whose run directory already has a summary.json\n"
    "  --no-report             no report at the end\n"
    "  --progress, --no-progress\n"
    "Exit status: 0 every run finished, 1 a run failed (the others still run), 2 usage or configuration error.";

namespace cxrtool {

namespace {

bool is_run_dir(const fs::path& d) { return fs::exists(d / "metrics.jsonl") || fs::exists(d / "summary.json"); }

}  // namespace

int run_batch(const std::vector<cxr::report::StudyRun>& runs, const BatchOptions& options) {
  const fs::path out(options.output);
  // Every pipeline loads and checks before the first run starts: a typo in run 12 should not
  // surface after eleven hours of training.
  std::vector<cxr::config::Pipeline> pipelines;
  try {
    init_gstreamer(nullptr, nullptr);
    for (const auto& r : runs) {
      cxr::config::Variables vars = r.meta.variables;
      vars[options.output_variable] = (out / r.subdir).string();
      const bool as_variable = !r.meta.param.empty() && cxr::report::pipeline_has_variable(r.meta.pipeline, r.meta.param);
      if (as_variable) vars[r.meta.param] = r.meta.value;
      cxr::config::Pipeline p = cxr::config::load_pipeline(r.meta.pipeline, vars);
      if (!r.meta.param.empty() && !as_variable) cxr::report::set_element_property(p, r.meta.param, r.meta.value);
      check_pipeline(p);
      pipelines.push_back(std::move(p));
    }
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "%s: %s\n", options.command.c_str(), e.what());
    return kExitUsage;
  }

  int failed = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    const fs::path dir = out / r.subdir;
    std::fprintf(stderr, "%s: [%zu/%zu] %s\n", options.command.c_str(), i + 1, runs.size(), r.subdir.c_str());
    if (!options.force && fs::exists(dir / "summary.json")) {
      std::printf("%s: %s: skipped (summary.json exists; --force re-runs it)\n", options.command.c_str(), r.subdir.c_str());
      continue;
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    cxr::report::RunMeta meta = r.meta;
    meta.variables[options.output_variable] = dir.string();
    {
      std::ofstream f(dir / "run.json", std::ios::trunc);
      f << cxr::report::run_json(meta);
      if (!f) {
        std::fprintf(stderr, "%s: cannot write %s\n", options.command.c_str(), (dir / "run.json").c_str());
        ++failed;
        continue;
      }
    }
    GstElement* pipeline = nullptr;
    try {
      pipeline = build_pipeline(pipelines[i]);
    } catch (const cxr::Error& e) {
      std::fprintf(stderr, "%s: %s: %s\n", options.command.c_str(), r.subdir.c_str(), e.what());
      ++failed;
      continue;
    }
    if (run_with_summary(pipeline, options.command + ": " + r.subdir, options.progress) != kExitOk) ++failed;
  }

  // The aggregate over whatever run directories exist, failed runs' partial metrics included.
  std::vector<cxr::report::RunInfo> infos;
  for (const auto& r : runs) {
    const fs::path dir = out / r.subdir;
    if (!is_run_dir(dir)) continue;
    try {
      cxr::report::RunInfo info = cxr::report::load_run(dir.string());
      // The study file's labels win over an older run.json.
      if (!r.meta.model.empty()) info.meta.model = r.meta.model;
      if (!r.meta.dataset.empty()) info.meta.dataset = r.meta.dataset;
      info.meta.name = r.subdir;
      infos.push_back(std::move(info));
    } catch (const cxr::Error& e) {
      std::fprintf(stderr, "%s: %s\n", options.command.c_str(), e.what());
      ++failed;
    }
  }
  try {
    fs::create_directories(out);
    std::ofstream csv(out / "runs.csv", std::ios::trunc);
    csv << cxr::report::runs_csv(infos);
    if (options.report && !infos.empty()) {
      cxr::report::ReportOptions ro;
      ro.output = (out / "report").string();
      if (!options.title.empty()) ro.title = options.title;
      const auto res = cxr::report::write_report(infos, ro);
      for (const auto& w : res.warnings) std::fprintf(stderr, "%s: warning: %s\n", options.command.c_str(), w.c_str());
      std::printf("%s: report: %s (%zu figures)\n", options.command.c_str(), res.index.c_str(), res.figures.size());
    }
    std::printf("%s: %zu runs, %d failed; table: %s\n", options.command.c_str(), runs.size(), failed,
                (out / "runs.csv").c_str());
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "%s: %s\n", options.command.c_str(), e.what());
    return kExitPipelineError;
  }
  return failed ? kExitPipelineError : kExitOk;
}

}  // namespace cxrtool

int cxr_cmd_sweep(int argc, char** argv) {
  cxrtool::BatchOptions options;
  options.command = "cxr sweep";
  cxrtool::PipelineArgs args;
  std::string param;
  bool no_report = false;
  std::vector<cxr::report::StudyRun> runs;
  CLI::App app;
  cxrtool::configure(app);
  cxrtool::add_pipeline_options(app, args);
  app.add_option("--param", param)->type_name("NAME=V1,V2,...");
  app.add_option("-o,--output", options.output)->type_name("DIR");
  app.add_option("--output-variable", options.output_variable)->type_name("NAME");
  app.add_flag("--force", options.force);
  app.add_flag("--no-report", no_report);
  try {
    if (const auto status = cxrtool::parse(app, argc, argv, "sweep", cxr_help_sweep)) return *status;
    cxrtool::reject_unknown(app);
    options.report = !no_report;
    if (args.file.empty() || param.empty() || options.output.empty()) {
      std::fprintf(stderr, "usage: cxr sweep FILE.toml --param NAME=V1,V2,... --output DIR   (cxr sweep --help)\n");
      return cxrtool::kExitUsage;
    }
    const auto [name, values] = cxr::report::parse_param(param);
    for (const auto& v : values) {
      cxr::report::StudyRun r;
      r.meta.name = cxr::report::sweep_dir_name(name, v);
      r.meta.pipeline = args.file;
      r.meta.param = name;
      r.meta.value = v;
      r.meta.variables = args.set;
      r.subdir = r.meta.name;
      runs.push_back(std::move(r));
    }
    options.progress = args.progress;
    options.title = "cxr sweep: " + fs::path(args.file).filename().string() + " over " + name;
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr sweep: %s\n", e.what());
    return cxrtool::kExitUsage;
  }
  return cxrtool::run_batch(runs, options);
}
