// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The `device` setting of cxrinfer, cxrgradcam, cxrtrain and the tools: one parser, one set of
/// messages.
#include <torch/types.h>

#include <string>

namespace cxr::runtime {

/// A device name as written, before asking LibTorch what the machine has.
struct DeviceName {
  enum class Kind { Auto, Cpu, Cuda } kind = Kind::Auto;
  int index = -1;  ///< cuda:N; -1 for plain "cuda" (device 0)
};

/// Reads auto (or empty), cpu, cuda and cuda:N. Throws InvalidArgument naming the value and the
/// accepted forms.
DeviceName parse_device(const std::string& name);

/// The device to run on: auto is CUDA device 0 where LibTorch sees one, else the CPU. Throws
/// InvalidArgument when the name is malformed, when it asks for CUDA and this LibTorch is
/// CPU-only or sees no GPU, or when N is not below the number of CUDA devices.
torch::Device resolve_device(const std::string& name);

}  // namespace cxr::runtime
