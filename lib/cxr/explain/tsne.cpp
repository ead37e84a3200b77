// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/explain/tsne.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "cxr/error.hpp"

namespace cxr::explain {
namespace {

// scikit-learn's constants, so that the schedule and the stopping rules match its TSNE.
constexpr double kMachineEpsilon = std::numeric_limits<double>::epsilon();
constexpr double kEntropyTolerance = 1e-5;
constexpr int kSearchSteps = 100;
constexpr int kCheckEvery = 50;                // _N_ITER_CHECK
constexpr int kNoProgressExaggerated = 250;    // _EXPLORATION_N_ITER
constexpr int kNoProgress = 300;               // n_iter_without_progress
constexpr double kMinGradNorm = 1e-7;
constexpr double kMinGain = 0.01;
constexpr double kInitStd = 1e-4;

// Work is cut into fixed blocks of rows and every per-row result lands in its own slot; sums over
// rows are then taken in row order on one thread. That keeps results independent of the number
// of threads and of scheduling.
constexpr int kRowsPerBlock = 128;
constexpr int kTileRows = 16;    // rows sharing one pass over the transposed data
constexpr int kTileCols = 512;   // columns kept hot in cache within a tile
constexpr int kMaxTreeDepth = 48;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int thread_count(int requested, int n_blocks) {
  int t = requested > 0 ? requested : static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, std::min(t, n_blocks));
}

/// A small pool that runs fn(block, worker) over [0, n_blocks). The caller works too and waits
/// only for blocks that some worker has claimed: on a busy machine a worker that has not been
/// scheduled yet costs nothing, instead of one scheduling delay per parallel step.
class WorkPool {
 public:
  using Fn = std::function<void(int, int)>;

  explicit WorkPool(int threads) {
    for (int w = 1; w < threads; ++w) threads_.emplace_back([this, w] { loop(w); });
  }
  ~WorkPool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  int size() const { return static_cast<int>(threads_.size()) + 1; }

  void run(int n_blocks, const Fn& fn) {
    if (threads_.empty() || n_blocks <= 1) {
      for (int b = 0; b < n_blocks; ++b) fn(b, 0);
      return;
    }
    std::uint32_t gen;
    {
      std::lock_guard<std::mutex> lk(m_);
      gen = ++gen_;
      fn_ = &fn;
      n_blocks_ = n_blocks;
      done_.store(0);
      next_.store(static_cast<std::uint64_t>(gen) << 32);
    }
    cv_.notify_all();
    claim(gen, fn, n_blocks, 0);
    while (done_.load() < n_blocks) std::this_thread::yield();
  }

 private:
  // The block counter carries the job's generation, so a worker that wakes late cannot claim a
  // block of a newer job with an older job's function: a successful claim proves the job (and
  // so fn) is still alive.
  void claim(std::uint32_t gen, const Fn& fn, int n_blocks, int worker) {
    for (;;) {
      std::uint64_t cur = next_.load();
      if (static_cast<std::uint32_t>(cur >> 32) != gen) return;
      const int block = static_cast<int>(cur & 0xffffffffu);
      if (block >= n_blocks) return;
      if (!next_.compare_exchange_weak(cur, cur + 1)) continue;
      fn(block, worker);
      done_.fetch_add(1);
    }
  }

  void loop(int worker) {
    std::uint32_t seen = 0;
    for (;;) {
      const Fn* fn;
      int n_blocks;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || gen_ != seen; });
        if (stop_) return;
        seen = gen_;
        fn = fn_;
        n_blocks = n_blocks_;
      }
      claim(seen, *fn, n_blocks, worker);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::uint32_t gen_ = 0;
  const Fn* fn_ = nullptr;
  int n_blocks_ = 0;
  std::atomic<std::uint64_t> next_{0};
  std::atomic<int> done_{0};
};

template <class F>
void parallel_rows(WorkPool& pool, int n, F&& fn) {
  const int n_blocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
  pool.run(n_blocks, [&](int b, int) {
    const int end = std::min(n, (b + 1) * kRowsPerBlock);
    for (int i = b * kRowsPerBlock; i < end; ++i) fn(i);
  });
}

/// Row-major N x D copy of the input in double, checked for finite values.
struct Matrix {
  int n = 0, d = 0;
  std::vector<double> v;
  const double* row(int i) const { return v.data() + static_cast<size_t>(i) * static_cast<size_t>(d); }
};

Matrix to_matrix(const cv::Mat& m, const char* what) {
  if (m.empty()) throw InvalidArgument(std::string(what) + ": empty matrix");
  if (m.channels() != 1 || (m.depth() != CV_32F && m.depth() != CV_64F))
    throw InvalidArgument(std::string(what) + ": expected one-channel CV_32F or CV_64F, got type " +
                          std::to_string(m.type()));
  Matrix out;
  out.n = m.rows;
  out.d = m.cols;
  cv::Mat d64;
  m.convertTo(d64, CV_64F);
  out.v.resize(static_cast<size_t>(out.n) * static_cast<size_t>(out.d));
  for (int i = 0; i < out.n; ++i) {
    const double* src = d64.ptr<double>(i);
    for (int j = 0; j < out.d; ++j) {
      if (!std::isfinite(src[j]))
        throw InvalidArgument(std::string(what) + ": non-finite value " + std::to_string(src[j]) + " at row " +
                              std::to_string(i) + ", column " + std::to_string(j));
      out.v[static_cast<size_t>(i) * static_cast<size_t>(out.d) + static_cast<size_t>(j)] = src[j];
    }
  }
  return out;
}

