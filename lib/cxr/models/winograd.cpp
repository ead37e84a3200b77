// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/winograd.hpp"

#include <dlfcn.h>
#include <torch/torch.h>

#include <algorithm>

#include "cxr/error.hpp"
#include "cxr/models/torch_compat.hpp"

namespace cxr::models {
namespace {

// Fortran BLAS sgemm, as LibTorch itself calls it (column-major).
using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

Sgemm blas_sgemm() {
  static const Sgemm f = reinterpret_cast<Sgemm>(dlsym(RTLD_DEFAULT, "sgemm_"));
  return f;
}

// Tiles per pass: the transformed inputs and products of one pass (16 x tiles x channels each)
// stay within a few MiB, and every pass streams the transformed weights once. 192 measured best
// or within a few % of best on ResNet-34's layers at batch 8 on an AVX2 core.
constexpr int64_t kTilesPerPass = 192;

#if defined(__x86_64__)
#define CXR_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CXR_VECTOR_CLONES
#endif

constexpr int kLanes = 8;  // channels per step of the transforms (one AVX register)

struct Geometry {
  int64_t h, w, tiles_w, tiles_per_image;
};

// Input transform V = B^T d B of tiles [t0, t0 + n) for all C channels, into v[16][n][C].
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Tile (ty, tx) reads rows 2ty-1 .. 2ty+2 and
// columns 2tx-1 .. 2tx+2 (padding 1, zeros outside).
CXR_VECTOR_CLONES void input_transform(const float* x, int64_t c_total,
                                                                       const Geometry& g, int64_t t0, int64_t n,
                                                                       float* v) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t tile = t0 + i;
    const int64_t img = tile / g.tiles_per_image, r = tile % g.tiles_per_image;
    const int64_t y0 = (r / g.tiles_w) * 2 - 1, x0 = (r % g.tiles_w) * 2 - 1;
    const float* base = x + img * g.h * g.w * c_total;
    const bool inside = y0 >= 0 && x0 >= 0 && y0 + 4 <= g.h && x0 + 4 <= g.w;
    for (int64_t c = 0; c < c_total; c += kLanes) {
      float d[4][4][kLanes];
      for (int a = 0; a < 4; ++a) {
        for (int b = 0; b < 4; ++b) {
          const int64_t yy = y0 + a, xx = x0 + b;
          if (inside || (yy >= 0 && yy < g.h && xx >= 0 && xx < g.w)) {
            const float* p = base + (yy * g.w + xx) * c_total + c;
            for (int l = 0; l < kLanes; ++l) d[a][b][l] = p[l];
          } else {
            for (int l = 0; l < kLanes; ++l) d[a][b][l] = 0.f;
          }
        }
      }
      float t[4][4][kLanes];  // B^T d
      for (int b = 0; b < 4; ++b) {
        for (int l = 0; l < kLanes; ++l) {
          t[0][b][l] = d[0][b][l] - d[2][b][l];
          t[1][b][l] = d[1][b][l] + d[2][b][l];
          t[2][b][l] = d[2][b][l] - d[1][b][l];
          t[3][b][l] = d[1][b][l] - d[3][b][l];
        }
      }
      for (int a = 0; a < 4; ++a) {  // (B^T d) B
        float* o0 = v + ((a * 4 + 0) * n + i) * c_total + c;
        float* o1 = v + ((a * 4 + 1) * n + i) * c_total + c;
        float* o2 = v + ((a * 4 + 2) * n + i) * c_total + c;
        float* o3 = v + ((a * 4 + 3) * n + i) * c_total + c;
        for (int l = 0; l < kLanes; ++l) {
          o0[l] = t[a][0][l] - t[a][2][l];
          o1[l] = t[a][1][l] + t[a][2][l];
          o2[l] = t[a][2][l] - t[a][1][l];
          o3[l] = t[a][1][l] - t[a][3][l];
        }
      }
    }
  }
}

