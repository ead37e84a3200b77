// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Depthwise convolution (one filter per channel), NHWC, fp32, on AVX-512: the XNNPACK engine's
/// kernel for MobileNetV3's and EfficientNet's 3x3 stride-1 and 5x5 depthwise layers (3x3 stride 2
/// stays on XNNPACK's, which measured faster).
///
/// XNNPACK's depthwise kernels read each tap's weights from memory next to its input (two loads
/// per multiply-add) through an indirection buffer of input pointers. This one holds a block of 16
/// channels' weights in registers while it walks an output row (one load per multiply-add, the
/// input addressed directly), and applies the layer's clamp and its SiLU or Hardswish to each
/// output vector before storing it, so that no separate activation pass reads the output again.
/// Channels need not be a multiple of 16 (the last block is masked).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cxr::engine {

/// Whether this CPU runs DepthwiseConv (x86-64 with AVX-512F).
bool depthwise_kernel_available();

enum class DepthwisePost { None, SiLU, Hardswish };

class DepthwiseConv {
 public:
  /// `weight`: [channels][k][k] (torch's [C, 1, k, k]), `bias`: [channels]; square kernel of 3
  /// (stride 1) or 5 (stride 1 or 2), the same padding on every side; output clamped to [lo, hi],
  /// then `post`.
  DepthwiseConv(size_t channels, uint32_t k, uint32_t stride, uint32_t pad, const float* weight, const float* bias,
                float lo, float hi, DepthwisePost post);

  /// Whether a layer of this shape is one this kernel runs.
  static bool supports(uint32_t k, uint32_t stride);

  size_t out_size(size_t in) const { return (in + 2 * pad_ - k_) / stride_ + 1; }

  /// Output rows [first, first + count) of a batch, counted across samples (row r is row r % oh of
  /// sample r / oh): `in` [n, ih, iw, C] and `out` [n, oh, ow, C], NHWC. Rows may run on
  /// several threads at once.
  void run_rows(const float* in, size_t ih, size_t iw, float* out, size_t first, size_t count) const;

 private:
  size_t c_;
  uint32_t k_, stride_, pad_;
  float lo_, hi_;
  DepthwisePost post_;
  std::vector<float> packed_;  // per block of 16 channels: bias[16], then weight[k * k][16]
};

}  // namespace cxr::engine
