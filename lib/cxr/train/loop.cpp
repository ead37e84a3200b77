// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/train/loop.hpp"

#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

#include "cxr/models/classifier.hpp"

namespace cxr::train {

namespace F = torch::nn::functional;

torch::Tensor compute_loss(const torch::Tensor& logits, const torch::Tensor& targets, const LossSpec& loss) {
  if (loss.multilabel) {
    auto opts = F::BinaryCrossEntropyWithLogitsFuncOptions();
    if (loss.pos_weight.defined()) opts.pos_weight(loss.pos_weight);
    return F::binary_cross_entropy_with_logits(logits, targets, opts);
  }
  auto opts = F::CrossEntropyFuncOptions();
  if (loss.class_weights.defined()) opts.weight(loss.class_weights);
  return F::cross_entropy(logits, targets, opts);
}

torch::Tensor probabilities(const torch::Tensor& logits, bool multilabel) {
  return multilabel ? torch::sigmoid(logits) : torch::softmax(logits, 1);
}

StepResult train_step(models::ClassifierImpl& model, torch::optim::Optimizer& optimizer, const torch::Tensor& inputs,
                      const torch::Tensor& targets, const LossSpec& loss) {
  model.train();
  optimizer.zero_grad();
  torch::Tensor logits = model.forward(inputs);
  torch::Tensor l = compute_loss(logits, targets, loss);
  l.backward();
  optimizer.step();
  return {l.item<double>(), logits.detach()};
}

EvalResult evaluate(models::ClassifierImpl& model, const torch::Tensor& inputs,
                    const std::optional<torch::Tensor>& targets, const LossSpec& loss) {
  torch::NoGradGuard no_grad;
  model.eval();
  EvalResult r;
  r.logits = model.forward(inputs);
  if (targets) r.loss = compute_loss(r.logits, *targets, loss).item<double>();
  return r;
}

}  // namespace cxr::train
