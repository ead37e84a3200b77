// SPDX-License-Identifier: LGPL-2.1-or-later
// Classification metrics against hand-computed values (sklearn's definitions): confusion,
// accuracy, per-class and macro F1 (a class never predicted, a class never seen), AUROC with
// ties, multilabel reports thresholding probabilities; bad input.
#include "cxr_catch.hpp"
#include <cmath>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/metrics/metrics.hpp"

using namespace cxr::metrics;

TEST_CASE("metrics: confusion, accuracy and macro F1 of a 3-class example") {
  const std::vector<int> truth{0, 0, 1, 1, 2, 2}, pred{0, 1, 1, 1, 0, 2};
  const Confusion m = confusion_matrix(truth, pred, 3);
  CHECK(m == Confusion{{1, 1, 0}, {0, 2, 0}, {1, 0, 1}});
  CHECK(accuracy(truth, pred) == Approx(4.0 / 6.0));
  const std::vector<double> f1 = f1_per_class(m);
  // class 0: P 1/2 R 1/2; class 1: P 2/3 R 1; class 2: P 1 R 1/2.
  CHECK(f1[0] == Approx(0.5));
  CHECK(f1[1] == Approx(0.8));
  CHECK(f1[2] == Approx(2.0 / 3.0));
  CHECK(macro_f1(m) == Approx((0.5 + 0.8 + 2.0 / 3.0) / 3.0));
}

TEST_CASE("metrics: a class never predicted counts as F1 0; a class never seen does not count") {
  const std::vector<int> truth{0, 1, 2, 2}, pred{0, 1, 1, 1};
  // class 2 is in the truth but never predicted: F1 0, still averaged (sklearn).
  CHECK(macro_f1(confusion_matrix(truth, pred, 3)) == Approx((1.0 + 0.5 + 0.0) / 3.0));
  // class 3 occurs nowhere: sklearn's unique_labels leaves it out of the mean.
  CHECK(macro_f1(confusion_matrix(truth, pred, 4)) == Approx((1.0 + 0.5 + 0.0) / 3.0));
  // Everything wrong.
  CHECK(macro_f1(confusion_matrix({0, 0}, {1, 1}, 2)) == 0.0);
  CHECK(macro_f1(confusion_matrix({}, {}, 2)) == 0.0);
}

TEST_CASE("metrics: AUROC with ties as mid-ranks") {
  // pos {0.5, 0.9} vs neg {0.1, 0.5}: 1 + 0.5 + 1 + 1 of 4 pairs.
  CHECK(auroc({0, 0, 1, 1}, {0.1f, 0.5f, 0.5f, 0.9f}) == Approx(0.875));
  CHECK(auroc({0, 1, 0, 1}, {0.3f, 0.3f, 0.3f, 0.3f}) == Approx(0.5));
  CHECK(auroc({0, 0, 1}, {0.1f, 0.2f, 0.9f}) == Approx(1.0));
  CHECK(auroc({1, 1, 0}, {0.1f, 0.2f, 0.9f}) == Approx(0.0));
  CHECK(std::isnan(auroc({1, 1}, {0.1f, 0.2f})));
}

TEST_CASE("metrics: multiclass report takes the argmax (first of equal maxima)") {
  const std::vector<float> probs{0.7f, 0.2f, 0.1f,  //
                                 0.4f, 0.4f, 0.2f,  // tie: class 0, as torch.argmax
                                 0.1f, 0.1f, 0.8f};
  const Report r = multiclass_report({0, 1, 2}, probs, 3);
  CHECK(r.confusion == Confusion{{1, 0, 0}, {1, 0, 0}, {0, 0, 1}});
  CHECK(r.accuracy == Approx(2.0 / 3.0));
  CHECK(r.macro_f1 == Approx((2.0 / 3.0 + 0.0 + 1.0) / 3.0));
}

