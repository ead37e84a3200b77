// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/runtime/device.hpp"

#include <torch/cuda.h>

#include "cxr/error.hpp"

namespace cxr::runtime {

DeviceName parse_device(const std::string& name) {
  DeviceName d;
  if (name.empty() || name == "auto") return d;
  if (name == "cpu") {
    d.kind = DeviceName::Kind::Cpu;
    return d;
  }
  if (name == "cuda") {
    d.kind = DeviceName::Kind::Cuda;
    return d;
  }
  if (name.rfind("cuda:", 0) == 0) {
    const std::string digits = name.substr(5);
    const bool ok = !digits.empty() && digits.size() <= 4 &&
                    digits.find_first_not_of("0123456789") == std::string::npos;
    if (!ok) throw InvalidArgument("device '" + name + "': expected cuda:N with N a device number (0, 1, ...)");
    d.kind = DeviceName::Kind::Cuda;
    d.index = std::stoi(digits);
    return d;
  }
  throw InvalidArgument("device '" + name + "' is not one of: auto, cpu, cuda, cuda:N");
}

torch::Device resolve_device(const std::string& name) {
  const DeviceName d = parse_device(name);
  switch (d.kind) {
    case DeviceName::Kind::Auto:
      return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
    case DeviceName::Kind::Cpu:
      return torch::Device(torch::kCPU);
    case DeviceName::Kind::Cuda:
      break;
  }
  if (!torch::cuda::is_available()) {
    throw InvalidArgument("device '" + name + "': no CUDA device (this LibTorch is CPU-only or no GPU is present)");
  }
  const int index = d.index < 0 ? 0 : d.index;
  const int count = static_cast<int>(torch::cuda::device_count());
  if (index >= count) {
    throw InvalidArgument("device '" + name + "': only " + std::to_string(count) + " CUDA device(s)");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace cxr::runtime
