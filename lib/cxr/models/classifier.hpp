// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The common shape of gst-cxr's image classifiers and the torchvision building blocks they share.
///
/// Every classifier splits into `features()` (the last convolutional block's output: the Grad-CAM
/// target), `embed()` (global pooling and whatever precedes the last linear layer: the penultimate
/// features used for t-SNE and embeddings) and `head()` (the last linear layer). Submodules carry
/// torchvision's names, so `state_dict()` keys equal torchvision's one for one.
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>

#include "cxr/models/batchnorm.hpp"

#include <memory>
#include <string>
#include <vector>

namespace cxr::models {

/// A module that can fold its BatchNorms into the convolutions before them (eval only).
class Foldable {
 public:
  virtual ~Foldable() = default;
  virtual void fold() = 0;
};

/// Base of the three architectures.
class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(std::string name) : torch::nn::Module(std::move(name)) {}

  /// Output of the last convolutional block ([N, C, h, w]).
  virtual torch::Tensor features(torch::Tensor x) = 0;
  /// Penultimate features ([N, D]) from `features()`.
  virtual torch::Tensor embed(torch::Tensor features) = 0;
  /// Logits ([N, classes]) from `embed()`.
  virtual torch::Tensor head(torch::Tensor embedding) = 0;

  /// Pooling + head: `forward(x) == classify(features(x))`.
  torch::Tensor classify(torch::Tensor features) { return head(embed(features)); }
  torch::Tensor forward(torch::Tensor x) { return classify(features(x)); }

  /// torchvision's name of the architecture ("resnet34", ...).
  virtual std::string architecture() const = 0;
  /// state_dict prefix of the last linear layer ("fc", "classifier.3", "classifier.1").
  virtual std::string head_prefix() const = 0;
  /// Name of the module whose output `features()` returns ("layer4", "features"), for cards.
  virtual std::string features_layer() const = 0;
  virtual int64_t num_classes() const = 0;
  virtual int64_t embedding_size() const = 0;
  /// Replaces the last linear layer by a freshly initialised one with `num_classes` outputs
  /// (initialised as torchvision initialises it).
  virtual void replace_head(int64_t num_classes) = 0;

  /// Folds every BatchNorm into the convolution before it, for inference: the module then
  /// computes the eval-mode function with one op less per conv. Irreversible; the folded module
  /// must not be trained or saved (its state_dict no longer holds the BatchNorm statistics'
  /// effect where torchvision expects them).
  void fold_batchnorm();
  bool folded() const { return folded_; }

  /// Whether set_onednn() is available: the architecture has a oneDNN path and this LibTorch
  /// was built with oneDNN.
  virtual bool supports_onednn() const { return false; }
  /// Switches features() to oneDNN tensors whose convolution weights are reordered once, on
  /// the first switch, into oneDNN's blocked layout (dense weights are reordered on every
  /// forward). Inference on the CPU in fp32 after fold_batchnorm() only; features() still
  /// returns a dense tensor. Throws cxr::InvalidArgument where unsupported. `false` goes back
  /// to the dense path and keeps the packed weights for the next switch (release_onednn()
  /// frees them).
  virtual void set_onednn(bool on);
  /// Back to the dense path, packed weights freed.
  virtual void release_onednn() { onednn_ = false; }
  bool onednn() const { return onednn_; }

  /// Whether set_winograd() is available (the architecture has a Winograd path).
  virtual bool supports_winograd() const { return false; }
  /// Switches features() to channels-last activations with the 3x3 stride-1 convolutions done by
  /// Winograd F(2x2, 3x3) (cxr::models::WinogradConv), their weights transformed on the first
  /// switch. Inference on the CPU in fp32 after fold_batchnorm(); the other convolutions run
  /// dense, so their weights should be channels-last too (set_weight_layout()). `false` goes
  /// back and keeps the transformed weights (release_winograd() frees them). Throws
  /// cxr::InvalidArgument where unsupported.
  virtual void set_winograd(bool on);
  /// Back to the dense path, transformed weights freed.
  virtual void release_winograd() { winograd_ = false; }
  bool winograd() const { return winograd_; }

 protected:
  bool folded_ = false;
  bool onednn_ = false;
  bool winograd_ = false;
};