/// Calls fn(i, dist, worker) for every row i with dist[j] = |x_i - x_j|^2 for all j. Rows are computed
/// in tiles against the transposed data so the innermost loop runs over contiguous columns
/// with no reduction (it vectorises); each distance is summed over dimensions in order, so its
/// value does not depend on tiling or threads. fn is called concurrently for different rows, at
/// most one at a time per worker in [0, pool.size()).
template <class F>
void for_each_distance_row(const Matrix& x, WorkPool& pool, F&& fn) {
  const int n = x.n, d = x.d;
  std::vector<double> xt(static_cast<size_t>(n) * static_cast<size_t>(d));
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < d; ++k) xt[static_cast<size_t>(k) * n + i] = x.row(i)[k];
  const int n_tiles = (n + kTileRows - 1) / kTileRows;
  std::vector<std::vector<double>> scratch(static_cast<size_t>(pool.size()));
  pool.run(n_tiles, [&](int tile, int worker) {
    auto& buf = scratch[static_cast<size_t>(worker)];
    buf.assign(static_cast<size_t>(kTileRows) * static_cast<size_t>(n), 0.0);
    const int i0 = tile * kTileRows, i1 = std::min(n, i0 + kTileRows);
    for (int j0 = 0; j0 < n; j0 += kTileCols) {
      const int j1 = std::min(n, j0 + kTileCols);
      for (int k = 0; k < d; ++k) {
        const double* col = xt.data() + static_cast<size_t>(k) * n;
        for (int i = i0; i < i1; ++i) {
          const double xi = x.row(i)[k];
          double* acc = buf.data() + static_cast<size_t>(i - i0) * n;
          for (int j = j0; j < j1; ++j) {
            const double t = xi - col[j];
            acc[j] += t * t;
          }
        }
      }
    }
    for (int i = i0; i < i1; ++i) fn(i, buf.data() + static_cast<size_t>(i - i0) * n, worker);
  });
}

// --- input affinities ---------------------------------------------------------------------------

/// The k smallest (dist[j], j) over j != self, ascending: a bounded max-heap, so most candidates
/// cost one comparison. Pairs order ties by index, so the set is unique.
void k_nearest(const double* dist, int n, int self, int k, std::vector<std::pair<double, int>>& heap) {
  heap.clear();
  for (int j = 0; j < n; ++j) {
    if (j == self) continue;
    const std::pair<double, int> c(dist[j], j);
    if (static_cast<int>(heap.size()) < k) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end());
    } else if (c < heap.front()) {
      std::pop_heap(heap.begin(), heap.end());
      heap.back() = c;
      std::push_heap(heap.begin(), heap.end());
    }
  }
  std::sort_heap(heap.begin(), heap.end());
}

/// Sparse symmetric P in CSR form (Barnes-Hut) over the k nearest neighbours.
struct SparseP {
  std::vector<int> start;  // n + 1
  std::vector<int> col;
  std::vector<double> val;
};

/// Dense P (exact): n x n, zero diagonal, every off-diagonal entry >= machine epsilon.
std::vector<double> dense_affinities(const Matrix& x, double perplexity, WorkPool& pool) {
  const int n = x.n;
  std::vector<double> p(static_cast<size_t>(n) * n, 0.0);
  // Calibrate each row against every other point.
  std::vector<std::vector<double>> scratch(static_cast<size_t>(pool.size()) * 2,
                                           std::vector<double>(static_cast<size_t>(n - 1)));
  for_each_distance_row(x, pool, [&](int i, const double* dist, int worker) {
    std::vector<double>& others = scratch[static_cast<size_t>(worker) * 2];
    std::vector<double>& cond = scratch[static_cast<size_t>(worker) * 2 + 1];
    for (int j = 0, m = 0; j < n; ++j)
      if (j != i) others[static_cast<size_t>(m++)] = dist[j];
    tsne_calibrate_row(others.data(), n - 1, perplexity, cond.data());
    double* row = p.data() + static_cast<size_t>(i) * n;
    for (int j = 0, m = 0; j < n; ++j)
      if (j != i) row[j] = cond[static_cast<size_t>(m++)];
  });
  // Symmetrise in place and normalise so that P sums to 1 over ordered pairs, as scikit-learn.
  double total = 0.0;
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) {
      const double s = p[static_cast<size_t>(i) * n + j] + p[static_cast<size_t>(j) * n + i];
      p[static_cast<size_t>(i) * n + j] = p[static_cast<size_t>(j) * n + i] = s;
      total += 2.0 * s;
    }
  total = std::max(total, kMachineEpsilon);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (j != i) p[static_cast<size_t>(i) * n + j] = std::max(p[static_cast<size_t>(i) * n + j] / total, kMachineEpsilon);
  return p;
}

