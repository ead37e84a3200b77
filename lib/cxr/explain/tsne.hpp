// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// t-SNE (van der Maaten & Hinton 2008) to two dimensions, with exact gradients for small sets
/// and Barnes-Hut gradients (van der Maaten 2014) for large ones, following scikit-learn's
/// `TSNE` (1.2) schedule: early exaggeration 12 for 250 iterations at momentum 0.5, then momentum
/// 0.8; per-coordinate gains; learning rate 'auto'; PCA initialisation scaled to std 1e-4.
/// Results are bitwise reproducible for a given input, parameter set and build, whatever the
/// number of threads.
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>

namespace cxr::explain {

enum class TsneMethod {
  automatic,   ///< exact up to kTsneAutoExactMaxPoints points, Barnes-Hut above
  exact,       ///< O(N^2) per iteration, dense P; at most kTsneExactMaxPoints points
  barnes_hut,  ///< sparse P over 3 * perplexity neighbours, quadtree repulsion, O(N log N)
};

enum class TsneInit {
  pca,     ///< first two principal components, scaled so that the first has std 1e-4
  random,  ///< i.i.d. normal with std 1e-4 drawn from the seed
};

/// Largest set `automatic` solves exactly. Up to here exact gradients cost about as much as
/// Barnes-Hut ones and carry no approximation error.
constexpr int kTsneAutoExactMaxPoints = 1000;
/// Largest set `exact` accepts: it keeps the dense N x N affinity matrix (8 N^2 bytes).
constexpr int kTsneExactMaxPoints = 10000;

struct TsneParams {
  double perplexity = 30.0;          ///< effective number of neighbours; 0 < perplexity < N
  int iterations = 1000;             ///< total, exaggeration phase included; >= 1
  double learning_rate = 0.0;        ///< <= 0: 'auto' = max(N / early_exaggeration / 4, 50)
  double early_exaggeration = 12.0;  ///< >= 1
  int exaggeration_iterations = 250;
  double theta = 0.5;                ///< Barnes-Hut opening angle; 0 visits every point
  TsneMethod method = TsneMethod::automatic;
  TsneInit init = TsneInit::pca;
  std::uint64_t seed = 0;            ///< drives `random` initialisation; PCA initialisation ignores it
  int threads = 0;                   ///< 0: hardware concurrency; never changes the result
};

struct TsneResult {
  cv::Mat embedding;             ///< N x 2, CV_64F, one row per input row in order
  TsneMethod method = TsneMethod::exact;  ///< the method used (never `automatic`)
  double kl_divergence = 0.0;    ///< KL(P || Q) of the returned embedding (Barnes-Hut: approximate Q)
  double learning_rate = 0.0;    ///< the rate used
  int iterations = 0;            ///< run; fewer than asked when progress stalled as in scikit-learn
  double affinity_seconds = 0.0; ///< neighbours + perplexity calibration + symmetrisation
  double optimise_seconds = 0.0; ///< initialisation + gradient descent
};

/// Embed the rows of `data` (N x D, CV_32F or CV_64F, one channel, N >= 2, finite) in 2-D.
/// Throws InvalidArgument on bad input or parameters.
TsneResult tsne(const cv::Mat& data, const TsneParams& params = {});

/// Calibrate one point's conditional distribution: find beta = 1 / (2 sigma^2) such that
/// p_j = exp(-beta d_j) / sum exp(-beta d_k) has entropy log(perplexity) (nats), by bisection
/// as scikit-learn's `_binary_search_perplexity` (tolerance 1e-5, at most 100 steps).
/// `sq_dist` holds n squared distances to the candidate neighbours (the point itself
/// excluded); p receives n probabilities summing to 1. Returns beta.
double tsne_calibrate_row(const double* sq_dist, int n, double perplexity, double* p);

/// scikit-learn's `sklearn.manifold.trustworthiness` with Euclidean distances: 1 minus the
/// penalty for points among the k nearest in `embedding` that are not among the k nearest in
/// `data`, weighted by their rank in `data`. Ties in rank are broken by row index.
/// Requires 1 <= k < N / 2. O(N^2 (D + k)) time, O(N) memory per thread.
double trustworthiness(const cv::Mat& data, const cv::Mat& embedding, int k, int threads = 0);

/// "exact", "barnes-hut" or "auto".
std::string to_string(TsneMethod method);
/// Inverse of to_string ("barnes_hut" also accepted); throws InvalidArgument naming the value.
TsneMethod parse_tsne_method(const std::string& name);

}  // namespace cxr::explain