/// Readies a loaded model for inference: eval(), BatchNorm folded, moved to `device` / `dtype`,
/// and 4-D weights in channels-last layout when asked (faster with oneDNN convolutions on the
/// CPU; bench_infer.py measures it). Inputs should then be channels-last too.
void prepare_for_inference(ClassifierImpl& model, const torch::Device& device, torch::ScalarType dtype,
                           bool channels_last);

/// Puts the 4-D weights in channels-last or in contiguous (NCHW) layout.
void set_weight_layout(ClassifierImpl& model, bool channels_last);

/// Creates an architecture by torchvision name with `num_classes` outputs, initialised as
/// torchvision initialises it. Throws cxr::InvalidArgument for unknown names.
std::shared_ptr<ClassifierImpl> make_classifier(const std::string& architecture, int64_t num_classes);

/// The names make_classifier() accepts.
const std::vector<std::string>& classifier_architectures();

// ---- building blocks (torchvision.ops.misc) --------------------------------------------------

/// Activations torchvision uses; a module so that the structure prints like torchvision's.
enum class Act { None, ReLU, Hardswish, Hardsigmoid, SiLU, Sigmoid };

class ActivationImpl : public torch::nn::Module {
 public:
  explicit ActivationImpl(Act act) : act_(act) {}
  torch::Tensor forward(torch::Tensor x);
  Act kind() const { return act_; }

 private:
  Act act_;
};
TORCH_MODULE(Activation);

/// Applies `act` (Act::None = identity).
torch::Tensor activate(torch::Tensor x, Act act);
/// Applies `act` in place (for outputs nobody else holds, as torchvision's inplace=True).
torch::Tensor activate_(torch::Tensor x, Act act);

/// BatchNorm settings of an architecture (torchvision's norm_layer partials).
struct NormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
};

/// torchvision.ops.Conv2dNormActivation: "0" conv (no bias), "1" BatchNorm, "2" activation
/// (absent for Act::None). Padding (k - 1) / 2 * dilation as torchvision.
class ConvNormActImpl : public torch::nn::Module, public Foldable {
 public:
  ConvNormActImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, Act act,
                  NormOptions norm, int64_t padding = -1);
  torch::Tensor forward(torch::Tensor x);
  /// Folds "1" into "0" (eval only).
  void fold() override;

  torch::nn::Conv2d conv{nullptr};
  BatchNorm2d bn{nullptr};

 private:
  Act act_;
  bool folded_ = false;
};
TORCH_MODULE(ConvNormAct);

/// torchvision.ops.SqueezeExcitation: avgpool, fc1, fc2 (1x1 convs with bias), activation,
/// scale_activation.
class SqueezeExcitationImpl : public torch::nn::Module {
 public:
  SqueezeExcitationImpl(int64_t channels, int64_t squeeze, Act act, Act scale_act);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::AdaptiveAvgPool2d avgpool{nullptr};
  torch::nn::Conv2d fc1{nullptr}, fc2{nullptr};
  Act act_, scale_act_;
};
TORCH_MODULE(SqueezeExcitation);

/// Folds `bn` (eval statistics) into `conv`'s weight and bias, in place. The conv's bias tensor is
/// created when it had none.
void fold_conv_bn(torch::nn::Conv2dImpl& conv, const BatchNorm2dImpl& bn);

/// A convolution with its weights reordered for oneDNN (ClassifierImpl::set_onednn()). Takes
/// and returns oneDNN ("mkldnn") tensors; the dense module is left as it was.
class OneDnnConv {
 public:
  /// Packs `conv`'s current weight and bias (fp32, CPU; dilation 1).
  explicit OneDnnConv(const torch::nn::Conv2dImpl& conv);
  torch::Tensor operator()(const torch::Tensor& x) const;

 private:
  torch::Tensor weight_, bias_;
  std::vector<int64_t> padding_, stride_, dilation_;
  int64_t groups_ = 1;
};

/// torchvision's _make_divisible (channel rounding of MobileNet / EfficientNet).
int64_t make_divisible(double v, int64_t divisor, int64_t min_value = -1);

/// kaiming_normal_(mode="fan_out") on convs, ones/zeros on BatchNorm: the conv/BN part of every
/// torchvision classifier's init.
void init_conv_bn(torch::nn::Module& module);

}  // namespace cxr::models