SparseP sparse_affinities(const Matrix& x, double perplexity, WorkPool& pool) {
  const int n = x.n;
  const int k = std::min(n - 1, static_cast<int>(3.0 * perplexity + 1.0));
  std::vector<int> nbr(static_cast<size_t>(n) * k);
  std::vector<double> cond(static_cast<size_t>(n) * k);
  // Exact k nearest neighbours (ties broken by index), then calibrate over them.
  std::vector<std::vector<std::pair<double, int>>> cands(static_cast<size_t>(pool.size()));
  std::vector<std::vector<double>> d2s(static_cast<size_t>(pool.size()), std::vector<double>(static_cast<size_t>(k)));
  for_each_distance_row(x, pool, [&](int i, const double* dist, int worker) {
    std::vector<std::pair<double, int>>& cand = cands[static_cast<size_t>(worker)];
    std::vector<double>& d2 = d2s[static_cast<size_t>(worker)];
    k_nearest(dist, n, i, k, cand);
    for (int m = 0; m < k; ++m) {
      d2[static_cast<size_t>(m)] = cand[static_cast<size_t>(m)].first;
      nbr[static_cast<size_t>(i) * k + m] = cand[static_cast<size_t>(m)].second;
    }
    tsne_calibrate_row(d2.data(), k, perplexity, cond.data() + static_cast<size_t>(i) * k);
  });
  // P = (P_cond + P_cond^T) / sum: gather both directions per row, sort by column, merge.
  std::vector<int> count(static_cast<size_t>(n), k);
  for (size_t e = 0; e < nbr.size(); ++e) ++count[static_cast<size_t>(nbr[e])];
  std::vector<int> offset(static_cast<size_t>(n) + 1, 0);
  for (int i = 0; i < n; ++i) offset[static_cast<size_t>(i) + 1] = offset[static_cast<size_t>(i)] + count[static_cast<size_t>(i)];
  std::vector<std::pair<int, double>> entries(static_cast<size_t>(offset.back()));
  std::vector<int> fill(offset.begin(), offset.end() - 1);
  for (int i = 0; i < n; ++i)
    for (int m = 0; m < k; ++m) {
      const int j = nbr[static_cast<size_t>(i) * k + m];
      const double v = cond[static_cast<size_t>(i) * k + m];
      entries[static_cast<size_t>(fill[static_cast<size_t>(i)]++)] = {j, v};
      entries[static_cast<size_t>(fill[static_cast<size_t>(j)]++)] = {i, v};
    }
  SparseP p;
  p.start.assign(static_cast<size_t>(n) + 1, 0);
  p.col.reserve(entries.size());
  p.val.reserve(entries.size());
  for (int i = 0; i < n; ++i) {
    auto b = entries.begin() + offset[static_cast<size_t>(i)], e = entries.begin() + offset[static_cast<size_t>(i) + 1];
    std::sort(b, e, [](const auto& a, const auto& c) { return a.first < c.first; });
    for (auto it = b; it != e; ++it) {
      if (!p.col.empty() && static_cast<int>(p.col.size()) > p.start[static_cast<size_t>(i)] && p.col.back() == it->first)
        p.val.back() += it->second;
      else {
        p.col.push_back(it->first);
        p.val.push_back(it->second);
      }
    }
    p.start[static_cast<size_t>(i) + 1] = static_cast<int>(p.col.size());
  }
  double total = 0.0;
  for (double v : p.val) total += v;
  total = std::max(total, kMachineEpsilon);
  for (double& v : p.val) v /= total;
  return p;
}

// --- initialisation -------------------------------------------------------------------------------

/// Standard normal draws from a seed, by Box-Muller on mt19937_64 (std::normal_distribution is
/// implementation-defined, which would tie results to one standard library).
class Normal {
 public:
  explicit Normal(std::uint64_t seed) : rng_(seed) {}
  double operator()() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1;
    do u1 = uniform(); while (u1 <= 0.0);
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * M_PI * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * M_PI * u2);
  }

 private:
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  std::mt19937_64 rng_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

void orthonormalise(std::vector<double>& q, int d, int b) {
  // Modified Gram-Schmidt on the b columns of a d x b row-major block.
  for (int c = 0; c < b; ++c) {
    for (int p = 0; p < c; ++p) {
      double dot = 0.0;
      for (int r = 0; r < d; ++r) dot += q[static_cast<size_t>(r) * b + c] * q[static_cast<size_t>(r) * b + p];
      for (int r = 0; r < d; ++r) q[static_cast<size_t>(r) * b + c] -= dot * q[static_cast<size_t>(r) * b + p];
    }
    double norm = 0.0;
    for (int r = 0; r < d; ++r) norm += q[static_cast<size_t>(r) * b + c] * q[static_cast<size_t>(r) * b + c];
    norm = std::sqrt(norm);
    for (int r = 0; r < d; ++r) q[static_cast<size_t>(r) * b + c] = norm > 0 ? q[static_cast<size_t>(r) * b + c] / norm : 0.0;
  }
}

