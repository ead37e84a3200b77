// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/train/loop.hpp"

#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

#include <chrono>

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
                      const torch::Tensor& targets, const LossSpec& loss,
                      const std::function<void()>& before_step) {
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  model.train();
  const auto t0 = clock::now();
  optimizer.zero_grad();
  torch::Tensor logits = model.forward(inputs);
  torch::Tensor l = compute_loss(logits, targets, loss);
  const auto t1 = clock::now();
  l.backward();
  const auto t2 = clock::now();
  if (before_step) before_step();
  const auto t2b = clock::now();
  optimizer.step();
  StepResult r{l.item<double>(), logits.detach()};
  const auto t3 = clock::now();
  r.forward_seconds = seconds(t0, t1);
  r.backward_seconds = seconds(t1, t2);
  r.optimizer_seconds = seconds(t2b, t3);
  return r;
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
