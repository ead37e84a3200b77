// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// EfficientNet-B1 as torchvision 0.14's `efficientnet_b1` (width 1.0, depth 1.1, BatchNorm
/// eps 1e-5 / momentum 0.1, SiLU, stochastic depth 0.2 (identity at eval), dropout 0.2).
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "cxr/models/classifier.hpp"

namespace cxr::models {

/// torchvision.ops.StochasticDepth, mode "row": drops whole samples in training.
class StochasticDepthImpl : public torch::nn::Module {
 public:
  explicit StochasticDepthImpl(double p) : p_(p) {}
  torch::Tensor forward(torch::Tensor x);

 private:
  double p_;
};
TORCH_MODULE(StochasticDepth);

/// torchvision.models.efficientnet.MBConv: "block" = [expand 1x1] depthwise SE project, and
/// "stochastic_depth" on the residual branch.
class MBConvImpl : public torch::nn::Module {
 public:
  MBConvImpl(int64_t expand_ratio, int64_t kernel, int64_t stride, int64_t in, int64_t out, double sd_prob);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Sequential block{nullptr};
  StochasticDepth stochastic_depth{nullptr};
  bool use_res_connect_;
};
TORCH_MODULE(MBConv);

/// A stage of MBConv blocks: a Sequential with a concrete forward, so it can sit inside
/// "features" (another Sequential).
class StageImpl : public torch::nn::SequentialImpl {
 public:
  using SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor x) { return SequentialImpl::forward(x); }
};
TORCH_MODULE(Stage);

/// features (stem, 7 stages of 23 MBConv blocks, 1x1 conv to 1280), avgpool, classifier
/// (Dropout 0.2, Linear 1280->classes). features() = features[-1]'s output; embed() = pooling
/// (1280); head() = classifier.
class EfficientNetB1Impl : public ClassifierImpl {
 public:
  explicit EfficientNetB1Impl(int64_t num_classes = 1000);

  torch::Tensor features(torch::Tensor x) override;
  torch::Tensor embed(torch::Tensor features) override;
  torch::Tensor head(torch::Tensor embedding) override;
  std::string architecture() const override { return "efficientnet_b1"; }
  std::string head_prefix() const override { return "classifier.1"; }
  std::string features_layer() const override { return "features"; }
  int64_t num_classes() const override { return fc_->options.out_features(); }
  int64_t embedding_size() const override { return 1280; }
  void replace_head(int64_t num_classes) override;

 private:
  torch::nn::Sequential features_{nullptr};
  torch::nn::Sequential classifier_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(EfficientNetB1);

}  // namespace cxr::models