/// First two principal components of x (scores, N x 2 interleaved), by randomized subspace
/// iteration as scikit-learn's PCA(svd_solver='randomized'): 10 extra vectors, 7 power steps,
/// then Rayleigh-Ritz. The start block comes from a fixed seed, so the result depends on the
/// data only. Returns false when the data have no spread.
bool pca_scores(const Matrix& x, std::vector<double>& y) {
  const int n = x.n, d = x.d;
  std::vector<double> mean(static_cast<size_t>(d), 0.0);
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < d; ++k) mean[static_cast<size_t>(k)] += x.row(i)[k];
  for (double& m : mean) m /= n;
  std::vector<double> xc(x.v.size());
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < d; ++k)
      xc[static_cast<size_t>(i) * d + k] = x.row(i)[k] - mean[static_cast<size_t>(k)];

  const int b = std::min(d, 12);
  std::vector<double> q(static_cast<size_t>(d) * b), z(static_cast<size_t>(n) * b);
  if (b == d) {
    for (int r = 0; r < d; ++r) q[static_cast<size_t>(r) * b + r] = 1.0;
  } else {
    Normal normal(0x7473656eULL);
    for (double& v : q) v = normal();
    orthonormalise(q, d, b);
  }
  auto project = [&] {  // z = xc q
    std::fill(z.begin(), z.end(), 0.0);
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < d; ++k) {
        const double xv = xc[static_cast<size_t>(i) * d + k];
        for (int c = 0; c < b; ++c) z[static_cast<size_t>(i) * b + c] += xv * q[static_cast<size_t>(k) * b + c];
      }
  };
  if (b < d) {
    for (int step = 0; step < 7; ++step) {
      project();
      std::fill(q.begin(), q.end(), 0.0);  // q = xc^T z
      for (int i = 0; i < n; ++i)
        for (int k = 0; k < d; ++k) {
          const double xv = xc[static_cast<size_t>(i) * d + k];
          for (int c = 0; c < b; ++c) q[static_cast<size_t>(k) * b + c] += xv * z[static_cast<size_t>(i) * b + c];
        }
      orthonormalise(q, d, b);
    }
  }
  project();
  cv::Mat gram(b, b, CV_64F, cv::Scalar(0));
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < b; ++r)
      for (int c = 0; c < b; ++c)
        gram.at<double>(r, c) += z[static_cast<size_t>(i) * b + r] * z[static_cast<size_t>(i) * b + c];
  cv::Mat evals, evecs;  // descending eigenvalues, eigenvectors in rows
  cv::eigen(gram, evals, evecs);
  y.assign(static_cast<size_t>(n) * 2, 0.0);
  for (int c = 0; c < 2 && c < b; ++c) {
    double biggest = 0.0;
    for (int i = 0; i < n; ++i) {
      double s = 0.0;
      for (int r = 0; r < b; ++r) s += z[static_cast<size_t>(i) * b + r] * evecs.at<double>(c, r);
      y[static_cast<size_t>(i) * 2 + c] = s;
      if (std::abs(s) > std::abs(biggest)) biggest = s;
    }
    // Sign convention of scikit-learn's svd_flip: the largest-magnitude score is positive.
    if (biggest < 0)
      for (int i = 0; i < n; ++i) y[static_cast<size_t>(i) * 2 + c] = -y[static_cast<size_t>(i) * 2 + c];
  }
  double m0 = 0.0, v0 = 0.0;
  for (int i = 0; i < n; ++i) m0 += y[static_cast<size_t>(i) * 2];
  m0 /= n;
  for (int i = 0; i < n; ++i) v0 += (y[static_cast<size_t>(i) * 2] - m0) * (y[static_cast<size_t>(i) * 2] - m0);
  const double sd = std::sqrt(v0 / n);
  if (!(sd > 0.0)) return false;
  for (double& v : y) v = v / sd * kInitStd;
  return true;
}

void random_init(int n, std::uint64_t seed, std::vector<double>& y) {
  Normal normal(seed);
  y.resize(static_cast<size_t>(n) * 2);
  for (double& v : y) v = kInitStd * normal();
}

// --- gradients ------------------------------------------------------------------------------------

double sum(const std::vector<double>& v) {
  double total = 0.0;
  for (double x : v) total += x;
  return total;
}

// Where the gradient's parts meet: 4 (attraction - repulsion / Z), attraction already in grad,
// Z summed from its parts per row. Returns Z.
double join_gradient(const std::vector<double>& z_rows, const std::vector<double>& repulsion,
                     std::vector<double>& grad) {
  const double z = sum(z_rows);
  for (size_t c = 0; c < grad.size(); ++c) grad[c] = 4.0 * (grad[c] - repulsion[c] / z);
  return z;
}

/// Computes the KL gradient (into grad, 2N interleaved) of the embedding y, P scaled by
/// `exaggeration`; returns the KL divergence when `want_kl`, else 0.
class Objective {
 public:
  virtual ~Objective() = default;
  virtual double gradient(const std::vector<double>& y, double exaggeration, bool want_kl,
                          std::vector<double>& grad) = 0;
};

class ExactObjective : public Objective {
 public:
  ExactObjective(std::vector<double> p, int n, WorkPool& pool) : p_(std::move(p)), n_(n), pool_(pool),
      z_(static_cast<size_t>(n)), rep_(static_cast<size_t>(n) * 2), kl_(static_cast<size_t>(n)),
      y0_(static_cast<size_t>(n)), y1_(static_cast<size_t>(n)) {}

