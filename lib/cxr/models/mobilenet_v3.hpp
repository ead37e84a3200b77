// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// MobileNetV3-Large as torchvision 0.14's `mobilenet_v3_large` (width 1.0, BatchNorm eps 0.001 /
/// momentum 0.01, Hardswish / Hardsigmoid, classifier dropout 0.2).
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "cxr/models/classifier.hpp"

namespace cxr::models {

/// torchvision.models.mobilenetv3.InvertedResidual: "block" = [expand 1x1] depthwise [SE] project.
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(int64_t in, int64_t kernel, int64_t expanded, int64_t out, bool use_se, Act act,
                       int64_t stride);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Sequential block{nullptr};
  bool use_res_connect_;
};
TORCH_MODULE(InvertedResidual);

/// features (17 stages, 960 channels), avgpool, classifier (Linear 960->1280, Hardswish,
/// Dropout 0.2, Linear 1280->classes). features() = features[-1]'s output; embed() = pooling +
/// classifier[0..2] (1280); head() = classifier[3].
class MobileNetV3LargeImpl : public ClassifierImpl {
 public:
  explicit MobileNetV3LargeImpl(int64_t num_classes = 1000);

  torch::Tensor features(torch::Tensor x) override;
  torch::Tensor embed(torch::Tensor features) override;
  torch::Tensor head(torch::Tensor embedding) override;
  std::string architecture() const override { return "mobilenet_v3_large"; }
  std::string head_prefix() const override { return "classifier.3"; }
  std::string features_layer() const override { return "features"; }
  int64_t num_classes() const override { return fc2_->options.out_features(); }
  int64_t embedding_size() const override { return 1280; }
  void replace_head(int64_t num_classes) override;

 private:
  torch::nn::Sequential features_{nullptr};
  torch::nn::Sequential classifier_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(MobileNetV3Large);

}  // namespace cxr::models
