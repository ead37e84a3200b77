// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// One optimisation step and one evaluation pass, as free functions over a classifier (the shape
/// of pytorch/examples' cpp/mnist train()/test()). Needs LibTorch; callers without it use
/// cxr/train/trainer.hpp.
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <functional>
#include <optional>

namespace cxr::models {
class ClassifierImpl;
}

namespace cxr::train {

/// The loss of a task: cross-entropy (multiclass: targets are class indices, optional per-class
/// weights) or BCE-with-logits (multilabel: targets are float multi-hot, optional pos_weight).
struct LossSpec {
  bool multilabel = false;
  torch::Tensor class_weights;  ///< CE weight; undefined for none
  torch::Tensor pos_weight;     ///< BCE pos_weight; undefined for none
};

/// Mean loss of a batch, as torch.nn.CrossEntropyLoss / BCEWithLogitsLoss(reduction='mean').
torch::Tensor compute_loss(const torch::Tensor& logits, const torch::Tensor& targets, const LossSpec& loss);

/// Class probabilities from logits: softmax (multiclass) or sigmoid (multilabel).
torch::Tensor probabilities(const torch::Tensor& logits, bool multilabel);

/// What train_step() saw.
struct StepResult {
  double loss = 0;        ///< mean loss of the batch
  torch::Tensor logits;   ///< detached
  /// Wall seconds of the step's parts (on CUDA, where kernels run asynchronously, the loss's
  /// read-back at the end makes the sum right but the split approximate).
  double forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
};

/// model.train(), zero_grad, forward, loss, backward, `before_step` (when set: a data-parallel
/// run averages the gradients there), optimizer.step().
StepResult train_step(models::ClassifierImpl& model, torch::optim::Optimizer& optimizer, const torch::Tensor& inputs,
                      const torch::Tensor& targets, const LossSpec& loss,
                      const std::function<void()>& before_step = {});

/// model.eval() and NoGradGuard: logits of a batch, and its mean loss when targets are given.
struct EvalResult {
  torch::Tensor logits;
  std::optional<double> loss;
};
EvalResult evaluate(models::ClassifierImpl& model, const torch::Tensor& inputs,
                    const std::optional<torch::Tensor>& targets, const LossSpec& loss);

}  // namespace cxr::train
