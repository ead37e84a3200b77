// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/metrics/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "cxr/error.hpp"

namespace cxr::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// sklearn's _prf_divide with zero_division=0: 0 where the denominator is 0.
double ratio(double num, double den) { return den == 0 ? 0.0 : num / den; }

// sklearn 1.2 derives F from precision and recall, not from counts: same value, same rounding.
double f1_from_counts(int64_t tp, int64_t fp, int64_t fn) {
  const double precision = ratio(static_cast<double>(tp), static_cast<double>(tp + fp));
  const double recall = ratio(static_cast<double>(tp), static_cast<double>(tp + fn));
  double denom = precision + recall;
  if (denom == 0.0) denom = 1.0;
  return 2.0 * precision * recall / denom;
}

}  // namespace

Confusion confusion_matrix(const std::vector<int>& truth, const std::vector<int>& predicted, int n_classes) {
  if (n_classes <= 0) throw InvalidArgument("confusion_matrix: n_classes must be > 0, got " + std::to_string(n_classes));
  if (truth.size() != predicted.size())
    throw InvalidArgument("confusion_matrix: " + std::to_string(truth.size()) + " labels but " +
                          std::to_string(predicted.size()) + " predictions");
  Confusion m(static_cast<size_t>(n_classes), std::vector<int64_t>(static_cast<size_t>(n_classes), 0));
  for (size_t i = 0; i < truth.size(); ++i) {
    const int t = truth[i], p = predicted[i];
    if (t < 0 || t >= n_classes || p < 0 || p >= n_classes)
      throw InvalidArgument("confusion_matrix: entry " + std::to_string(i) + " has label " + std::to_string(t) +
                            " / prediction " + std::to_string(p) + ", expected [0, " + std::to_string(n_classes) + ")");
    m[static_cast<size_t>(t)][static_cast<size_t>(p)]++;
  }
  return m;
}

double accuracy(const std::vector<int>& truth, const std::vector<int>& predicted) {
  if (truth.size() != predicted.size())
    throw InvalidArgument("accuracy: " + std::to_string(truth.size()) + " labels but " +
                          std::to_string(predicted.size()) + " predictions");
  if (truth.empty()) return 0.0;
  size_t hits = 0;
  for (size_t i = 0; i < truth.size(); ++i) hits += truth[i] == predicted[i];
  return static_cast<double>(hits) / static_cast<double>(truth.size());
}

std::vector<double> f1_per_class(const Confusion& m) {
  const size_t n = m.size();
  std::vector<double> f1(n, 0.0);
  for (size_t c = 0; c < n; ++c) {
    if (m[c].size() != n) throw InvalidArgument("f1_per_class: confusion matrix is not square");
    int64_t fp = 0, fn = 0;
    for (size_t k = 0; k < n; ++k) {
      if (k == c) continue;
      fp += m[k][c];
      fn += m[c][k];
    }
    f1[c] = f1_from_counts(m[c][c], fp, fn);
  }
  return f1;
}

double macro_f1(const Confusion& m) {
  const std::vector<double> f1 = f1_per_class(m);
  double sum = 0;
  size_t used = 0;
  for (size_t c = 0; c < m.size(); ++c) {
    int64_t seen = 0;  // as truth (row) or as prediction (column)
    for (size_t k = 0; k < m.size(); ++k) seen += m[c][k] + m[k][c];
    if (seen == 0) continue;
    sum += f1[c];
    ++used;
  }
  return used ? sum / static_cast<double>(used) : 0.0;
}

Confusion binary_confusion(const std::vector<uint8_t>& truth, const std::vector<uint8_t>& predicted) {
  if (truth.size() != predicted.size())
    throw InvalidArgument("binary_confusion: " + std::to_string(truth.size()) + " labels but " +
                          std::to_string(predicted.size()) + " predictions");
  Confusion m(2, std::vector<int64_t>(2, 0));
  for (size_t i = 0; i < truth.size(); ++i) m[truth[i] ? 1 : 0][predicted[i] ? 1 : 0]++;
  return m;
}

double auroc(const std::vector<uint8_t>& truth, const std::vector<float>& scores) {
  if (truth.size() != scores.size())
    throw InvalidArgument("auroc: " + std::to_string(truth.size()) + " labels but " + std::to_string(scores.size()) +
                          " scores");
  const size_t n = truth.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Sum of the positives' 1-based ranks, tied groups sharing their mean rank.
  double rank_sum = 0;
  int64_t pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double mid = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (truth[order[k]]) {
        rank_sum += mid;
        ++pos;
      }
    i = j;
  }
  const int64_t neg = static_cast<int64_t>(n) - pos;
  if (pos == 0 || neg == 0) return kNaN;
  const double p = static_cast<double>(pos);
  return (rank_sum - p * (p + 1) / 2.0) / (p * static_cast<double>(neg));
}

