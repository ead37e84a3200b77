// SPDX-License-Identifier: LGPL-2.1-or-later
#include <algorithm>
#include "cxr_catch.hpp"
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/explain/feature_table.hpp"
#include "cxr/explain/tsne.hpp"
#include "testutil.hpp"

using namespace cxr::explain;

namespace {

/// `clusters` isotropic Gaussian blobs of `per` points in `dim` dimensions, centres 10 sigma apart
/// along distinct axes; labels[i] is the blob of row i. Rows are interleaved so that neither the
/// order nor the index tie-breaking can help the embedding.
cv::Mat blobs(int clusters, int per, int dim, unsigned seed, std::vector<int>& labels) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  cv::Mat x(clusters * per, dim, CV_64F);
  labels.assign(static_cast<size_t>(clusters * per), 0);
  for (int r = 0; r < x.rows; ++r) {
    const int c = r % clusters;
    labels[static_cast<size_t>(r)] = c;
    for (int k = 0; k < dim; ++k) x.at<double>(r, k) = noise(rng) + (k == c % dim ? 10.0 * (1 + c / dim) : 0.0);
  }
  return x;
}

/// Fraction of points whose k nearest neighbours in y mostly share their label.
double knn_agreement(const cv::Mat& y, const std::vector<int>& labels, int k) {
  int agree = 0, total = 0;
  for (int i = 0; i < y.rows; ++i) {
    std::vector<std::pair<double, int>> d;
    for (int j = 0; j < y.rows; ++j)
      if (j != i) d.emplace_back(cv::norm(y.row(i), y.row(j), cv::NORM_L2SQR), j);
    std::partial_sort(d.begin(), d.begin() + k, d.end());
    for (int m = 0; m < k; ++m, ++total) agree += labels[static_cast<size_t>(d[static_cast<size_t>(m)].second)] == labels[static_cast<size_t>(i)];
  }
  return static_cast<double>(agree) / total;
}

bool bitwise_equal(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() &&
         std::equal(a.begin<double>(), a.end<double>(), b.begin<double>(),
                    [](double u, double v) { return std::memcmp(&u, &v, sizeof u) == 0; });
}

}  // namespace

TEST_CASE("tsne keeps well-separated clusters apart", "[tsne]") {
  const TsneMethod method = GENERATE(TsneMethod::exact, TsneMethod::barnes_hut);
  const TsneInit init = GENERATE(TsneInit::pca, TsneInit::random);
  std::vector<int> labels;
  const cv::Mat x = blobs(5, 61, 17, 3, labels);  // 305 points, odd sizes
  TsneParams p;
  p.method = method;
  p.init = init;
  p.perplexity = 20;
  p.iterations = 500;
  const TsneResult r = tsne(x, p);
  CAPTURE(to_string(method), static_cast<int>(init), r.kl_divergence);
  REQUIRE(r.method == method);
  REQUIRE(r.embedding.rows == x.rows);
  REQUIRE(r.embedding.cols == 2);
  REQUIRE(r.embedding.type() == CV_64F);
  CHECK(cv::checkRange(r.embedding));
  CHECK(knn_agreement(r.embedding, labels, 10) >= 0.95);
  CHECK(trustworthiness(x, r.embedding, 10) > 0.9);
  CHECK(r.kl_divergence > 0.0);
  CHECK(r.kl_divergence < 2.0);
  CHECK(r.learning_rate == 50.0);  // auto: max(305 / 12 / 4, 50)
}

TEST_CASE("tsne accepts float input and gives the same result as double", "[tsne]") {
  std::vector<int> labels;
  const cv::Mat x = blobs(3, 40, 8, 5, labels);
  cv::Mat x32;
  x.convertTo(x32, CV_32F);
  cv::Mat x64;
  x32.convertTo(x64, CV_64F);
  TsneParams p;
  p.perplexity = 10;
  p.iterations = 300;
  CHECK(bitwise_equal(tsne(x32, p).embedding, tsne(x64, p).embedding));
}