  double gradient(const std::vector<double>& y, double ex, bool want_kl, std::vector<double>& grad) override {
    const int n = n_;
    // Coordinates as two arrays so the pair loop reads contiguous memory.
    for (int j = 0; j < n; ++j) {
      y0_[static_cast<size_t>(j)] = y[static_cast<size_t>(j) * 2];
      y1_[static_cast<size_t>(j)] = y[static_cast<size_t>(j) * 2 + 1];
    }
    // One pass per row: attraction, repulsion numerator and this row's share of Z, over the
    // points before and after the row's own. Sums run in kLanes interleaved partial sums (fixed
    // order, so still deterministic) which the compiler keeps in vector registers.
    parallel_rows(pool_, n, [&](int i) {
      constexpr int kLanes = 4;
      const double yi0 = y0_[static_cast<size_t>(i)], yi1 = y1_[static_cast<size_t>(i)];
      const double* prow = p_.data() + static_cast<size_t>(i) * n;
      const double* c0 = y0_.data();
      const double* c1 = y1_.data();
      double a0[kLanes] = {}, a1[kLanes] = {}, r0[kLanes] = {}, r1[kLanes] = {}, zz[kLanes] = {};
      auto span = [&](int j, int end) {
        for (; j + kLanes <= end; j += kLanes)
          for (int l = 0; l < kLanes; ++l) {
            const double d0 = yi0 - c0[j + l], d1 = yi1 - c1[j + l];
            const double q = 1.0 / (1.0 + d0 * d0 + d1 * d1);
            const double pq = prow[j + l] * q, qq = q * q;
            a0[l] += pq * d0;
            a1[l] += pq * d1;
            r0[l] += qq * d0;
            r1[l] += qq * d1;
            zz[l] += q;
          }
        for (; j < end; ++j) {
          const double d0 = yi0 - c0[j], d1 = yi1 - c1[j];
          const double q = 1.0 / (1.0 + d0 * d0 + d1 * d1);
          const double pq = prow[j] * q, qq = q * q;
          a0[0] += pq * d0;
          a1[0] += pq * d1;
          r0[0] += qq * d0;
          r1[0] += qq * d1;
          zz[0] += q;
        }
      };
      span(0, i);
      span(i + 1, n);
      auto total = [](const double* v) { return (v[0] + v[1]) + (v[2] + v[3]); };
      grad[static_cast<size_t>(i) * 2] = ex * total(a0);
      grad[static_cast<size_t>(i) * 2 + 1] = ex * total(a1);
      rep_[static_cast<size_t>(i) * 2] = total(r0);
      rep_[static_cast<size_t>(i) * 2 + 1] = total(r1);
      z_[static_cast<size_t>(i)] = total(zz);
    });
    const double z = join_gradient(z_, rep_, grad);
    if (!want_kl) return 0.0;
    parallel_rows(pool_, n, [&](int i) {
      const double yi0 = y[static_cast<size_t>(i) * 2], yi1 = y[static_cast<size_t>(i) * 2 + 1];
      const double* prow = p_.data() + static_cast<size_t>(i) * n;
      double kl = 0.0;
      for (int j = 0; j < n; ++j) {
        if (j == i) continue;
        const double d0 = yi0 - y[static_cast<size_t>(j) * 2], d1 = yi1 - y[static_cast<size_t>(j) * 2 + 1];
        const double q = std::max(1.0 / (1.0 + d0 * d0 + d1 * d1) / z, kMachineEpsilon);
        const double pij = ex * prow[j];
        kl += pij * std::log(pij / q);
      }
      kl_[static_cast<size_t>(i)] = kl;
    });
    return sum(kl_);
  }

 private:
  std::vector<double> p_;
  int n_;
  WorkPool& pool_;
  std::vector<double> z_, rep_, kl_, y0_, y1_;
};

/// Region quadtree over the embedding, rebuilt every iteration. Leaves hold one point, or
/// several when they coincide (or the depth limit is reached); each node keeps its centre of
/// mass and point count for the Barnes-Hut summary. Points are kept in tree order with their
/// coordinates beside them, so leaf scans and queries in that order touch contiguous memory.
class QuadTree {
 public:
  struct Node {
    double mx, my;  // centre of mass
    double side2;   // squared side of the cell
    int count;
    int child;      // first of 4 consecutive children, -1 for a leaf
    int begin, end; // points [begin, end) of the tree order inside the cell
  };

  void build(const std::vector<double>& y) {
    const int n = static_cast<int>(y.size() / 2);
    order_.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) order_[static_cast<size_t>(i)] = i;
    tmp_.resize(static_cast<size_t>(n));
    nodes_.clear();
    double lo0 = y[0], hi0 = y[0], lo1 = y[1], hi1 = y[1];
    for (int i = 1; i < n; ++i) {
      lo0 = std::min(lo0, y[static_cast<size_t>(i) * 2]);
      hi0 = std::max(hi0, y[static_cast<size_t>(i) * 2]);
      lo1 = std::min(lo1, y[static_cast<size_t>(i) * 2 + 1]);
      hi1 = std::max(hi1, y[static_cast<size_t>(i) * 2 + 1]);
    }
    const double half = 0.5 * std::max(hi0 - lo0, hi1 - lo1) * (1.0 + 1e-9) + 1e-300;
    nodes_.push_back({0, 0, 4 * half * half, n, -1, 0, n});
    split(y, 0, 0.5 * (lo0 + hi0), 0.5 * (lo1 + hi1), half, 0);
    px_.resize(static_cast<size_t>(n));
    py_.resize(static_cast<size_t>(n));
    for (int k = 0; k < n; ++k) {
      px_[static_cast<size_t>(k)] = y[static_cast<size_t>(order_[static_cast<size_t>(k)]) * 2];
      py_[static_cast<size_t>(k)] = y[static_cast<size_t>(order_[static_cast<size_t>(k)]) * 2 + 1];
    }
  }

  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<int>& order() const { return order_; }
  const std::vector<double>& px() const { return px_; }
  const std::vector<double>& py() const { return py_; }

 private:
  void split(const std::vector<double>& y, int id, double cx, double cy, double half, int depth) {
    const Node nd = nodes_[static_cast<size_t>(id)];
    double sx = 0, sy = 0;
    bool same = true;
    const double fx = y[static_cast<size_t>(order_[static_cast<size_t>(nd.begin)]) * 2];
    const double fy = y[static_cast<size_t>(order_[static_cast<size_t>(nd.begin)]) * 2 + 1];
    for (int k = nd.begin; k < nd.end; ++k) {
      const int i = order_[static_cast<size_t>(k)];
      sx += y[static_cast<size_t>(i) * 2];
      sy += y[static_cast<size_t>(i) * 2 + 1];
      same = same && y[static_cast<size_t>(i) * 2] == fx && y[static_cast<size_t>(i) * 2 + 1] == fy;
    }
    nodes_[static_cast<size_t>(id)].mx = sx / nd.count;
    nodes_[static_cast<size_t>(id)].my = sy / nd.count;
    if (nd.count <= 1 || same || depth >= kMaxTreeDepth) return;
    // Stable counting sort of the cell's points into quadrants (x >= cx) + 2 (y >= cy).
    int cnt[4] = {0, 0, 0, 0};
    auto quadrant = [&](int i) {
      return (y[static_cast<size_t>(i) * 2] >= cx ? 1 : 0) + (y[static_cast<size_t>(i) * 2 + 1] >= cy ? 2 : 0);
    };
    for (int k = nd.begin; k < nd.end; ++k) ++cnt[quadrant(order_[static_cast<size_t>(k)])];
    int pos[4] = {nd.begin, nd.begin + cnt[0], nd.begin + cnt[0] + cnt[1], nd.begin + cnt[0] + cnt[1] + cnt[2]};
    const int first[4] = {pos[0], pos[1], pos[2], pos[3]};
    for (int k = nd.begin; k < nd.end; ++k) {
      const int i = order_[static_cast<size_t>(k)];
      tmp_[static_cast<size_t>(pos[quadrant(i)]++)] = i;
    }
    std::copy(tmp_.begin() + nd.begin, tmp_.begin() + nd.end, order_.begin() + nd.begin);
    const int child = static_cast<int>(nodes_.size());
    nodes_[static_cast<size_t>(id)].child = child;
    const double h = 0.5 * half;
    for (int q = 0; q < 4; ++q) nodes_.push_back({0, 0, 4 * h * h, cnt[q], -1, first[q], first[q] + cnt[q]});
    for (int q = 0; q < 4; ++q)
      if (cnt[q] > 0) split(y, child + q, cx + ((q & 1) ? h : -h), cy + ((q & 2) ? h : -h), h, depth + 1);
  }

  std::vector<Node> nodes_;
  std::vector<int> order_, tmp_;
  std::vector<double> px_, py_;
};