// Output transform Y = A^T m A of tiles [t0, t0 + n) from m[16][n][K], plus bias, plus the
// residual, then ReLU, into the 2x2 outputs of each tile that fall inside the image.
// A^T = [1 1 1 0; 0 1 -1 -1].
CXR_VECTOR_CLONES void output_transform(const float* m, const float* bias,
                                                                        const float* res, float* y, int64_t k_total,
                                                                        const Geometry& g, int64_t t0, int64_t n,
                                                                        bool relu) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t tile = t0 + i;
    const int64_t img = tile / g.tiles_per_image, r = tile % g.tiles_per_image;
    const int64_t y0 = (r / g.tiles_w) * 2, x0 = (r % g.tiles_w) * 2;
    for (int64_t k = 0; k < k_total; k += kLanes) {
      float s[2][4][kLanes];  // A^T m
      for (int b = 0; b < 4; ++b) {
        const float* m0 = m + ((0 * 4 + b) * n + i) * k_total + k;
        const float* m1 = m + ((1 * 4 + b) * n + i) * k_total + k;
        const float* m2 = m + ((2 * 4 + b) * n + i) * k_total + k;
        const float* m3 = m + ((3 * 4 + b) * n + i) * k_total + k;
        for (int l = 0; l < kLanes; ++l) {
          s[0][b][l] = m0[l] + m1[l] + m2[l];
          s[1][b][l] = m1[l] - m2[l] - m3[l];
        }
      }
      for (int a = 0; a < 2 && y0 + a < g.h; ++a) {
        for (int b = 0; b < 2 && x0 + b < g.w; ++b) {
          const int64_t off = ((img * g.h + y0 + a) * g.w + x0 + b) * k_total + k;
          float out[kLanes];
          for (int l = 0; l < kLanes; ++l) {
            out[l] = (b == 0 ? s[a][0][l] + s[a][1][l] + s[a][2][l] : s[a][1][l] - s[a][2][l] - s[a][3][l]) +
                     bias[k + l];
          }
          if (res) {
            for (int l = 0; l < kLanes; ++l) out[l] += res[off + l];
          }
          if (relu) {
            for (int l = 0; l < kLanes; ++l) out[l] = out[l] > 0.f ? out[l] : 0.f;
          }
          for (int l = 0; l < kLanes; ++l) y[off + l] = out[l];
        }
      }
    }
  }
}

bool channels_last_contiguous(const torch::Tensor& t) {
  return t.dim() == 4 && t.is_contiguous(torch::MemoryFormat::ChannelsLast);
}

}  // namespace

bool WinogradConv::have_blas() { return blas_sgemm() != nullptr; }

bool WinogradConv::applies_to(const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  const torch::ExpandingArray<2>* padding = explicit_padding(o);
  if (!padding) return false;
  const auto& pad = *padding;
  const auto& w = conv.weight;
  return (*o.kernel_size())[0] == 3 && (*o.kernel_size())[1] == 3 && (*o.stride())[0] == 1 && (*o.stride())[1] == 1 &&
         (*pad)[0] == 1 && (*pad)[1] == 1 && (*o.dilation())[0] == 1 && (*o.dilation())[1] == 1 && o.groups() == 1 &&
         o.in_channels() % kLanes == 0 && o.out_channels() % kLanes == 0 && w.scalar_type() == torch::kFloat &&
         w.device().is_cpu();
}

