// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// BatchNorm2d as torch::nn::BatchNorm2d computes it (same parameters, buffers and state-dict
/// names: weight, bias, running_mean, running_var, num_batches_tracked), with one hook: in
/// training, `sync` (when set) computes the batch statistics instead, as torch.nn.SyncBatchNorm
/// does over every rank's batch (cxr/train/sync_batchnorm.hpp sets it). Its own module rather
/// than a subclass of torch::nn::BatchNorm2dImpl, whose template base LibTorch does not export.
#include <torch/nn/cloneable.h>
#include <torch/nn/options/batchnorm.h>

#include <functional>
#include <ostream>

namespace cxr::models {

class BatchNorm2dImpl : public torch::nn::Cloneable<BatchNorm2dImpl> {
 public:
  explicit BatchNorm2dImpl(int64_t features) : BatchNorm2dImpl(torch::nn::BatchNormOptions(features)) {}
  explicit BatchNorm2dImpl(const torch::nn::BatchNormOptions& options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::BatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  /// Training-mode forward over the global batch; unset: torch::nn::BatchNorm2d's.
  std::function<torch::Tensor(BatchNorm2dImpl&, const torch::Tensor&)> sync;
};
TORCH_MODULE(BatchNorm2d);

}  // namespace cxr::models