class BarnesHutObjective : public Objective {
 public:
  BarnesHutObjective(SparseP p, int n, double theta, WorkPool& pool) : p_(std::move(p)), n_(n), theta2_(theta * theta),
      pool_(pool), z_(static_cast<size_t>(n)), rep_(static_cast<size_t>(n) * 2), kl_(static_cast<size_t>(n)) {}

  double gradient(const std::vector<double>& y, double ex, bool want_kl, std::vector<double>& grad) override {
    const int n = n_;
    tree_.build(y);
    // Repulsion (far cells summarised) and each point's share of Z, visiting points in tree
    // order: consecutive queries walk nearly the same cells. Each result lands in the point's
    // own slot, so the visiting order does not change any value.
    parallel_rows(pool_, n, [&](int k) { repulsion(k); });
    // Attraction over the sparse P; the parts meet once Z is known.
    parallel_rows(pool_, n, [&](int i) {
      const double yi0 = y[static_cast<size_t>(i) * 2], yi1 = y[static_cast<size_t>(i) * 2 + 1];
      double a0 = 0, a1 = 0;
      for (int e = p_.start[static_cast<size_t>(i)]; e < p_.start[static_cast<size_t>(i) + 1]; ++e) {
        const int j = p_.col[static_cast<size_t>(e)];
        const double d0 = yi0 - y[static_cast<size_t>(j) * 2], d1 = yi1 - y[static_cast<size_t>(j) * 2 + 1];
        const double pq = p_.val[static_cast<size_t>(e)] / (1.0 + d0 * d0 + d1 * d1);
        a0 += pq * d0;
        a1 += pq * d1;
      }
      grad[static_cast<size_t>(i) * 2] = ex * a0;
      grad[static_cast<size_t>(i) * 2 + 1] = ex * a1;
    });
    const double z = join_gradient(z_, rep_, grad);
    if (!want_kl) return 0.0;
    parallel_rows(pool_, n, [&](int i) {
      const double yi0 = y[static_cast<size_t>(i) * 2], yi1 = y[static_cast<size_t>(i) * 2 + 1];
      double kl = 0;
      for (int e = p_.start[static_cast<size_t>(i)]; e < p_.start[static_cast<size_t>(i) + 1]; ++e) {
        const int j = p_.col[static_cast<size_t>(e)];
        const double d0 = yi0 - y[static_cast<size_t>(j) * 2], d1 = yi1 - y[static_cast<size_t>(j) * 2 + 1];
        const double q = 1.0 / (1.0 + d0 * d0 + d1 * d1) / z;
        const double pij = ex * p_.val[static_cast<size_t>(e)];
        kl += pij * std::log(std::max(pij, kMachineEpsilon) / std::max(q, kMachineEpsilon));
      }
      kl_[static_cast<size_t>(i)] = kl;
    });
    return sum(kl_);
  }

