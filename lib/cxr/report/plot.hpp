// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The report's figures as gnuplot scripts: each figure is one self-contained script (its data in
/// inline datablocks) that gnuplot renders to PNG with the pngcairo terminal. The scripts are kept
/// beside the PNGs, so a figure can be restyled and re-rendered by hand.
#include <string>
#include <vector>

#include "cxr/report/runs.hpp"

namespace cxr::report {

/// One figure: `name` is the PNG's file name; `script` is everything after the terminal and
/// output lines.
struct Figure {
  std::string name;
  std::string title;
  std::string script;
  int width = 720, height = 450;
};

/// Train and validation curves of one run over the epochs; `metric` is "f1" or "loss". The best
/// epoch is marked.
Figure curves_figure(const RunInfo& run, const std::string& metric, const std::string& name);

/// Multiclass test confusion matrix as a heatmap with the counts written in the cells (rows:
/// truth, columns: predicted). Throws cxr::InvalidArgument when the run has none.
Figure confusion_figure(const RunInfo& run, const std::string& name);

/// Multilabel: test AUROC and F1 per class as grouped bars. Throws cxr::InvalidArgument when
/// the run has no per-class AUROC.
Figure auroc_figure(const RunInfo& run, const std::string& name);

/// Learning-rate ablation: test F1 against the learning rate on a log axis.
Figure ablation_figure(const std::vector<RunInfo>& runs, const std::string& name);

/// Learning-rate ablation: one validation curve per run (`metric` "f1" or "loss").
Figure ablation_curves_figure(const std::vector<RunInfo>& runs, const std::string& metric, const std::string& name);

/// A `cxr tsne` CSV (x, y[, label]) as a scatter plot, one colour per label. Throws
/// cxr::ConfigError when the CSV lacks x or y.
Figure tsne_figure(const std::string& csv_path, const std::string& title, const std::string& name);

/// `text` as a gnuplot single-quoted string.
std::string gnuplot_quote(const std::string& text);

/// Writes `dir/<stem>.gp` and runs `gnuplot` on it, producing `dir/<figure.name>`. Throws
/// cxr::IoError with gnuplot's messages when it fails or writes no PNG.
void render(const Figure& figure, const std::string& dir, const std::string& gnuplot = "gnuplot");

/// True when `gnuplot` can be started and offers the pngcairo terminal.
bool gnuplot_has_pngcairo(const std::string& gnuplot = "gnuplot");

}  // namespace cxr::report
