// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/classifier.hpp"

#include <torch/nn/init.h>
#include <torch/nn/functional/activation.h>

#include <algorithm>
#include <cmath>

#include "cxr/error.hpp"
#include "cxr/models/efficientnet.hpp"
#include "cxr/models/mobilenet_v3.hpp"
#include "cxr/models/resnet.hpp"
#include "cxr/models/silu.hpp"
#include "cxr/models/torch_compat.hpp"

namespace cxr::models {

void ClassifierImpl::fold_batchnorm() {
  if (folded_) return;
  torch::NoGradGuard no_grad;
  // Not modules(true): that needs the root to be held by a shared_ptr.
  if (auto* self = dynamic_cast<Foldable*>(this)) self->fold();
  for (const auto& m : modules(/*include_self=*/false)) {
    if (auto* f = dynamic_cast<Foldable*>(m.get())) f->fold();
  }
  folded_ = true;
}

void ClassifierImpl::set_onednn(bool on) {
  if (on) throw InvalidArgument(architecture() + " has no oneDNN path (memory format onednn is for resnet34)");
  onednn_ = false;
}

void ClassifierImpl::set_winograd(bool on) {
  if (on) throw InvalidArgument(architecture() + " has no Winograd path (memory format winograd is for resnet34)");
  winograd_ = false;
}

namespace {

std::vector<int64_t> pair_of(const torch::ExpandingArray<2>& a) { return {a->at(0), a->at(1)}; }

}  // namespace

OneDnnConv::OneDnnConv(const torch::nn::Conv2dImpl& conv) {
  torch::NoGradGuard no_grad;
  const auto& o = conv.options;
  const torch::ExpandingArray<2>* padding = explicit_padding(o);
  if (!padding) throw InvalidArgument("oneDNN path: convolutions with 'same' or 'valid' padding are not supported");
  if (conv.weight.scalar_type() != torch::kFloat || !conv.weight.device().is_cpu()) {
    throw InvalidArgument("oneDNN path: weights must be fp32 on the CPU");
  }
  padding_ = pair_of(*padding);
  stride_ = pair_of(o.stride());
  dilation_ = pair_of(o.dilation());
  groups_ = o.groups();
  weight_ = at::mkldnn_reorder_conv2d_weight(conv.weight.detach().contiguous().to_mkldnn(), padding_, stride_,
                                             dilation_, groups_);
  if (conv.bias.defined()) bias_ = conv.bias.detach().contiguous().to_mkldnn();
}

torch::Tensor OneDnnConv::operator()(const torch::Tensor& x) const {
  return at::mkldnn_convolution(x, weight_, bias_.defined() ? c10::optional<torch::Tensor>(bias_) : c10::nullopt,
                                padding_, stride_, dilation_, groups_);
}

const std::vector<std::string>& classifier_architectures() {
  static const std::vector<std::string> names{"resnet34", "mobilenet_v3_large", "efficientnet_b1"};
  return names;
}

std::shared_ptr<ClassifierImpl> make_classifier(const std::string& architecture, int64_t num_classes) {
  if (num_classes < 1) throw InvalidArgument("number of classes must be >= 1, got " + std::to_string(num_classes));
  if (architecture == "resnet34") return std::make_shared<ResNet34Impl>(num_classes);
  if (architecture == "mobilenet_v3_large") return std::make_shared<MobileNetV3LargeImpl>(num_classes);
  if (architecture == "efficientnet_b1") return std::make_shared<EfficientNetB1Impl>(num_classes);
  std::string valid;
  for (const auto& n : classifier_architectures()) valid += (valid.empty() ? "" : ", ") + n;
  throw InvalidArgument("unknown architecture '" + architecture + "' (valid: " + valid + ")");
}

torch::Tensor activate(torch::Tensor x, Act act) {
  switch (act) {
    case Act::None: return x;
    case Act::ReLU: return torch::relu(x);
    case Act::Hardswish: return torch::hardswish(x);
    case Act::Hardsigmoid: return torch::hardsigmoid(x);
    case Act::SiLU: return torch::silu(x);
    case Act::Sigmoid: return torch::sigmoid(x);
  }
  return x;
}

torch::Tensor activate_(torch::Tensor x, Act act) {
  switch (act) {
    case Act::None: return x;
    case Act::ReLU: return torch::relu_(x);
    case Act::Hardswish: return torch::hardswish_(x);
    case Act::Hardsigmoid: return torch::hardsigmoid_(x);
    case Act::SiLU: return cxr::models::silu_(x);  // vectorised under InferenceMode
    case Act::Sigmoid: return torch::sigmoid_(x);
  }
  return x;
}

void prepare_for_inference(ClassifierImpl& model, const torch::Device& device, torch::ScalarType dtype,
                           bool channels_last) {
  model.eval();
  model.fold_batchnorm();
  model.to(device, dtype);
  set_weight_layout(model, channels_last);
}

void set_weight_layout(ClassifierImpl& model, bool channels_last) {
  torch::NoGradGuard no_grad;
  const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  for (auto& p : model.parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(format));
  }
}