 private:
  /// Repulsion on the point at position k of the tree order.
  void repulsion(int k) {
    const auto& nodes = tree_.nodes();
    const double* px = tree_.px().data();
    const double* py = tree_.py().data();
    const double yi0 = px[k], yi1 = py[k];
    double r0 = 0, r1 = 0, z = 0;
    int stack[4 * kMaxTreeDepth + 8];
    int top = 0;
    stack[top++] = 0;
    while (top > 0) {
      const auto& nd = nodes[static_cast<size_t>(stack[--top])];
      if (nd.child < 0) {
        for (int m = nd.begin; m < nd.end; ++m) {
          if (m == k) continue;
          const double d0 = yi0 - px[m], d1 = yi1 - py[m];
          const double q = 1.0 / (1.0 + d0 * d0 + d1 * d1);
          z += q;
          r0 += q * q * d0;
          r1 += q * q * d1;
        }
        continue;
      }
      const double d0 = yi0 - nd.mx, d1 = yi1 - nd.my;
      const double dist2 = d0 * d0 + d1 * d1;
      if (nd.side2 < theta2_ * dist2) {
        const double q = 1.0 / (1.0 + dist2);
        const double cq = nd.count * q;
        z += cq;
        r0 += cq * q * d0;
        r1 += cq * q * d1;
      } else {
        for (int c = 3; c >= 0; --c)
          if (nodes[static_cast<size_t>(nd.child + c)].count > 0) stack[top++] = nd.child + c;
      }
    }
    const size_t i = static_cast<size_t>(tree_.order()[static_cast<size_t>(k)]);
    rep_[i * 2] = r0;
    rep_[i * 2 + 1] = r1;
    z_[i] = z;
  }

  SparseP p_;
  int n_;
  double theta2_;
  WorkPool& pool_;
  QuadTree tree_;
  std::vector<double> z_, rep_, kl_;
};

/// scikit-learn's _gradient_descent: momentum, per-coordinate gains, progress checks every 50
/// iterations. Iterations [it, n_iter); returns the last iteration run.
int descend(Objective& obj, std::vector<double>& y, int it, int n_iter, double momentum, double rate,
            double exaggeration, int no_progress) {
  std::vector<double> update(y.size(), 0.0), gains(y.size(), 1.0), grad(y.size(), 0.0);
  double best_error = std::numeric_limits<double>::max();
  int best_iter = it, i = it;
  for (; i < n_iter; ++i) {
    const bool check = (i + 1) % kCheckEvery == 0;
    const double error = obj.gradient(y, exaggeration, check, grad);
    double norm2 = 0.0;
    for (size_t c = 0; c < y.size(); ++c) {
      // Grow the step where the gradient keeps its direction, shrink it where it flips.
      if (update[c] * grad[c] < 0.0)
        gains[c] += 0.2;
      else
        gains[c] *= 0.8;
      gains[c] = std::max(gains[c], kMinGain);
      const double g = grad[c] * gains[c];
      norm2 += g * g;
      update[c] = momentum * update[c] - rate * g;
      y[c] += update[c];
    }
    if (check) {
      if (error < best_error) {
        best_error = error;
        best_iter = i;
      } else if (i - best_iter > no_progress) {
        break;
      }
      if (std::sqrt(norm2) <= kMinGradNorm) break;
    }
  }
  return std::min(i, n_iter - 1);
}

}  // namespace

double tsne_calibrate_row(const double* sq_dist, int n, double perplexity, double* p) {
  if (n < 1) throw InvalidArgument("tsne_calibrate_row: need at least 1 neighbour, got " + std::to_string(n));
  if (!(perplexity > 0.0))
    throw InvalidArgument("tsne_calibrate_row: perplexity must be > 0, got " + std::to_string(perplexity));
  // Distances are shifted by their minimum: the distribution is unchanged and exp() cannot
  // underflow to all zeros for far-apart data.
  double dmin = sq_dist[0];
  for (int j = 1; j < n; ++j) dmin = std::min(dmin, sq_dist[j]);
  const double target = std::log(perplexity);
  double beta = 1.0, lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  for (int step = 0; step < kSearchSteps; ++step) {
    double sum = 0.0;
    for (int j = 0; j < n; ++j) sum += (p[j] = std::exp(-(sq_dist[j] - dmin) * beta));
    double mean_d = 0.0;
    for (int j = 0; j < n; ++j) {
      p[j] /= sum;
      mean_d += (sq_dist[j] - dmin) * p[j];
    }
    const double diff = std::log(sum) + beta * mean_d - target;
    if (std::abs(diff) <= kEntropyTolerance) break;
    if (diff > 0) {
      lo = beta;
      beta = std::isinf(hi) ? beta * 2.0 : 0.5 * (beta + hi);
    } else {
      hi = beta;
      beta = std::isinf(lo) ? beta * 0.5 : 0.5 * (beta + lo);
    }
  }
  return beta;
}

