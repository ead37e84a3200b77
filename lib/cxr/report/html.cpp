// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/report/html.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "cxr/error.hpp"
#include "cxr/report/plot.hpp"
#include "cxr/util/csv.hpp"

namespace fs = std::filesystem;

namespace cxr::report {

namespace {

const char* kCss = R"(body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1, h2, h3 { font-weight: 600; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
td small { color: #666; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; }
.figs img { max-width: 100%; border: 1px solid #eee; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: .5em; }
.grid figure { margin: 0; }
.grid img { width: 100%; }
.grid figcaption { font-size: .8em; color: #555; word-break: break-all; }
.warn { color: #a40; }
)";

std::string fmt(double v, int digits) {
  if (!std::isfinite(v)) return "&ndash;";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string csv_num(double v, int digits) {
  if (!std::isfinite(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

using util::csv_field;

// File names made from run names: portable characters only.
std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  return out.empty() ? std::string("run") : out;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError("cannot write " + path.string() + ": " + std::strerror(errno));
  out << text;
  if (!out) throw IoError("cannot write " + path.string());
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string study_csv(const StudyTable& table) {
  std::string out = "dataset";
  for (const auto& m : table.models) out += "," + csv_field(m + " F1") + "," + csv_field(m + " s/epoch") + "," + csv_field(m + " best epoch");
  out += "\n";
  for (const auto& d : table.datasets) {
    out += csv_field(d);
    for (const auto& m : table.models) {
      const auto it = table.cells.find({d, m});
      if (it == table.cells.end()) {
        out += ",,,";
        continue;
      }
      const RunInfo& r = *it->second;
      out += "," + csv_num(r.test_f1, 3) + "," + csv_num(r.seconds_per_epoch(), 1) + "," +
             (r.best_epoch >= 0 ? std::to_string(r.best_epoch) : std::string());
    }
    out += "\n";
  }
  return out;
}

ReportResult write_report(const std::vector<RunInfo>& runs, const ReportOptions& options) {
  if (options.output.empty()) throw InvalidArgument("report: no output folder");
  const fs::path out(options.output);
  std::error_code ec;
  fs::create_directories(out / "figures", ec);
  if (ec) throw IoError("cannot create " + (out / "figures").string() + ": " + ec.message());

  ReportResult result;
  result.index = (out / "index.html").string();
  // Renders one figure; on failure the page says so where the figure would be.
  auto figure = [&](const std::function<Figure()>& make) -> std::string {
    if (!options.figures) return std::string();
    std::string name;
    try {
      const Figure f = make();
      name = f.name;
      render(f, (out / "figures").string(), options.gnuplot);
      result.figures.push_back((out / "figures" / f.name).string());
      return "<img src=\"figures/" + html_escape(f.name) + "\" alt=\"" + html_escape(f.title) + "\">";
    } catch (const Error& e) {
      result.warnings.push_back(e.what());
      return "<p class=\"warn\">figure " + html_escape(name) + " not made: " + html_escape(e.what()) + "</p>";
    }
  };

  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" << html_escape(options.title)
    << "</title>\n<link rel=\"stylesheet\" href=\"style.css\">\n</head>\n<body>\n<h1>" << html_escape(options.title)
    << "</h1>\n<p>" << runs.size() << " run" << (runs.size() == 1 ? "" : "s")
    << ". Tables as CSV: <a href=\"study.csv\">study.csv</a>, <a href=\"runs.csv\">runs.csv</a>.</p>\n";

  // --- the study table: model x dataset ---------------------------------------------------
  const StudyTable table = study_table(runs);
  write_text(out / "study.csv", study_csv(table));
  write_text(out / "runs.csv", runs_csv(runs));
  h << "<h2 id=\"study\">Test macro F1</h2>\n<p>Each cell: test macro F1, then seconds per epoch and the best "
       "epoch (by validation loss).</p>\n<table>\n<tr><th>dataset</th>";
  for (const auto& m : table.models) h << "<th>" << html_escape(m) << "</th>";
  h << "</tr>\n";
  for (const auto& d : table.datasets) {
    h << "<tr><td>" << html_escape(d) << "</td>";
    for (const auto& m : table.models) {
      const auto it = table.cells.find({d, m});
      if (it == table.cells.end()) {
        h << "<td></td>";
        continue;
      }
      const RunInfo& r = *it->second;
      h << "<td>" << fmt(r.test_f1, 3) << "<br><small>" << fmt(r.seconds_per_epoch(), 1) << " s/epoch, best "
        << (r.best_epoch >= 0 ? std::to_string(r.best_epoch) : std::string("&ndash;")) << "</small></td>";
    }
    h << "</tr>\n";
  }
  h << "</table>\n";

  // --- every run, one row ----------------------------------------------------------------
  h << "<h2 id=\"runs\">Runs</h2>\n<table>\n<tr><th>run</th><th>dataset</th><th>model</th><th>learning rate</th>"
       "<th>test F1</th><th>test accuracy</th><th>test macro AUROC</th><th>best epoch</th><th>epochs</th>"
       "<th>s/epoch</th></tr>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunInfo& r = runs[i];
    h << "<tr><td><a href=\"#run" << i << "\">" << html_escape(r.meta.name) << "</a></td><td>" << html_escape(r.meta.dataset)
      << "</td><td>" << html_escape(r.meta.model) << "</td><td>" << fmt(r.learning_rate(), 4) << "</td><td>"
      << fmt(r.test_f1, 3) << "</td><td>" << fmt(r.test_accuracy, 3) << "</td><td>" << fmt(r.test_macro_auroc, 3)
      << "</td><td>" << (r.best_epoch >= 0 ? std::to_string(r.best_epoch) : std::string("&ndash;")) << "</td><td>"
      << r.epochs_completed << "</td><td>" << fmt(r.seconds_per_epoch(), 1) << "</td></tr>\n";
  }
  h << "</table>\n";

  // --- learning-rate ablation ------------------------------------------------------------
  if (is_lr_ablation(runs)) {
    h << "<h2 id=\"ablation\">Learning-rate ablation</h2>\n<div class=\"figs\">\n";
    h << figure([&] { return ablation_figure(runs, "ablation-lr-test-f1.png"); }) << "\n";
    h << figure([&] { return ablation_curves_figure(runs, "f1", "ablation-lr-val-f1.png"); }) << "\n";
    h << figure([&] { return ablation_curves_figure(runs, "loss", "ablation-lr-val-loss.png"); }) << "\n";
    h << "</div>\n";
  }

  // --- per run -------------------------------------------------------------------------
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunInfo& r = runs[i];
    const std::string stem = "run" + std::to_string(i) + "-" + slug(r.meta.name);
    h << "<h2 id=\"run" << i << "\">" << html_escape(r.meta.name) << "</h2>\n<p>" << html_escape(r.meta.model) << " on "
      << html_escape(r.meta.dataset) << " (" << html_escape(r.architecture.empty() ? "?" : r.architecture) << ", "
      << html_escape(r.task) << "); " << r.epochs_completed << " epochs";
    if (!r.has_summary) h << "; <span class=\"warn\">no summary.json: training not finished</span>";
    h << ". Folder: <code>" << html_escape(r.dir) << "</code></p>\n<div class=\"figs\">\n";
    if (!r.epochs.empty()) {
      h << figure([&] { return curves_figure(r, "f1", stem + "-f1.png"); }) << "\n";
      h << figure([&] { return curves_figure(r, "loss", stem + "-loss.png"); }) << "\n";
    }
    if (!r.multilabel() && !r.confusion.empty())
      h << figure([&] { return confusion_figure(r, stem + "-confusion.png"); }) << "\n";
    if (r.multilabel() && !r.test_auroc.empty())
      h << figure([&] { return auroc_figure(r, stem + "-auroc.png"); }) << "\n";
    if (!r.tsne_csv.empty())
      h << figure([&] { return tsne_figure(r.tsne_csv, r.meta.name + ": t-SNE of the test features", stem + "-tsne.png"); })
        << "\n";
    h << "</div>\n";
    if (!r.gradcam_pngs.empty()) {
      // Copies, so the report folder stands alone.
      const fs::path dir = out / "gradcam" / slug(r.meta.name + "-" + std::to_string(i));
      fs::create_directories(dir, ec);
      if (ec) throw IoError("cannot create " + dir.string() + ": " + ec.message());
      h << "<h3>Grad-CAM</h3>\n<div class=\"grid\">\n";
      for (const auto& png : r.gradcam_pngs) {
        const fs::path name = fs::path(png).filename();
        fs::copy_file(png, dir / name, fs::copy_options::overwrite_existing, ec);
        if (ec) throw IoError("cannot copy " + png + " to " + dir.string() + ": " + ec.message());
        const std::string rel = fs::relative(dir / name, out).generic_string();
        h << "<figure><img src=\"" << html_escape(rel) << "\" alt=\"" << html_escape(name.string())
          << "\"><figcaption>" << html_escape(name.string()) << "</figcaption></figure>\n";
      }
      h << "</div>\n";
    }
  }
  if (!result.warnings.empty()) {
    h << "<h2>Warnings</h2>\n<ul>\n";
    for (const auto& w : result.warnings) h << "<li class=\"warn\">" << html_escape(w) << "</li>\n";
    h << "</ul>\n";
  }
  h << "</body>\n</html>\n";
  write_text(out / "style.css", kCss);
  write_text(out / "index.html", h.str());
  return result;
}

}  // namespace cxr::report