TEST_CASE("tsne is deterministic for a seed, whatever the thread count", "[tsne]") {
  const TsneMethod method = GENERATE(TsneMethod::exact, TsneMethod::barnes_hut);
  std::vector<int> labels;
  const cv::Mat x = blobs(4, 150, 12, 7, labels);  // 600 points: several blocks of rows per thread
  TsneParams p;
  p.method = method;
  p.init = TsneInit::random;
  p.seed = 42;
  p.iterations = 300;
  p.threads = 1;
  const TsneResult a = tsne(x, p);
  p.threads = 3;
  const TsneResult b = tsne(x, p);
  p.threads = 0;
  const TsneResult c = tsne(x, p);
  CAPTURE(to_string(method));
  CHECK(bitwise_equal(a.embedding, b.embedding));
  CHECK(bitwise_equal(a.embedding, c.embedding));
  CHECK(a.kl_divergence == b.kl_divergence);

  SECTION("different seeds differ") {
    p.seed = 43;
    const TsneResult d = tsne(x, p);
    CHECK_FALSE(bitwise_equal(a.embedding, d.embedding));
    CHECK(cv::norm(a.embedding, d.embedding, cv::NORM_INF) > 1e-3);
  }
  SECTION("PCA initialisation does not depend on the seed") {
    p.init = TsneInit::pca;
    p.seed = 1;
    const TsneResult e = tsne(x, p);
    p.seed = 2;
    CHECK(bitwise_equal(e.embedding, tsne(x, p).embedding));
  }
}

TEST_CASE("automatic method picks exact for small sets and Barnes-Hut for large ones", "[tsne]") {
  std::vector<int> labels;
  TsneParams p;
  p.iterations = 1;
  p.perplexity = 5;
  CHECK(tsne(blobs(2, kTsneAutoExactMaxPoints / 2, 3, 1, labels), p).method == TsneMethod::exact);
  CHECK(tsne(blobs(1, kTsneAutoExactMaxPoints + 1, 3, 1, labels), p).method == TsneMethod::barnes_hut);
}

TEST_CASE("Barnes-Hut with theta 0 and full neighbourhoods matches the exact gradient path", "[tsne]") {
  // With perplexity such that 3 * perplexity + 1 >= N - 1 the sparse P is the dense one (bar the
  // epsilon floor), and theta = 0 opens every cell: both methods then take the same steps. The
  // descent is chaotic (rounding differences grow ~1e3-fold per 5 steps at this size and
  // rate), so compare the first steps only.
  std::vector<int> labels;
  const cv::Mat x = blobs(3, 13, 5, 11, labels);  // 39 points
  TsneParams p;
  p.perplexity = 12.5;  // 3 * 12.5 + 1 = 38.5 -> 38 = N - 1 neighbours
  p.iterations = 10;
  p.theta = 0.0;
  p.method = TsneMethod::exact;
  const TsneResult e = tsne(x, p);
  p.method = TsneMethod::barnes_hut;
  const TsneResult b = tsne(x, p);
  CHECK(cv::norm(e.embedding, b.embedding, cv::NORM_INF) < 1e-8 * cv::norm(e.embedding, cv::NORM_INF));
  CHECK(e.kl_divergence == Approx(b.kl_divergence).epsilon(1e-9));
}

TEST_CASE("perplexity calibration hits the target entropy", "[tsne]") {
  const double perplexity = GENERATE(2.0, 5.0, 30.0, 90.0);
  const double scale = GENERATE(1e-3, 1.0, 1e4);  // tiny and huge distances alike
  std::mt19937 rng(9);
  std::uniform_real_distribution<double> u(0.0, 50.0);
  const int n = 181;
  std::vector<double> d(static_cast<size_t>(n)), p(static_cast<size_t>(n));
  for (double& v : d) v = u(rng) * scale;
  const double beta = tsne_calibrate_row(d.data(), n, perplexity, p.data());
  double sum = 0.0, h = 0.0;
  for (double v : p) {
    sum += v;
    if (v > 0) h -= v * std::log(v);
  }
  CAPTURE(perplexity, scale, beta);
  CHECK(beta > 0.0);
  CHECK(sum == Approx(1.0).epsilon(1e-12));
  CHECK(std::abs(h - std::log(perplexity)) <= 1e-5);
  CHECK(std::exp(h) == Approx(perplexity).epsilon(1e-4));
  // Nearer points are more probable.
  const auto nearest = std::min_element(d.begin(), d.end()) - d.begin();
  CHECK(*std::max_element(p.begin(), p.end()) == p[static_cast<size_t>(nearest)]);
}