TEST_CASE("metrics: multiclass report has one-vs-rest AUROC per class and their macro mean") {
  // Reference: scikit-learn 1.2, roc_auc_score(y, p, multi_class='ovr', average='macro') = 0.8125,
  // per class roc_auc_score(y == c, p[:, c]) = 0.6875, 0.75, 1.0.
  const std::vector<float> probs{0.6f, 0.3f, 0.1f, 0.2f, 0.5f, 0.3f, 0.3f, 0.3f, 0.4f,
                                 0.2f, 0.7f, 0.1f, 0.5f, 0.4f, 0.1f, 0.1f, 0.1f, 0.8f};
  const Report r = multiclass_report({0, 1, 2, 0, 1, 2}, probs, 3);
  REQUIRE(r.auroc.size() == 3);
  CHECK(r.auroc[0] == Approx(0.6875));
  CHECK(r.auroc[1] == Approx(0.75));
  CHECK(r.auroc[2] == Approx(1.0));
  CHECK(r.macro_auroc == Approx(0.8125));
}

TEST_CASE("metrics: multilabel report thresholds sigmoid probabilities per class") {
  const std::vector<uint8_t> truth{1, 0, 0, 1, 1, 1};
  const std::vector<float> probs{0.9f, 0.2f, 0.4f, 0.6f, 0.3f, 0.7f};
  const Report r = multilabel_report(truth, probs, 2, {0.5f});
  // column 0: t 1 0 1, p 1 0 0 -> F1 2/3; column 1: t 0 1 1, p 0 1 1 -> F1 1.
  CHECK(r.f1[0] == Approx(2.0 / 3.0));
  CHECK(r.f1[1] == Approx(1.0));
  CHECK(r.macro_f1 == Approx((2.0 / 3.0 + 1.0) / 2.0));
  CHECK(r.accuracy == Approx(2.0 / 3.0));  // exact-match rows
  CHECK(r.class_confusion[0] == Confusion{{1, 0}, {1, 1}});
  CHECK(r.auroc[0] == Approx(0.5));
  CHECK(r.auroc[1] == Approx(1.0));
  CHECK(r.macro_auroc == Approx(0.75));
  // Per-class thresholds: a lower one for column 0 catches the 0.3.
  const Report r2 = multilabel_report(truth, probs, 2, {0.25f, 0.5f});
  CHECK(r2.f1[0] == Approx(0.8));  // t 1 0 1, p 1 1 1
  // A column without positives: F1 0 and in the mean (sklearn), AUROC undefined and left out.
  const Report r3 = multilabel_report({0, 1, 0, 0}, {0.1f, 0.9f, 0.2f, 0.3f}, 2, {0.5f});
  CHECK(r3.f1[0] == 0.0);
  CHECK(r3.f1[1] == 1.0);
  CHECK(r3.macro_f1 == Approx(0.5));
  CHECK(std::isnan(r3.auroc[0]));
  CHECK(r3.macro_auroc == Approx(1.0));
}

TEST_CASE("metrics: bad input is an InvalidArgument") {
  CHECK_THROWS_AS(confusion_matrix({0, 1}, {0}, 2), cxr::InvalidArgument);
  CHECK_THROWS_AS(confusion_matrix({0, 2}, {0, 1}, 2), cxr::InvalidArgument);
  CHECK_THROWS_AS(confusion_matrix({-1}, {0}, 2), cxr::InvalidArgument);
  CHECK_THROWS_AS(confusion_matrix({0}, {0}, 0), cxr::InvalidArgument);
  CHECK_THROWS_AS(auroc({0, 1}, {0.5f}), cxr::InvalidArgument);
  CHECK_THROWS_AS(multiclass_report({0, 1}, {0.5f, 0.5f}, 2), cxr::InvalidArgument);
  CHECK_THROWS_AS(multilabel_report({0, 1}, {0.5f, 0.5f}, 2, {0.5f, 0.5f, 0.5f}), cxr::InvalidArgument);
}
