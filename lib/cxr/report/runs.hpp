// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Run directories as data: what `cxrtrain` wrote (metrics.jsonl, summary.json, model.toml),
/// what `cxr sweep` / `cxr study` add (run.json), and what `cxr tsne` / Grad-CAM leave beside
/// them (tsne.csv, gradcam/*.png); the study table and the learning-rate ablation built from
/// several runs.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cxr::report {

/// One row of metrics.jsonl.
struct EpochMetrics {
  int epoch = 0;
  double train_loss = 0, train_f1 = 0, train_accuracy = 0;
  double val_loss = 0, val_f1 = 0, val_accuracy = 0;  ///< NaN without a val split
  double lr = 0, seconds = 0;
  bool best = false;
  std::vector<double> class_f1, auroc;  ///< multilabel: per class (val, else train)
};

/// What `cxr sweep` / `cxr study` record about a run in RUN_DIR/run.json.
struct RunMeta {
  std::string name;       ///< e.g. "covid-resnet34" or "learning-rate=0.01"
  std::string model;      ///< table column, e.g. "EfficientNet-B1 transfer"
  std::string dataset;    ///< table row, e.g. "COVID"
  std::string pipeline;   ///< the pipeline TOML that ran
  std::string param;      ///< the swept variable or property, if any
  std::string value;      ///< its value in this run
  std::map<std::string, std::string> variables;  ///< every --set of the run
};

/// run.json text for `meta`.
std::string run_json(const RunMeta& meta);

/// Everything the report needs from one run directory.
struct RunInfo {
  std::string dir;
  RunMeta meta;                     ///< run.json; name/model defaulted when absent
  std::string architecture, task;   ///< summary.json, else model.toml
  std::vector<std::string> classes;
  std::vector<EpochMetrics> epochs;
  bool has_summary = false;
  int best_epoch = -1;
  int epochs_completed = 0;
  double train_seconds = 0;
  double test_f1, test_accuracy, test_macro_auroc;  ///< NaN when absent
  std::vector<double> test_class_f1, test_auroc;
  std::vector<std::vector<int64_t>> confusion;                    ///< multiclass, [truth][predicted]
  std::vector<std::vector<std::vector<int64_t>>> class_confusion;  ///< multilabel, per class 2x2
  std::string tsne_csv;                   ///< RUN_DIR/tsne.csv when present
  std::vector<std::string> gradcam_pngs;  ///< RUN_DIR/gradcam/*.png, sorted

  RunInfo();
  bool multilabel() const { return task == "multilabel"; }
  /// Training seconds per completed epoch (NaN when unknown).
  double seconds_per_epoch() const;
  /// Initial learning rate: the swept value, the run's `learning-rate` variable, else the first
  /// metrics row's (NaN when unknown).
  double learning_rate() const;
};

/// Reads a run directory. Throws cxr::IoError when it holds neither metrics.jsonl nor
/// summary.json, cxr::ConfigError "file:line: ..." on a malformed file.
RunInfo load_run(const std::string& dir);

/// Display name of an architecture ("resnet34" -> "ResNet-34"); unknown names pass through.
std::string architecture_label(const std::string& architecture);

/// The runs as one CSV row each: name, dataset, model, param, value, learning_rate, test_f1,
/// test_accuracy, test_macro_auroc, best_epoch, epochs, seconds_per_epoch, train_seconds, dir.
std::string runs_csv(const std::vector<RunInfo>& runs);

/// Rows (datasets) and columns (models) of the study table, in first-seen order. The cells
/// point into `runs`, which must outlive the table.
struct StudyTable {
  std::vector<std::string> datasets, models;
  std::map<std::pair<std::string, std::string>, const RunInfo*> cells;  ///< (dataset, model)
};
StudyTable study_table(const std::vector<RunInfo>& runs);

/// True when there are at least two runs, all of one model and dataset, whose learning rates
/// differ and whose other variables are equal: the learning-rate ablation.
bool is_lr_ablation(const std::vector<RunInfo>& runs);

}  // namespace cxr::report
