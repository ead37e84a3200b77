// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The few LibTorch APIs gst-cxr uses that changed between Debian's LibTorch 1.13 and the 2.x
/// releases users bring for CUDA (-Dlibtorch_dir). Everything else compiles unchanged against both;
/// tests/compat/check_libtorch_api.py compiles every LibTorch-using file against 2.x headers.

#include <torch/nn/modules/conv.h>
#include <torch/version.h>

#include <variant>

/// LibTorch 2.3 made c10::Allocator::allocate() non-const (and added the pure virtual copy_data).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define CXR_TORCH_ALLOCATE_CONST
#define CXR_TORCH_ALLOCATOR_COPY_DATA 1
#else
#define CXR_TORCH_ALLOCATE_CONST const
#define CXR_TORCH_ALLOCATOR_COPY_DATA 0
#endif

namespace cxr::models {

/// A 2-d convolution's explicit padding, or nullptr where it is 'same' or 'valid'. LibTorch 1.13
/// holds the padding in a c10::variant, 2.x in a std::variant: get_if finds either (the c10 one
/// by argument-dependent lookup).
inline const torch::ExpandingArray<2>* explicit_padding(const torch::nn::detail::ConvNdOptions<2>& o) {
  using std::get_if;
  return get_if<torch::ExpandingArray<2>>(&o.padding());
}

}  // namespace cxr::models
