// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// ResNet-34 as torchvision 0.14's `resnet34` (BasicBlock [3, 4, 6, 3], zero_init_residual off).
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <optional>

#include "cxr/models/classifier.hpp"
#include "cxr/models/winograd.hpp"

namespace cxr::models {

/// torchvision.models.resnet.BasicBlock: conv1, bn1, relu, conv2, bn2, downsample ("0" conv 1x1,
/// "1" BatchNorm) when the shape changes.
class BasicBlockImpl : public torch::nn::Module, public Foldable {
 public:
  BasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride);
  torch::Tensor forward(torch::Tensor x);
  void fold() override;
  /// Packs the (folded) convolutions for forward_onednn(); `false` drops them.
  void pack_onednn(bool on);
  /// forward() on oneDNN tensors.
  torch::Tensor forward_onednn(const torch::Tensor& x);
  /// Transforms the (folded) stride-1 3x3 convolutions for forward_winograd(); `false` drops them.
  void pack_winograd(bool on);
  /// forward() on channels-last tensors, stride-1 3x3 convolutions by Winograd.
  torch::Tensor forward_winograd(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr};
  ConvNormAct downsample{nullptr};
  bool folded_ = false;
  std::optional<OneDnnConv> packed1_, packed2_, packed_down_;
  std::optional<WinogradConv> wino1_, wino2_;
};
TORCH_MODULE(BasicBlock);

/// conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc. features() = layer4's output;
/// embed() = global average pool (512); head() = fc.
class ResNet34Impl : public ClassifierImpl, public Foldable {
 public:
  explicit ResNet34Impl(int64_t num_classes = 1000);

  torch::Tensor features(torch::Tensor x) override;
  torch::Tensor embed(torch::Tensor features) override;
  torch::Tensor head(torch::Tensor embedding) override;
  std::string architecture() const override { return "resnet34"; }
  std::string head_prefix() const override { return "fc"; }
  std::string features_layer() const override { return "layer4"; }
  int64_t num_classes() const override { return fc->options.out_features(); }
  int64_t embedding_size() const override { return 512; }
  void replace_head(int64_t num_classes) override;
  void fold() override;
  bool supports_onednn() const override;
  void set_onednn(bool on) override;
  void release_onednn() override;
  bool supports_winograd() const override { return true; }
  void set_winograd(bool on) override;
  void release_winograd() override;

 private:
  torch::nn::Conv2d conv1{nullptr};
  BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::Linear fc{nullptr};
  bool stem_folded_ = false;
  std::optional<OneDnnConv> packed_stem_;
  bool winograd_packed_ = false;
};
TORCH_MODULE(ResNet34);

}  // namespace cxr::models
