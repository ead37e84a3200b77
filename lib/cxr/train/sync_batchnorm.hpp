// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// SyncBatchNorm: BatchNorm statistics over the global batch of a data-parallel step, with the
/// forward and backward passes of torch.nn.SyncBatchNorm (torch/nn/modules/_functions.py): the
/// forward sums each rank's count, sum and sum of squares (one allreduce per layer); the
/// backward sums sum(dy) and sum(dy * (x - mean)) over the ranks before the input gradient, while
/// weight and bias keep their local gradients (averaged with every other gradient afterwards).
/// Running statistics are updated from the global mean and unbiased variance.
#include <torch/nn/module.h>

#include "cxr/train/distributed.hpp"

namespace cxr::train {

/// Makes every cxr::models::BatchNorm2d in `model` compute its training statistics over all
/// ranks of `comm` (which must outlive the model's training). `comm == nullptr` undoes it.
void sync_batchnorms(torch::nn::Module& model, Communicator* comm);

}  // namespace cxr::train
