// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The report of one or more run directories: figures (gnuplot PNGs), the study table, the
/// learning-rate ablation, t-SNE and Grad-CAM, on one HTML page with relative links only, so
/// the output folder can be copied or served as it is.
///
/// Output layout: index.html, style.css, runs.csv (one row per run), study.csv (the study
/// table), figures/*.png (and the *.gp scripts that drew them), gradcam/<run>/*.png (copies).
#include <string>
#include <vector>

#include "cxr/report/runs.hpp"

namespace cxr::report {

struct ReportOptions {
  std::string output;                 ///< folder to write (created)
  std::string title = "gst-cxr report";
  std::string gnuplot = "gnuplot";    ///< program that renders the figures
  bool figures = true;                ///< false: tables and HTML only
};

struct ReportResult {
  std::string index;                  ///< path of index.html
  std::vector<std::string> figures;   ///< paths of the PNGs written
  std::vector<std::string> warnings;  ///< figures that could not be made, and why
};

/// `text` with &, <, >, " and ' escaped for HTML.
std::string html_escape(const std::string& text);

/// The study table as CSV: dataset, then per model "<model> F1", "<model> s/epoch",
/// "<model> best epoch".
std::string study_csv(const StudyTable& table);

/// Writes the report of `runs` into options.output. Throws cxr::IoError when the folder cannot
/// be written; a figure that fails is a warning, not an error, so one bad run does not hide
/// the others.
ReportResult write_report(const std::vector<RunInfo>& runs, const ReportOptions& options);

}  // namespace cxr::report