TsneResult tsne(const cv::Mat& data, const TsneParams& params) {
  const auto t0 = Clock::now();
  const Matrix x = to_matrix(data, "tsne");
  const int n = x.n;
  if (n < 2) throw InvalidArgument("tsne: need at least 2 points, got " + std::to_string(n));
  if (!(params.perplexity > 0.0) || !(params.perplexity < n))
    throw InvalidArgument("tsne: perplexity must be in (0, N) = (0, " + std::to_string(n) + "), got " +
                          std::to_string(params.perplexity));
  if (params.iterations < 1)
    throw InvalidArgument("tsne: iterations must be >= 1, got " + std::to_string(params.iterations));
  if (!(params.early_exaggeration >= 1.0))
    throw InvalidArgument("tsne: early exaggeration must be >= 1, got " + std::to_string(params.early_exaggeration));
  if (params.exaggeration_iterations < 0)
    throw InvalidArgument("tsne: exaggeration iterations must be >= 0, got " +
                          std::to_string(params.exaggeration_iterations));
  if (!(params.theta >= 0.0)) throw InvalidArgument("tsne: theta must be >= 0, got " + std::to_string(params.theta));
  if (std::isnan(params.learning_rate) || std::isinf(params.learning_rate))
    throw InvalidArgument("tsne: learning rate must be finite, got " + std::to_string(params.learning_rate));

  TsneResult result;
  result.method = params.method;
  if (result.method == TsneMethod::automatic)
    result.method = n <= kTsneAutoExactMaxPoints ? TsneMethod::exact : TsneMethod::barnes_hut;
  if (result.method == TsneMethod::exact && n > kTsneExactMaxPoints)
    throw InvalidArgument("tsne: exact method takes at most " + std::to_string(kTsneExactMaxPoints) +
                          " points (dense N x N affinities), got " + std::to_string(n) + "; use barnes-hut");
  result.learning_rate = params.learning_rate > 0.0
                             ? params.learning_rate
                             : std::max(n / params.early_exaggeration / 4.0, 50.0);

  WorkPool pool(thread_count(params.threads, (n + kRowsPerBlock - 1) / kRowsPerBlock));
  std::unique_ptr<Objective> objective;
  if (result.method == TsneMethod::exact)
    objective = std::make_unique<ExactObjective>(dense_affinities(x, params.perplexity, pool), n, pool);
  else
    objective = std::make_unique<BarnesHutObjective>(sparse_affinities(x, params.perplexity, pool), n,
                                                     params.theta, pool);
  result.affinity_seconds = seconds_since(t0);

  const auto t1 = Clock::now();
  std::vector<double> y;
  if (params.init == TsneInit::random || !pca_scores(x, y)) random_init(n, params.seed, y);

  // Exaggerated exploration at low momentum, then the plain objective at higher momentum;
  // each phase starts with fresh gains and velocities, as scikit-learn.
  const int explore = std::min(params.exaggeration_iterations, params.iterations);
  int last = -1;
  if (explore > 0)
    last = descend(*objective, y, 0, explore, 0.5, result.learning_rate, params.early_exaggeration,
                   kNoProgressExaggerated);
  if (last + 1 < params.iterations)
    last = descend(*objective, y, last + 1, params.iterations, 0.8, result.learning_rate, 1.0, kNoProgress);
  result.iterations = last + 1;

  std::vector<double> grad(y.size());
  result.kl_divergence = objective->gradient(y, 1.0, true, grad);
  result.embedding.create(n, 2, CV_64F);
  for (int i = 0; i < n; ++i) {
    result.embedding.at<double>(i, 0) = y[static_cast<size_t>(i) * 2];
    result.embedding.at<double>(i, 1) = y[static_cast<size_t>(i) * 2 + 1];
  }
  result.optimise_seconds = seconds_since(t1);
  return result;
}

double trustworthiness(const cv::Mat& data, const cv::Mat& embedding, int k, int threads) {
  const Matrix x = to_matrix(data, "trustworthiness data");
  const Matrix e = to_matrix(embedding, "trustworthiness embedding");
  const int n = x.n;
  if (e.n != n)
    throw InvalidArgument("trustworthiness: data has " + std::to_string(n) + " rows, embedding " +
                          std::to_string(e.n));
  if (k < 1 || !(k < n / 2.0))
    throw InvalidArgument("trustworthiness: k must be in [1, N/2) with N = " + std::to_string(n) + ", got " +
                          std::to_string(k));
  WorkPool pool(thread_count(threads, (n + kTileRows - 1) / kTileRows));
  // k nearest neighbours in the embedding.
  std::vector<int> nbr(static_cast<size_t>(n) * k);
  std::vector<std::vector<std::pair<double, int>>> cands(static_cast<size_t>(pool.size()));
  for_each_distance_row(e, pool, [&](int i, const double* dist, int worker) {
    std::vector<std::pair<double, int>>& cand = cands[static_cast<size_t>(worker)];
    k_nearest(dist, n, i, k, cand);
    for (int m = 0; m < k; ++m) nbr[static_cast<size_t>(i) * k + m] = cand[static_cast<size_t>(m)].second;
  });
  // Rank in the data of each embedding neighbour: 1 + the number of points closer to i.
  std::vector<double> penalty(static_cast<size_t>(n), 0.0);
  for_each_distance_row(x, pool, [&](int i, const double* dist, int) {
    long long sum = 0;
    for (int m = 0; m < k; ++m) {
      const int j = nbr[static_cast<size_t>(i) * k + m];
      const double dj = dist[j];
      long long rank = 1;
      for (int o = 0; o < n; ++o)
        if (o != i && (dist[o] < dj || (dist[o] == dj && o < j))) ++rank;
      if (rank > k) sum += rank - k;
    }
    penalty[static_cast<size_t>(i)] = static_cast<double>(sum);
  });
  double total = 0.0;
  for (double v : penalty) total += v;
  const double nn = n, kk = k;
  return 1.0 - total * (2.0 / (nn * kk * (2.0 * nn - 3.0 * kk - 1.0)));
}

std::string to_string(TsneMethod method) {
  switch (method) {
    case TsneMethod::exact: return "exact";
    case TsneMethod::barnes_hut: return "barnes-hut";
    case TsneMethod::automatic: break;
  }
  return "auto";
}

TsneMethod parse_tsne_method(const std::string& name) {
  if (name == "exact") return TsneMethod::exact;
  if (name == "barnes-hut" || name == "barnes_hut") return TsneMethod::barnes_hut;
  if (name == "auto") return TsneMethod::automatic;
  throw InvalidArgument("tsne: unknown method '" + name + "' (expected exact, barnes-hut or auto)");
}

}  // namespace cxr::explain