TEST_CASE("trustworthiness follows scikit-learn's definition", "[tsne]") {
  // Identity embedding: every neighbour is a true neighbour.
  std::vector<int> labels;
  const cv::Mat x = blobs(2, 20, 2, 4, labels);
  CHECK(trustworthiness(x, x, 5) == 1.0);
  // 1-D points 0..9; the embedding moves 5..9 far away in reverse order, so neighbourhoods
  // near the cut are wrong. Compare with the definition computed by brute force.
  cv::Mat a(10, 1, CV_64F), b(10, 1, CV_64F);
  for (int i = 0; i < 10; ++i) {
    a.at<double>(i) = i;
    b.at<double>(i) = i < 5 ? i : 100 - i;  // 5..9 mirrored far away, order reversed
  }
  const int n = 10, k = 2;
  double penalty = 0.0;
  for (int i = 0; i < n; ++i) {
    std::vector<std::pair<double, int>> da, db;
    for (int j = 0; j < n; ++j)
      if (j != i) {
        da.emplace_back(std::abs(a.at<double>(i) - a.at<double>(j)), j);
        db.emplace_back(std::abs(b.at<double>(i) - b.at<double>(j)), j);
      }
    std::sort(da.begin(), da.end());
    std::sort(db.begin(), db.end());
    for (int m = 0; m < k; ++m) {
      const int j = db[static_cast<size_t>(m)].second;
      int rank = 0;
      while (da[static_cast<size_t>(rank)].second != j) ++rank;
      penalty += std::max(0, rank + 1 - k);
    }
  }
  const double expected = 1.0 - penalty * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0));
  CHECK(penalty > 0.0);
  CHECK(trustworthiness(a, b, k) == Approx(expected).epsilon(1e-15));
  CHECK_THROWS_AS(trustworthiness(a, b, 5), cxr::InvalidArgument);  // k must be < N / 2
  CHECK_THROWS_AS(trustworthiness(a, b.rowRange(0, 9), 2), cxr::InvalidArgument);
}

TEST_CASE("tsne rejects bad input with typed errors", "[tsne]") {
  cv::Mat one(1, 3, CV_64F, cv::Scalar(1));
  CHECK_THROWS_AS(tsne(one), cxr::InvalidArgument);
  CHECK_THROWS_AS(tsne(cv::Mat()), cxr::InvalidArgument);
  CHECK_THROWS_AS(tsne(cv::Mat(10, 3, CV_8U, cv::Scalar(1))), cxr::InvalidArgument);
  CHECK_THROWS_AS(tsne(cv::Mat(10, 3, CV_64FC2, cv::Scalar(1))), cxr::InvalidArgument);

  std::vector<int> labels;
  cv::Mat x = blobs(2, 10, 3, 1, labels);
  TsneParams p;
  p.perplexity = 20;  // N = 20: must be < N
  CHECK_THROWS_AS(tsne(x, p), cxr::InvalidArgument);
  try {
    tsne(x, p);
  } catch (const cxr::InvalidArgument& e) {
    CHECK_THAT(e.what(), Catch::Contains("perplexity") && Catch::Contains("20"));
  }
  p.perplexity = 0;
  CHECK_THROWS_AS(tsne(x, p), cxr::InvalidArgument);
  p = TsneParams{};
  p.perplexity = 5;
  p.iterations = 0;
  CHECK_THROWS_AS(tsne(x, p), cxr::InvalidArgument);
  p.iterations = 10;
  p.theta = -1;
  CHECK_THROWS_AS(tsne(x, p), cxr::InvalidArgument);
  p.theta = 0.5;
  p.early_exaggeration = 0.5;
  CHECK_THROWS_AS(tsne(x, p), cxr::InvalidArgument);
  p.early_exaggeration = 12;

  cv::Mat bad = x.clone();
  bad.at<double>(7, 2) = std::numeric_limits<double>::quiet_NaN();
  try {
    tsne(bad, p);
    FAIL("NaN accepted");
  } catch (const cxr::InvalidArgument& e) {
    CHECK_THAT(e.what(), Catch::Contains("row 7") && Catch::Contains("column 2"));
  }
  bad.at<double>(7, 2) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(tsne(bad, p), cxr::InvalidArgument);

  CHECK_THROWS_AS(parse_tsne_method("fast"), cxr::InvalidArgument);
  CHECK(parse_tsne_method("barnes-hut") == TsneMethod::barnes_hut);
  CHECK(parse_tsne_method("exact") == TsneMethod::exact);
  CHECK(parse_tsne_method("auto") == TsneMethod::automatic);
}

