// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// 3x3 convolutions (stride 1, padding 1) by Winograd's minimal filtering F(2x2, 3x3), for
/// inference on the CPU.
///
/// A direct 3x3 convolution does 36 multiply-adds per 2x2 output tile and channel pair; F(2x2, 3x3)
/// does 16, as 16 matrix products (one per point of the transformed 4x4 tile) between
/// transformed inputs and transformed weights, with cheap add-only transforms around them.
/// On an AVX2 core, oneDNN's direct kernels already run ResNet-34's 3x3 layers near the core's
/// peak, so fewer multiplications is what is left to gain; the products go to the BLAS under
/// LibTorch (OpenBLAS), whose sgemm runs these shapes at or above oneDNN's rate.
///
/// Activations are channels-last (NHWC) so that the transforms work on 8 neighbouring channels
/// at a time. Numerically, F(2x2, 3x3) sums the same products in another order: outputs differ
/// from a direct convolution by float rounding only (within 1e-5 of the largest output in the lib
/// test; ResNet-34's probabilities within 1.2e-7 of torchvision's in parity_infer).
#include <torch/nn/modules/conv.h>
#include <torch/types.h>

namespace cxr::models {

class WinogradConv {
 public:
  /// Where the 16 products run: the BLAS LibTorch uses (its sgemm, when the process exposes one),
  /// or LibTorch's batched matrix product.
  enum class Gemm { Auto, Blas, Torch };

  /// Whether `conv` qualifies: 3x3, stride 1, padding 1, dilation 1, one group, input and
  /// output channels multiples of 8, fp32 on the CPU.
  static bool applies_to(const torch::nn::Conv2dImpl& conv);
  /// Whether the process has a BLAS sgemm for Gemm::Blas.
  static bool have_blas();

  /// Transforms `conv`'s current weight and bias (BatchNorm folded in beforehand). Throws
  /// cxr::InvalidArgument when !applies_to(conv), or for Gemm::Blas without a BLAS.
  explicit WinogradConv(const torch::nn::Conv2dImpl& conv, Gemm gemm = Gemm::Auto);

  /// The convolution of `x` (N, C, H, W; fp32, channels-last), plus `residual` (the output's
  /// shape, channels-last) when given, then ReLU when `relu`. Returns a channels-last tensor.
  /// Several threads may call this at once (the transformed weights are only read).
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor* residual, bool relu) const;

  Gemm gemm() const { return gemm_; }

 private:
  torch::Tensor u_;     // 16 x C x K transformed weights
  torch::Tensor bias_;  // K
  int64_t in_ = 0, out_ = 0;
  Gemm gemm_ = Gemm::Torch;
};

}  // namespace cxr::models