WinogradConv::WinogradConv(const torch::nn::Conv2dImpl& conv, Gemm gemm) {
  if (!applies_to(conv)) {
    throw InvalidArgument("Winograd path: needs a 3x3 convolution, stride 1, padding 1, one group, channels in "
                          "multiples of 8, fp32 on the CPU");
  }
  if (gemm == Gemm::Blas && !have_blas()) throw InvalidArgument("Winograd path: this process has no BLAS sgemm");
  gemm_ = gemm == Gemm::Auto ? (have_blas() ? Gemm::Blas : Gemm::Torch) : gemm;
  torch::NoGradGuard no_grad;
  out_ = conv.options.out_channels();
  in_ = conv.options.in_channels();
  // U = G g G^T per (output, input) channel pair, stored as 16 matrices C x K;
  // G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. Computed in double, then rounded once.
  const auto g = conv.weight.detach().to(torch::kDouble).contiguous();  // K x C x 3 x 3
  const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  auto u = torch::empty({16, in_, out_}, torch::kDouble);
  const double* gp = g.data_ptr<double>();
  double* up = u.data_ptr<double>();
  for (int64_t k = 0; k < out_; ++k) {
    for (int64_t c = 0; c < in_; ++c) {
      const double* f = gp + (k * in_ + c) * 9;
      double gf[4][3];
      for (int a = 0; a < 4; ++a) {
        for (int j = 0; j < 3; ++j) gf[a][j] = G[a][0] * f[j] + G[a][1] * f[3 + j] + G[a][2] * f[6 + j];
      }
      for (int a = 0; a < 4; ++a) {
        for (int b = 0; b < 4; ++b) {
          up[((a * 4 + b) * in_ + c) * out_ + k] = gf[a][0] * G[b][0] + gf[a][1] * G[b][1] + gf[a][2] * G[b][2];
        }
      }
    }
  }
  u_ = u.to(torch::kFloat).contiguous();
  bias_ = conv.bias.defined() ? conv.bias.detach().to(torch::kFloat).contiguous() : torch::zeros({out_});
}

torch::Tensor WinogradConv::operator()(const torch::Tensor& x, const torch::Tensor* residual, bool relu) const {
  if (!channels_last_contiguous(x) || x.scalar_type() != torch::kFloat || !x.device().is_cpu() || x.size(1) != in_) {
    throw InvalidArgument("Winograd path: input must be fp32 on the CPU, channels-last, with " + std::to_string(in_) +
                          " channels");
  }
  const int64_t batch = x.size(0), h = x.size(2), w = x.size(3);
  auto y = torch::empty({batch, out_, h, w}, x.options().memory_format(torch::MemoryFormat::ChannelsLast));
  if (residual && (!channels_last_contiguous(*residual) || residual->sizes() != y.sizes())) {
    throw InvalidArgument("Winograd path: the residual must be channels-last and shaped as the output");
  }
  const Geometry geo{h, w, (w + 1) / 2, ((w + 1) / 2) * ((h + 1) / 2)};
  const int64_t tiles = batch * geo.tiles_per_image;
  const int64_t pass = std::min(tiles, kTilesPerPass);
  auto v = torch::empty({16, pass, in_});
  auto m = torch::empty({16, pass, out_});
  const float* xp = x.data_ptr<float>();
  const float* up = u_.data_ptr<float>();
  const float* bp = bias_.data_ptr<float>();
  const float* rp = residual ? residual->data_ptr<float>() : nullptr;
  float* vp = v.data_ptr<float>();
  float* mp = m.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t C = in_, K = out_;
  for (int64_t t0 = 0; t0 < tiles; t0 += pass) {
    const int64_t n = std::min(pass, tiles - t0);
    input_transform(xp, C, geo, t0, n, vp);
    if (gemm_ == Gemm::Blas) {
      // Row-major M[p] (n x K) = V[p] (n x C) U[p] (C x K), as column-major M^T = U^T V^T.
      const Sgemm sgemm = blas_sgemm();
      const float one = 1.f, zero = 0.f;
      const int ki = static_cast<int>(K), ni = static_cast<int>(n), ci = static_cast<int>(C);
      for (int64_t p = 0; p < 16; ++p) {
        sgemm("N", "N", &ki, &ni, &ci, &one, up + p * C * K, &ki, vp + p * n * C, &ci, &zero, mp + p * n * K, &ki);
      }
    } else {
      auto mv = torch::from_blob(mp, {16, n, K});
      torch::bmm_out(mv, torch::from_blob(vp, {16, n, C}), u_);
    }
    output_transform(mp, bp, rp, yp, K, geo, t0, n, relu);
  }
  return y;
}

}  // namespace cxr::models