torch::Tensor ActivationImpl::forward(torch::Tensor x) { return activate(std::move(x), act_); }

ConvNormActImpl::ConvNormActImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, Act act,
                                 NormOptions norm, int64_t padding)
    : act_(act) {
  if (padding < 0) padding = (kernel - 1) / 2;
  conv = register_module("0", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                    .stride(stride)
                                                    .padding(padding)
                                                    .groups(groups)
                                                    .bias(false)));
  bn = register_module("1", BatchNorm2d(
                                torch::nn::BatchNorm2dOptions(out).eps(norm.eps).momentum(norm.momentum)));
  if (act != Act::None) register_module("2", Activation(act));
}

torch::Tensor ConvNormActImpl::forward(torch::Tensor x) {
  x = conv->forward(x);
  if (!folded_) x = bn->forward(x);
  return activate_(x, act_);  // x is this module's own output
}

void ConvNormActImpl::fold() {
  if (folded_) return;
  fold_conv_bn(*conv, *bn);
  folded_ = true;
}

SqueezeExcitationImpl::SqueezeExcitationImpl(int64_t channels, int64_t squeeze, Act act, Act scale_act)
    : act_(act), scale_act_(scale_act) {
  avgpool = register_module("avgpool", torch::nn::AdaptiveAvgPool2d(1));
  fc1 = register_module("fc1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, squeeze, 1)));
  fc2 = register_module("fc2", torch::nn::Conv2d(torch::nn::Conv2dOptions(squeeze, channels, 1)));
  register_module("activation", Activation(act));
  register_module("scale_activation", Activation(scale_act));
}

torch::Tensor SqueezeExcitationImpl::forward(torch::Tensor x) {
  // Global mean as a reduction: the same numbers as adaptive_avg_pool2d(1), and faster on CPU.
  auto s = x.mean({2, 3}, /*keepdim=*/true);
  // In inference nothing else reads these tensors; training keeps them for the backward pass
  // (torchvision's SE is not in place either).
  if (c10::InferenceMode::is_enabled()) {
    s = activate_(fc2->forward(activate_(fc1->forward(s), act_)), scale_act_);
    return x.mul_(s);
  }
  s = activate(fc1->forward(s), act_);
  s = activate(fc2->forward(s), scale_act_);
  return x * s;
}

void fold_conv_bn(torch::nn::Conv2dImpl& conv, const BatchNorm2dImpl& bn) {
  torch::NoGradGuard no_grad;
  // Double precision for the scale so that folding adds no error beyond the final fp32 rounding.
  const auto var = bn.running_var.to(torch::kDouble);
  const auto mean = bn.running_mean.to(torch::kDouble);
  const auto gamma = bn.weight.defined() ? bn.weight.to(torch::kDouble) : torch::ones_like(var);
  const auto beta = bn.bias.defined() ? bn.bias.to(torch::kDouble) : torch::zeros_like(var);
  const auto scale = gamma / torch::sqrt(var + bn.options.eps());
  const auto w = conv.weight.to(torch::kDouble) * scale.reshape({-1, 1, 1, 1});
  const auto b0 = conv.bias.defined() ? conv.bias.to(torch::kDouble) : torch::zeros_like(var);
  const auto b = (b0 - mean) * scale + beta;
  conv.weight.copy_(w.to(conv.weight.dtype()));
  // Conv2d keeps an undefined "bias" entry when built without one; forward() reads the member.
  conv.bias = b.to(conv.weight.dtype()).to(conv.weight.device());
}

int64_t make_divisible(double v, int64_t divisor, int64_t min_value) {
  if (min_value < 0) min_value = divisor;
  int64_t new_v = std::max<int64_t>(min_value, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (static_cast<double>(new_v) < 0.9 * v) new_v += divisor;
  return new_v;
}

void init_conv_bn(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (const auto& m : module.modules(/*include_self=*/false)) {  // called from constructors
    if (auto* c = m->as<torch::nn::Conv2dImpl>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (c->bias.defined()) torch::nn::init::zeros_(c->bias);
    } else if (auto* b = m->as<BatchNorm2dImpl>()) {
      torch::nn::init::ones_(b->weight);
      torch::nn::init::zeros_(b->bias);
    }
  }
}

}  // namespace cxr::models
