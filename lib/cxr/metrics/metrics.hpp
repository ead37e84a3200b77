// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Classification metrics as scikit-learn computes them: confusion matrices, accuracy, per-class
/// and macro F1 (`f1_score(average='macro')`, zero_division 0), and binary AUROC
/// (`roc_auc_score`, ties as mid-ranks). Plain C++: no LibTorch.
#include <cstdint>
#include <vector>

namespace cxr::metrics {

/// Rows: true class, columns: predicted class (sklearn's confusion_matrix layout).
using Confusion = std::vector<std::vector<int64_t>>;

/// Multiclass confusion matrix of n_classes x n_classes. Throws cxr::InvalidArgument when the
/// vectors differ in length or a label lies outside [0, n_classes).
Confusion confusion_matrix(const std::vector<int>& truth, const std::vector<int>& predicted, int n_classes);

/// Fraction of equal entries (0 for empty input).
double accuracy(const std::vector<int>& truth, const std::vector<int>& predicted);

/// F1 of each class from a confusion matrix, 0 where precision and recall are both 0 (or
/// undefined), computed as sklearn does (from precision and recall).
std::vector<double> f1_per_class(const Confusion& confusion);

/// sklearn's multiclass f1_score(average='macro'): the mean per-class F1 over the classes that
/// occur in truth or predictions (sklearn's unique_labels); a class never seen and never
/// predicted does not count. 0 for empty input.
double macro_f1(const Confusion& confusion);

/// Binary confusion of one multilabel column, sklearn's multilabel_confusion_matrix layout:
/// {{tn, fp}, {fn, tp}}.
Confusion binary_confusion(const std::vector<uint8_t>& truth, const std::vector<uint8_t>& predicted);

/// Area under the ROC curve of scores for a binary truth (sklearn's roc_auc_score): the
/// Mann-Whitney statistic with tied scores as mid-ranks. NaN when only one class is present
/// (sklearn raises there).
double auroc(const std::vector<uint8_t>& truth, const std::vector<float>& scores);

/// Metrics of one pass over a split.
struct Report {
  bool multilabel = false;
  int64_t n = 0;                          ///< scans
  double loss = 0;                        ///< mean loss per scan (NaN when not given)
  double accuracy = 0;                    ///< multiclass: accuracy; multilabel: exact-match (subset) accuracy
  double macro_f1 = 0;
  std::vector<double> f1;                 ///< per class
  std::vector<double> auroc;              ///< per class (multiclass: one-vs-rest; NaN where undefined)
  double macro_auroc = 0;                 ///< mean of the defined per-class AUROCs (NaN if none)
  Confusion confusion;                    ///< multiclass
  std::vector<Confusion> class_confusion; ///< multilabel: one {{tn, fp}, {fn, tp}} per class
};

/// Multiclass report: predictions are the argmax of each row of `probabilities`
/// (n x n_classes, row-major; the first maximum wins, as torch.argmax).
Report multiclass_report(const std::vector<int>& truth, const std::vector<float>& probabilities, int n_classes);

/// Multilabel report: `truth` and `probabilities` are n x n_classes row-major; a class is
/// predicted when its sigmoid probability >= its threshold (one threshold for all, or one per class).
Report multilabel_report(const std::vector<uint8_t>& truth, const std::vector<float>& probabilities, int n_classes,
                         const std::vector<float>& thresholds);

}  // namespace cxr::metrics
