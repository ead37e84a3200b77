// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// SiLU (x * sigmoid(x)) in place, vectorised.
///
/// LibTorch 1.13 as Debian builds it computes SiLU at ~0.6 G values/s on one AVX2 core (the
/// exponential goes through scalar expf): EfficientNet-B1 spent ~9 of its ~42 ms per 224 px scan
/// in SiLU. This kernel evaluates exp with a Cephes-style polynomial (range reduction by ln 2,
/// then a degree-6 polynomial) on 8 floats at a time with AVX2, 16 with AVX-512 (silu_avx512.hpp,
/// which the XNNPACK engine's kernels share); its SiLU stays within 1e-6 relative of
/// x * sigmoid(x) computed in double (lib test, [-20, 20] and the tails).
#include <torch/types.h>

#include <cstdint>

namespace cxr::models {

/// x[i] = x[i] / (1 + exp(-x[i])) for i < n, on the calling thread.
void silu_inplace(float* x, int64_t n);

/// torch::silu_(x), through silu_inplace() where that is safe: fp32 on the CPU, dense (NCHW or
/// channels-last), under c10::InferenceMode (no autograd history to keep). Otherwise LibTorch's
/// own silu_. Splits large tensors across LibTorch's intra-op threads.
torch::Tensor silu_(torch::Tensor x);

}  // namespace cxr::models