Report multiclass_report(const std::vector<int>& truth, const std::vector<float>& probabilities, int n_classes) {
  if (n_classes <= 0) throw InvalidArgument("multiclass_report: n_classes must be > 0");
  if (probabilities.size() != truth.size() * static_cast<size_t>(n_classes))
    throw InvalidArgument("multiclass_report: " + std::to_string(probabilities.size()) + " probabilities for " +
                          std::to_string(truth.size()) + " scans of " + std::to_string(n_classes) + " classes");
  std::vector<int> predicted(truth.size());
  for (size_t i = 0; i < truth.size(); ++i) {
    const float* row = probabilities.data() + i * static_cast<size_t>(n_classes);
    predicted[i] = static_cast<int>(std::max_element(row, row + n_classes) - row);
  }
  Report r;
  r.n = static_cast<int64_t>(truth.size());
  r.loss = kNaN;
  r.confusion = confusion_matrix(truth, predicted, n_classes);
  r.accuracy = accuracy(truth, predicted);
  r.f1 = f1_per_class(r.confusion);
  r.macro_f1 = macro_f1(r.confusion);
  // One-vs-rest AUROC per class, macro-averaged: roc_auc_score(multi_class='ovr',
  // average='macro') where every class occurs.
  const size_t nc = static_cast<size_t>(n_classes);
  std::vector<uint8_t> t(truth.size());
  std::vector<float> s(truth.size());
  double sum = 0;
  int defined = 0;
  for (size_t c = 0; c < nc; ++c) {
    for (size_t i = 0; i < truth.size(); ++i) {
      t[i] = truth[i] == static_cast<int>(c) ? 1 : 0;
      s[i] = probabilities[i * nc + c];
    }
    const double a = auroc(t, s);
    r.auroc.push_back(a);
    if (!std::isnan(a)) sum += a, ++defined;
  }
  r.macro_auroc = defined ? sum / defined : kNaN;
  return r;
}

Report multilabel_report(const std::vector<uint8_t>& truth, const std::vector<float>& probabilities, int n_classes,
                         const std::vector<float>& thresholds) {
  if (n_classes <= 0) throw InvalidArgument("multilabel_report: n_classes must be > 0");
  const size_t nc = static_cast<size_t>(n_classes);
  if (truth.size() % nc != 0 || probabilities.size() != truth.size())
    throw InvalidArgument("multilabel_report: " + std::to_string(truth.size()) + " labels and " +
                          std::to_string(probabilities.size()) + " probabilities for " + std::to_string(n_classes) +
                          " classes");
  if (thresholds.size() != 1 && thresholds.size() != nc)
    throw InvalidArgument("multilabel_report: " + std::to_string(thresholds.size()) + " thresholds for " +
                          std::to_string(n_classes) + " classes (expected 1 or one per class)");
  const size_t n = truth.size() / nc;
  Report r;
  r.multilabel = true;
  r.n = static_cast<int64_t>(n);
  r.loss = kNaN;
  std::vector<uint8_t> t(n), p(n);
  std::vector<float> s(n);
  std::vector<uint8_t> exact(n, 1);
  double auroc_sum = 0;
  int defined = 0;
  for (size_t c = 0; c < nc; ++c) {
    const float th = thresholds.size() == 1 ? thresholds[0] : thresholds[c];
    for (size_t i = 0; i < n; ++i) {
      t[i] = truth[i * nc + c] ? 1 : 0;
      s[i] = probabilities[i * nc + c];
      p[i] = s[i] >= th ? 1 : 0;
      if (t[i] != p[i]) exact[i] = 0;
    }
    Confusion m = binary_confusion(t, p);
    r.f1.push_back(f1_from_counts(m[1][1], m[0][1], m[1][0]));
    r.class_confusion.push_back(std::move(m));
    const double a = auroc(t, s);
    r.auroc.push_back(a);
    if (!std::isnan(a)) {
      auroc_sum += a;
      ++defined;
    }
  }
  // sklearn's multilabel macro F1 averages every column, including all-negative ones (F1 0).
  r.macro_f1 = std::accumulate(r.f1.begin(), r.f1.end(), 0.0) / static_cast<double>(nc);
  r.accuracy = n ? static_cast<double>(std::accumulate(exact.begin(), exact.end(), size_t{0})) / static_cast<double>(n) : 0.0;
  r.macro_auroc = defined ? auroc_sum / defined : kNaN;
  return r;
}

}  // namespace cxr::metrics
