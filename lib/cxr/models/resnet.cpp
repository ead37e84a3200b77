// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/resnet.hpp"

#include <ATen/Context.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>

#include "cxr/error.hpp"

namespace cxr::models {
namespace {

torch::nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

}  // namespace

BasicBlockImpl::BasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride) {
  conv1 = register_module("conv1", conv3x3(inplanes, planes, stride));
  bn1 = register_module("bn1", BatchNorm2d(planes));
  register_module("relu", torch::nn::ReLU(torch::nn::ReLUOptions(true)));
  conv2 = register_module("conv2", conv3x3(planes, planes, 1));
  bn2 = register_module("bn2", BatchNorm2d(planes));
  if (stride != 1 || inplanes != planes) {
    downsample = register_module("downsample", ConvNormAct(inplanes, planes, 1, stride, 1, Act::None, NormOptions{}, 0));
  }
}

torch::Tensor BasicBlockImpl::forward(torch::Tensor x) {
  auto out = conv1->forward(x);
  if (!folded_) out = bn1->forward(out);
  out = torch::relu_(out);
  out = conv2->forward(out);
  if (!folded_) out = bn2->forward(out);
  auto identity = downsample ? downsample->forward(x) : x;
  return torch::relu_(out.add_(identity));
}

torch::Tensor BasicBlockImpl::forward_onednn(const torch::Tensor& x) {
  auto out = (*packed1_)(x).relu_();
  out = (*packed2_)(out);
  return out.add_(packed_down_ ? (*packed_down_)(x) : x).relu_();
}

void BasicBlockImpl::pack_onednn(bool on) {
  packed1_.reset();
  packed2_.reset();
  packed_down_.reset();
  if (!on) return;
  packed1_.emplace(*conv1);
  packed2_.emplace(*conv2);
  if (downsample) packed_down_.emplace(*downsample->conv);
}

void BasicBlockImpl::pack_winograd(bool on) {
  wino1_.reset();
  wino2_.reset();
  if (!on) return;
  if (WinogradConv::applies_to(*conv1)) wino1_.emplace(*conv1);
  wino2_.emplace(*conv2);  // always stride 1
}

torch::Tensor BasicBlockImpl::forward_winograd(const torch::Tensor& x) {
  const auto cl = torch::MemoryFormat::ChannelsLast;
  auto out = wino1_ ? (*wino1_)(x, nullptr, true) : conv1->forward(x).relu_().contiguous(cl);
  const auto identity = downsample ? downsample->forward(x).contiguous(cl) : x;
  return (*wino2_)(out, &identity, true);
}

void BasicBlockImpl::fold() {
  if (folded_) return;
  fold_conv_bn(*conv1, *bn1);
  fold_conv_bn(*conv2, *bn2);
  folded_ = true;  // downsample folds itself (it is a ConvNormAct)
}

ResNet34Impl::ResNet34Impl(int64_t num_classes) : ClassifierImpl("ResNet34") {
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
  bn1 = register_module("bn1", BatchNorm2d(64));
  register_module("relu", torch::nn::ReLU(torch::nn::ReLUOptions(true)));
  register_module("maxpool", torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
  int64_t inplanes = 64;
  auto make_layer = [&](int64_t planes, int blocks, int64_t stride) {
    torch::nn::Sequential layer;
    layer->push_back(BasicBlock(inplanes, planes, stride));
    inplanes = planes;
    for (int i = 1; i < blocks; ++i) layer->push_back(BasicBlock(inplanes, planes, 1));
    return layer;
  };
  layer1 = register_module("layer1", make_layer(64, 3, 1));
  layer2 = register_module("layer2", make_layer(128, 4, 2));
  layer3 = register_module("layer3", make_layer(256, 6, 2));
  layer4 = register_module("layer4", make_layer(512, 3, 2));
  register_module("avgpool", torch::nn::AdaptiveAvgPool2d(1));
  fc = register_module("fc", torch::nn::Linear(512, num_classes));  // LibTorch's default init = torchvision's
  init_conv_bn(*this);
}

torch::Tensor ResNet34Impl::features(torch::Tensor x) {
  if (onednn_) {
    x = (*packed_stem_)(x.contiguous().to_mkldnn()).relu_();
    x = torch::max_pool2d(x, 3, 2, 1);
    for (auto* layer : {&layer1, &layer2, &layer3, &layer4}) {
      for (auto& block : **layer) x = block.get<BasicBlockImpl>().forward_onednn(x);
    }
    return x.to_dense();
  }
  if (winograd_) {
    x = torch::max_pool2d(conv1->forward(x.contiguous(torch::MemoryFormat::ChannelsLast)).relu_(), 3, 2, 1);
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    for (auto* layer : {&layer1, &layer2, &layer3, &layer4}) {
      for (auto& block : **layer) x = block.get<BasicBlockImpl>().forward_winograd(x);
    }
    return x;
  }
  x = conv1->forward(x);
  if (!stem_folded_) x = bn1->forward(x);
  x = torch::max_pool2d(torch::relu_(x), 3, 2, 1);
  x = layer1->forward(x);
  x = layer2->forward(x);
  x = layer3->forward(x);
  return layer4->forward(x);
}

torch::Tensor ResNet34Impl::embed(torch::Tensor f) { return f.mean({2, 3}); }

torch::Tensor ResNet34Impl::head(torch::Tensor e) { return fc->forward(e); }

void ResNet34Impl::replace_head(int64_t n) {
  fc = replace_module("fc", torch::nn::Linear(512, n));
}

bool ResNet34Impl::supports_onednn() const { return at::hasMKLDNN(); }

void ResNet34Impl::set_onednn(bool on) {
  if (!on) {
    onednn_ = false;
    return;
  }
  if (!supports_onednn()) throw InvalidArgument("resnet34: this LibTorch was built without oneDNN");
  if (!folded_) throw InvalidArgument("resnet34: the oneDNN path needs the BatchNorms folded (inference)");
  if (!packed_stem_) {
    for (auto* layer : {&layer1, &layer2, &layer3, &layer4}) {
      for (auto& block : **layer) block.get<BasicBlockImpl>().pack_onednn(true);
    }
    packed_stem_.emplace(*conv1);
  }
  onednn_ = true;
}

void ResNet34Impl::release_onednn() {
  onednn_ = false;
  packed_stem_.reset();
  for (auto* layer : {&layer1, &layer2, &layer3, &layer4}) {
    for (auto& block : **layer) block.get<BasicBlockImpl>().pack_onednn(false);
  }
}

void ResNet34Impl::set_winograd(bool on) {
  if (!on) {
    winograd_ = false;
    return;
  }
  if (!folded_) throw InvalidArgument("resnet34: the Winograd path needs the BatchNorms folded (inference)");
  if (!winograd_packed_) {
    for (auto* layer : {&layer1, &layer2, &layer3, &layer4}) {
      for (auto& block : **layer) block.get<BasicBlockImpl>().pack_winograd(true);
    }
    winograd_packed_ = true;
  }
  winograd_ = true;
}

void ResNet34Impl::release_winograd() {
  winograd_ = false;
  winograd_packed_ = false;
  for (auto* layer : {&layer1, &layer2, &layer3, &layer4}) {
    for (auto& block : **layer) block.get<BasicBlockImpl>().pack_winograd(false);
  }
}

void ResNet34Impl::fold() {
  if (stem_folded_) return;
  fold_conv_bn(*conv1, *bn1);
  stem_folded_ = true;
}

}  // namespace cxr::models