TEST_CASE("tsne handles tiny and degenerate sets", "[tsne]") {
  const TsneMethod method = GENERATE(TsneMethod::exact, TsneMethod::barnes_hut);
  TsneParams p;
  p.method = method;
  p.perplexity = 1.5;
  p.iterations = 300;
  SECTION("two points") {
    cv::Mat x = (cv::Mat_<double>(2, 2) << 0, 0, 1, 1);
    const TsneResult r = tsne(x, p);
    CHECK(cv::checkRange(r.embedding));
    CHECK(cv::norm(r.embedding.row(0), r.embedding.row(1)) > 0);
  }
  SECTION("identical points") {
    cv::Mat x(12, 4, CV_64F, cv::Scalar(3.0));
    const TsneResult r = tsne(x, p);  // PCA has no spread: random start instead
    CHECK(cv::checkRange(r.embedding));
  }
}

TEST_CASE("feature tables: quoted labels, CRLF and a byte order mark; errors name file, line and column", "[tsne]") {
  cxrtest::TempDir t;
  t.touch("ok.csv",
          "\xEF\xBB\xBF"
          "f0,label,f1\r\n1.5,\"Lung Opacity, left\",-2\r\n\r\n 3 ,\"say \"\"no\"\"\",4e1\r\n");
  const FeatureTable ok = read_feature_table(t / "ok.csv");
  REQUIRE(ok.has_label);
  CHECK(ok.labels == std::vector<std::string>{"Lung Opacity, left", "say \"no\""});
  REQUIRE(ok.features.rows == 2);
  REQUIRE(ok.features.cols == 2);
  CHECK(ok.features.at<double>(0, 0) == 1.5);
  CHECK(ok.features.at<double>(0, 1) == -2.0);
  CHECK(ok.features.at<double>(1, 0) == 3.0);
  CHECK(ok.features.at<double>(1, 1) == 40.0);

  t.touch("plain.csv", "a,b,c\n1,2,3\n4,5,6\n7,8,9\n");
  const FeatureTable plain = read_feature_table(t / "plain.csv");
  CHECK_FALSE(plain.has_label);
  CHECK(plain.labels.empty());
  CHECK(plain.features.rows == 3);
  CHECK(plain.features.cols == 3);

  const auto fails = [&](const std::string& text, const std::string& why) {
    t.touch("bad.csv", text);
    CHECK_THROWS_WITH(read_feature_table(t / "bad.csv"), Catch::Contains(t / "bad.csv") && Catch::Contains(why));
  };
  fails("", ":1: empty CSV");
  fails("f0,f1\n1,2\n3\n", ":3: 1 fields, the header has 2");
  fails("f0,f1\n1,2\n\n3,x\n", ":4: column 'f1': expected a finite number, got 'x'");
  fails("f0,f1\n1,2\n3,2-\n", ":3: column 'f1'");
  fails("f0,f1\n1,2\n3,nan\n", ":3: column 'f1'");
  fails("f0,f1\n1,2\n3,\n", ":3: column 'f1'");
  fails("f0,f1\n1,\"2\n", "unterminated quoted field");
  fails("label,f0,label\na,1,b\nc,2,d\n", ":1: two 'label' columns");
  fails("label\na\nb\n", ":1: no feature columns");
  fails("f0\n1\n", "need at least 2 data rows, got 1");
  CHECK_THROWS_AS(read_feature_table(t / "missing.csv"), cxr::IoError);
}
