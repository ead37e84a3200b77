// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Tensor-level Grad-CAM on any gst-cxr classifier: for training code, tests and benchmarks
/// that hold a model and a batch. gradcam.hpp is the scan-level interface without LibTorch types.
#include <torch/types.h>

#include <string>
#include <vector>

#include "cxr/explain/gradcam.hpp"
#include "cxr/models/classifier.hpp"

namespace cxr::explain {

/// Raw class activation maps of a batch.
struct CamTensors {
  torch::Tensor logits;  ///< [N, classes], from the same forward pass
  torch::Tensor maps;    ///< [N, h, w] at the target layer's resolution, ReLU'd, float32, CPU or device
};

/// Grad-CAM / Grad-CAM++ of `input` ([N, C, H, W] on the model's device) for class
/// `targets[n]` of sample n (a negative entry: that sample's argmax). `layer` is empty or the
/// model's features_layer() for the features() output, or one of cam_layers(). Runs with
/// autograd enabled whatever the caller's mode, and leaves no gradients in the parameters; the
/// model should be in eval mode. Throws cxr::InvalidArgument for bad targets or layers.
CamTensors compute_cams(cxr::models::ClassifierImpl& model, const torch::Tensor& input,
                        const std::vector<int64_t>& targets, CamMethod method, const std::string& layer = "");

/// Bilinear upsampling of maps [N, h, w] to [N, height, width] (half-pixel centres, as
/// F.interpolate(align_corners=False)).
torch::Tensor upsample_cams(const torch::Tensor& maps, int64_t height, int64_t width);

}  // namespace cxr::explain
