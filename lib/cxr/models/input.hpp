// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// From a grey scan to the network's input: scale a copy to the card's size, pixel / 255 (or
/// / 65535 for 16-bit), normalise per channel, replicate grey to the card's channels.
#include <opencv2/core.hpp>

#include "cxr/models/card.hpp"

namespace cxr::models {

/// Scales a copy of an 8- or 16-bit grey scan to `size` (width x height), keeping its depth, with
/// Pillow's antialiased bilinear (torchvision's Resize on PIL images; cxr::preprocess::resize).
/// A scan already of that size is copied unchanged.
void scale_to_input(const cv::Mat& scan, cv::Mat& dst, cv::Size size);

/// The normalised input of one scan: CV_32FC1 with channels * height rows and width columns,
/// channel planes one after the other (the memory layout of a [C, H, W] tensor). `scan` is
/// CV_8UC1 or CV_16UC1 of any size and stride. Throws cxr::InvalidArgument otherwise.
cv::Mat prepare_input(const cv::Mat& scan, const InputSpec& spec);

/// As prepare_input(), writing into `dst` (channels * height * width floats).
void prepare_input_into(const cv::Mat& scan, const InputSpec& spec, float* dst);

}  // namespace cxr::models
