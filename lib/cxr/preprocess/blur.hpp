// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Gaussian blur matching torchvision's F.gaussian_blur (float kernel, reflect border, rounding).
#include <opencv2/core.hpp>
#include <vector>

namespace cxr::preprocess {

struct BlurParams {
  int kernel_size = 5;  ///< odd, >= 1 (1 = copy)
  double sigma = 0.0;   ///< <= 0: torchvision's default 0.3 * ((k - 1) / 2 - 1) + 0.8 = 0.15 k + 0.35
};

/// The sigma torchvision uses when none is given.
double default_sigma(int kernel_size);

/// torchvision's normalised 1-D kernel (float32 arithmetic, as _get_gaussian_kernel1d).
std::vector<float> gaussian_kernel(int kernel_size, double sigma);

/// Blur an 8- or 16-bit single-channel image (any stride; src may be a ROI). dst gets src's
/// size and depth; src and dst may be the same Mat.
void gaussian_blur(const cv::Mat& src, cv::Mat& dst, const BlurParams& params);

}  // namespace cxr::preprocess
