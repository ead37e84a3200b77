// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/batchnorm.hpp"

#include <torch/nn/functional/batchnorm.h>
#include <torch/nn/init.h>

#include "cxr/error.hpp"

namespace cxr::models {

BatchNorm2dImpl::BatchNorm2dImpl(const torch::nn::BatchNormOptions& options_) : options(options_) { reset(); }

// torch::nn::BatchNormImplBase::reset() and reset_parameters().
void BatchNorm2dImpl::reset() {
  const int64_t n = options.num_features();
  if (options.affine()) {
    weight = register_parameter("weight", torch::ones({n}));
    bias = register_parameter("bias", torch::zeros({n}));
  } else {
    weight = register_parameter("weight", torch::Tensor(), /*requires_grad=*/false);
    bias = register_parameter("bias", torch::Tensor(), /*requires_grad=*/false);
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({n}));
    running_var = register_buffer("running_var", torch::ones({n}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::tensor(0, torch::dtype(torch::kLong)));
  } else {
    running_mean = register_buffer("running_mean", torch::Tensor());
    running_var = register_buffer("running_var", torch::Tensor());
    num_batches_tracked = register_buffer("num_batches_tracked", torch::Tensor());
  }
}

void BatchNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "torch::nn::BatchNorm2d(" << options.num_features() << ", eps=" << options.eps()
         << ", momentum=" << (options.momentum() ? *options.momentum() : -1.0) << ", affine=" << options.affine()
         << ", track_running_stats=" << options.track_running_stats() << ")";
}

// torch::nn::BatchNormImplBase::forward().
torch::Tensor BatchNorm2dImpl::forward(const torch::Tensor& x) {
  if (x.dim() != 4) throw InvalidArgument("BatchNorm2d: expected 4D input (got " + std::to_string(x.dim()) + "D)");
  if (sync && is_training()) return sync(*this, x);
  double factor = 0.0;
  if (is_training() && options.track_running_stats() && num_batches_tracked.defined()) {
    num_batches_tracked += 1;
    factor = options.momentum() ? *options.momentum() : 1.0 / num_batches_tracked.item<double>();
  }
  return torch::nn::functional::detail::batch_norm(x, running_mean, running_var, weight, bias,
                                                   is_training() || !options.track_running_stats(), factor,
                                                   options.eps());
}

}  // namespace cxr::models
