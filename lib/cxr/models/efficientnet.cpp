// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/efficientnet.hpp"

#include <torch/nn/init.h>
#include <torch/nn/modules/pooling.h>

#include <cmath>

namespace cxr::models {
namespace {

const NormOptions kNorm{1e-5, 0.1};
constexpr double kStochasticDepth = 0.2;
constexpr double kDepthMult = 1.1;

struct StageConf {
  int64_t expand_ratio, kernel, stride, in, out, layers;
};

// torchvision's _efficientnet_conf("efficientnet_b1") before depth scaling.
const StageConf kStages[] = {
    {1, 3, 1, 32, 16, 1}, {6, 3, 2, 16, 24, 2},  {6, 5, 2, 24, 40, 2},  {6, 3, 2, 40, 80, 3},
    {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1},
};

int64_t scaled_layers(int64_t n) { return static_cast<int64_t>(std::ceil(static_cast<double>(n) * kDepthMult)); }

void init_linear(torch::nn::Linear& l) {
  torch::NoGradGuard no_grad;
  const double range = 1.0 / std::sqrt(static_cast<double>(l->options.out_features()));
  torch::nn::init::uniform_(l->weight, -range, range);
  torch::nn::init::zeros_(l->bias);
}

}  // namespace

torch::Tensor StochasticDepthImpl::forward(torch::Tensor x) {
  if (!is_training() || p_ == 0.0) return x;
  const double survival = 1.0 - p_;
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  auto noise = torch::empty(shape, x.options()).bernoulli_(survival);
  if (survival > 0.0) noise.div_(survival);
  return x * noise;
}

MBConvImpl::MBConvImpl(int64_t expand_ratio, int64_t kernel, int64_t stride, int64_t in, int64_t out, double sd_prob)
    : use_res_connect_(stride == 1 && in == out) {
  const int64_t expanded = make_divisible(static_cast<double>(in * expand_ratio), 8);
  block = torch::nn::Sequential();
  if (expanded != in) block->push_back(ConvNormAct(in, expanded, 1, 1, 1, Act::SiLU, kNorm));
  block->push_back(ConvNormAct(expanded, expanded, kernel, stride, expanded, Act::SiLU, kNorm));
  block->push_back(SqueezeExcitation(expanded, std::max<int64_t>(1, in / 4), Act::SiLU, Act::Sigmoid));
  block->push_back(ConvNormAct(expanded, out, 1, 1, 1, Act::None, kNorm));
  register_module("block", block);
  stochastic_depth = register_module("stochastic_depth", StochasticDepth(sd_prob));
}

torch::Tensor MBConvImpl::forward(torch::Tensor x) {
  auto result = block->forward(x);
  if (!use_res_connect_) return result;
  return stochastic_depth->forward(result).add_(x);
}

EfficientNetB1Impl::EfficientNetB1Impl(int64_t num_classes) : ClassifierImpl("EfficientNetB1") {
  features_ = torch::nn::Sequential();
  features_->push_back(ConvNormAct(3, 32, 3, 2, 1, Act::SiLU, kNorm));
  int64_t total = 0;
  for (const auto& s : kStages) total += scaled_layers(s.layers);
  int64_t block_id = 0;
  for (const auto& s : kStages) {
    Stage stage;
    for (int64_t i = 0; i < scaled_layers(s.layers); ++i) {
      const double sd_prob = kStochasticDepth * static_cast<double>(block_id) / static_cast<double>(total);
      stage->push_back(MBConv(s.expand_ratio, s.kernel, i == 0 ? s.stride : 1, i == 0 ? s.in : s.out, s.out, sd_prob));
      ++block_id;
    }
    features_->push_back(stage);
  }
  features_->push_back(ConvNormAct(320, 1280, 1, 1, 1, Act::SiLU, kNorm));
  register_module("features", features_);
  register_module("avgpool", torch::nn::AdaptiveAvgPool2d(1));
  dropout_ = torch::nn::Dropout(torch::nn::DropoutOptions(0.2));
  fc_ = torch::nn::Linear(1280, num_classes);
  classifier_ = torch::nn::Sequential(dropout_, fc_);
  register_module("classifier", classifier_);
  init_conv_bn(*this);
  init_linear(fc_);
}

torch::Tensor EfficientNetB1Impl::features(torch::Tensor x) { return features_->forward(x); }

torch::Tensor EfficientNetB1Impl::embed(torch::Tensor f) { return f.mean({2, 3}); }

torch::Tensor EfficientNetB1Impl::head(torch::Tensor e) { return fc_->forward(dropout_->forward(e)); }

void EfficientNetB1Impl::replace_head(int64_t n) {
  auto fresh = torch::nn::Linear(1280, n);
  init_linear(fresh);
  fc_ = classifier_->replace_module("1", fresh);
}

}  // namespace cxr::models
