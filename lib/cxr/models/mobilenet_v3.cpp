// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/mobilenet_v3.hpp"

#include <torch/nn/init.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/pooling.h>

namespace cxr::models {
namespace {

const NormOptions kNorm{0.001, 0.01};

struct BneckConf {
  int64_t in, kernel, expanded, out;
  bool use_se;
  Act act;
  int64_t stride;
};

// torchvision's _mobilenet_v3_conf("mobilenet_v3_large"), width_mult 1.0, dilation off.
const BneckConf kLarge[] = {
    {16, 3, 16, 16, false, Act::ReLU, 1},        {16, 3, 64, 24, false, Act::ReLU, 2},
    {24, 3, 72, 24, false, Act::ReLU, 1},        {24, 5, 72, 40, true, Act::ReLU, 2},
    {40, 5, 120, 40, true, Act::ReLU, 1},        {40, 5, 120, 40, true, Act::ReLU, 1},
    {40, 3, 240, 80, false, Act::Hardswish, 2},  {80, 3, 200, 80, false, Act::Hardswish, 1},
    {80, 3, 184, 80, false, Act::Hardswish, 1},  {80, 3, 184, 80, false, Act::Hardswish, 1},
    {80, 3, 480, 112, true, Act::Hardswish, 1},  {112, 3, 672, 112, true, Act::Hardswish, 1},
    {112, 5, 672, 160, true, Act::Hardswish, 2}, {160, 5, 960, 160, true, Act::Hardswish, 1},
    {160, 5, 960, 160, true, Act::Hardswish, 1},
};

void init_linear(torch::nn::Linear& l) {
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(l->weight, 0.0, 0.01);
  torch::nn::init::zeros_(l->bias);
}

}  // namespace

InvertedResidualImpl::InvertedResidualImpl(int64_t in, int64_t kernel, int64_t expanded, int64_t out, bool use_se,
                                           Act act, int64_t stride)
    : use_res_connect_(stride == 1 && in == out) {
  block = torch::nn::Sequential();
  if (expanded != in) block->push_back(ConvNormAct(in, expanded, 1, 1, 1, act, kNorm));
  block->push_back(ConvNormAct(expanded, expanded, kernel, stride, expanded, act, kNorm));
  if (use_se) block->push_back(SqueezeExcitation(expanded, make_divisible(expanded / 4, 8), Act::ReLU, Act::Hardsigmoid));
  block->push_back(ConvNormAct(expanded, out, 1, 1, 1, Act::None, kNorm));
  register_module("block", block);
}

torch::Tensor InvertedResidualImpl::forward(torch::Tensor x) {
  auto result = block->forward(x);
  return use_res_connect_ ? result.add_(x) : result;
}

MobileNetV3LargeImpl::MobileNetV3LargeImpl(int64_t num_classes) : ClassifierImpl("MobileNetV3Large") {
  features_ = torch::nn::Sequential();
  features_->push_back(ConvNormAct(3, 16, 3, 2, 1, Act::Hardswish, kNorm));
  for (const auto& c : kLarge) {
    features_->push_back(InvertedResidual(c.in, c.kernel, c.expanded, c.out, c.use_se, c.act, c.stride));
  }
  features_->push_back(ConvNormAct(160, 960, 1, 1, 1, Act::Hardswish, kNorm));
  register_module("features", features_);
  register_module("avgpool", torch::nn::AdaptiveAvgPool2d(1));
  fc1_ = torch::nn::Linear(960, 1280);
  dropout_ = torch::nn::Dropout(torch::nn::DropoutOptions(0.2));
  fc2_ = torch::nn::Linear(1280, num_classes);
  classifier_ = torch::nn::Sequential(fc1_, Activation(Act::Hardswish), dropout_, fc2_);
  register_module("classifier", classifier_);
  init_conv_bn(*this);
  init_linear(fc1_);
  init_linear(fc2_);
}

torch::Tensor MobileNetV3LargeImpl::features(torch::Tensor x) { return features_->forward(x); }

torch::Tensor MobileNetV3LargeImpl::embed(torch::Tensor f) {
  auto e = torch::hardswish(fc1_->forward(f.mean({2, 3})));
  return dropout_->forward(e);
}

torch::Tensor MobileNetV3LargeImpl::head(torch::Tensor e) { return fc2_->forward(e); }

void MobileNetV3LargeImpl::replace_head(int64_t n) {
  auto fresh = torch::nn::Linear(1280, n);
  init_linear(fresh);
  fc2_ = classifier_->replace_module("3", fresh);
}

}  // namespace cxr::models
