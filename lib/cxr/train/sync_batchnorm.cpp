// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/train/sync_batchnorm.hpp"

#include <torch/torch.h>

#include "cxr/error.hpp"
#include "cxr/models/batchnorm.hpp"

namespace cxr::train {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct SyncBatchNormFn : public torch::autograd::Function<SyncBatchNormFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, models::BatchNorm2dImpl* bn, Communicator* comm) {
    if (x.dim() < 2) throw InvalidArgument("sync-batchnorm: input of " + std::to_string(x.dim()) + " dimensions");
    const int64_t c = x.size(1);
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    const double n_local = static_cast<double>(x.numel() / c);
    // Per-rank sums accumulated in double, as ATen's own CPU BatchNorm accumulates (its acc_type
    // for float): float sums would differ from one process's statistics by more than rounding.
    torch::Tensor packed;
    if (n_local > 0) {
      const torch::Tensor mean_r = x.sum(dims, false, torch::kDouble) / n_local;
      std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
      shape[1] = c;
      const torch::Tensor centred = x.to(torch::kDouble) - mean_r.view(shape);
      const torch::Tensor m2_r = (centred * centred).sum(dims);
      packed = torch::cat({torch::full({1}, n_local, torch::kDouble), mean_r * n_local, m2_r + mean_r * mean_r * n_local});
    } else {
      packed = torch::zeros({1 + 2 * c}, torch::kDouble);  // a rank with no scans in this step
    }
    std::vector<torch::Tensor> one{packed};
    comm->allreduce_sum(one);
    const double n = packed[0].item<double>();
    const torch::Tensor mean = packed.narrow(0, 1, c) / n;
    const torch::Tensor var = (packed.narrow(0, 1 + c, c) / n - mean * mean).clamp_min(0);
    const double eps = bn->options.eps();
    const torch::Tensor invstd = (var + eps).rsqrt();
    {
      torch::NoGradGuard no_grad;
      if (bn->options.track_running_stats()) {
        bn->num_batches_tracked += 1;
        double m = 0;
        if (bn->options.momentum())
          m = *bn->options.momentum();
        else
          m = 1.0 / bn->num_batches_tracked.item<double>();
        const torch::Tensor unbiased = n > 1 ? var * (n / (n - 1)) : var;
        bn->running_mean.mul_(1 - m).add_(mean.to(bn->running_mean.dtype()), m);
        bn->running_var.mul_(1 - m).add_(unbiased.to(bn->running_var.dtype()), m);
      }
    }
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[1] = c;
    const torch::Tensor mean_f = mean.to(x.dtype()).view(shape);
    const torch::Tensor invstd_f = invstd.to(x.dtype()).view(shape);
    torch::Tensor y = (x - mean_f) * invstd_f;
    if (weight.defined()) y = y * weight.view(shape);
    if (bias.defined()) y = y + bias.view(shape);
    ctx->save_for_backward({x, weight, mean_f, invstd_f});
    ctx->saved_data["n"] = n;
    ctx->saved_data["comm"] = reinterpret_cast<int64_t>(comm);
    ctx->saved_data["has_bias"] = bias.defined();
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& mean = saved[2];
    const torch::Tensor& invstd = saved[3];
    const double n = ctx->saved_data["n"].toDouble();
    auto* comm = reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
    const torch::Tensor dy = grads[0];
    const int64_t c = x.size(1);
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[1] = c;
    const torch::Tensor xmu = x - mean;
    // Accumulated in double, as ATen's CPU BatchNorm backward does.
    const torch::Tensor sum_dy = dy.sum(dims, false, torch::kDouble);
    const torch::Tensor sum_dy_xmu = (dy.to(torch::kDouble) * xmu.to(torch::kDouble)).sum(dims);
    torch::Tensor grad_weight, grad_bias;
    if (weight.defined()) grad_weight = (sum_dy_xmu * invstd.view({-1}).to(torch::kDouble)).to(dy.dtype());
    if (ctx->saved_data["has_bias"].toBool()) grad_bias = sum_dy.to(dy.dtype());
    torch::Tensor packed = torch::cat({sum_dy, sum_dy_xmu});
    std::vector<torch::Tensor> one{packed};
    comm->allreduce_sum(one);
    const torch::Tensor mean_dy = (packed.narrow(0, 0, c) / n).to(x.dtype()).view(shape);
    const torch::Tensor mean_dy_xmu = (packed.narrow(0, c, c) / n).to(x.dtype()).view(shape);
    torch::Tensor scale = invstd;
    if (weight.defined()) scale = scale * weight.view(shape);
    const torch::Tensor grad_x = (dy - mean_dy - xmu * invstd * invstd * mean_dy_xmu) * scale;
    return {grad_x, grad_weight, grad_bias, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

void sync_batchnorms(torch::nn::Module& model, Communicator* comm) {
  for (const auto& m : model.modules(/*include_self=*/true)) {
    auto* bn = m->as<models::BatchNorm2dImpl>();
    if (!bn) continue;
    if (!comm) {
      bn->sync = nullptr;
      continue;
    }
    bn->sync = [comm](models::BatchNorm2dImpl& self, const torch::Tensor& x) {
      return SyncBatchNormFn::apply(x, self.weight, self.bias, &self, comm);
    };
  }
}

}  // namespace cxr::train
