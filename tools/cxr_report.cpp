// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr report: run directories -> figures (gnuplot PNGs) and one HTML page.
#include <cstdio>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/report/html.hpp"
#include "cxr/report/runs.hpp"
#include "cxr_cli.hpp"

const char* cxr_help_report =
    "figures and an HTML page from training run directories\n"
    "usage: cxr report RUN_DIR... --output DIR [--title TEXT] [--gnuplot PROGRAM]\n"
    "  A run directory is what cxrtrain writes (metrics.jsonl, summary.json, model.toml), with\n"
    "  run.json from cxr sweep / cxr study (model and dataset labels, swept parameter), and,\n"
    "  when present, tsne.csv (cxr tsne output: x,y,label) and gradcam/*.png.\n"
    "  DIR gets index.html (relative links only), style.css, study.csv (test F1, seconds per\n"
    "  epoch and best epoch per dataset x model), runs.csv, figures/*.png with the gnuplot\n"
    "  scripts that drew them, and copies of the Grad-CAM images. Figures: train/val F1 and\n"
    "  loss per run, the test confusion matrix (multiclass) or per-class AUROC and F1\n"
    "  (multilabel), t-SNE scatter plots, and the learning-rate ablation (test F1 against the\n"
    "  learning rate, log axis) when the runs differ only by learning rate.\n"
    "options:\n"
    "  -o, --output DIR    folder to write (created)\n"
    "  --title TEXT        page title\n"
    "  --gnuplot PROGRAM   gnuplot to run (default: gnuplot; needs the pngcairo terminal)\n"
    "  --no-figures        tables and HTML only\n"
    "Exit status: 0 written, 1 a figure could not be made (the page says which), 2 usage or\n"
    "unreadable run directory.";

int cxr_cmd_report(int argc, char** argv) {
  cxr::report::ReportOptions options;
  std::vector<std::string> dirs;
  bool no_figures = false;
  CLI::App app;
  cxrtool::configure(app);
  app.add_option("dirs", dirs)->type_name("RUN_DIR")->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("-o,--output", options.output)->type_name("DIR");
  app.add_option("--title", options.title)->type_name("TEXT");
  app.add_option("--gnuplot", options.gnuplot)->type_name("PROGRAM");
  app.add_flag("--no-figures", no_figures);
  try {
    if (const auto status = cxrtool::parse(app, argc, argv, "report", cxr_help_report)) return *status;
    cxrtool::reject_unknown(app);
    options.figures = !no_figures;
    if (dirs.empty() || options.output.empty()) {
      std::fprintf(stderr, "usage: cxr report RUN_DIR... --output DIR   (cxr report --help)\n");
      return 2;
    }
    std::vector<cxr::report::RunInfo> runs;
    for (const auto& d : dirs) runs.push_back(cxr::report::load_run(d));
    const cxr::report::ReportResult r = cxr::report::write_report(runs, options);
    for (const auto& w : r.warnings) std::fprintf(stderr, "cxr report: warning: %s\n", w.c_str());
    std::printf("cxr report: %zu runs, %zu figures; %s\n", runs.size(), r.figures.size(), r.index.c_str());
    return r.warnings.empty() ? 0 : 1;
  } catch (const cxr::IoError& e) {
    std::fprintf(stderr, "cxr report: %s\n", e.what());
    return 2;
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr report: %s\n", e.what());
    return 2;
  }
}
