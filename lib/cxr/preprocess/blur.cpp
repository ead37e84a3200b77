// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/preprocess/blur.hpp"

#include <cmath>
#include <opencv2/imgproc.hpp>
#include <string>

#include "cxr/error.hpp"

namespace cxr::preprocess {

double default_sigma(int kernel_size) { return 0.15 * kernel_size + 0.35; }

std::vector<float> gaussian_kernel(int kernel_size, double sigma) {
  // Same float32 steps as torchvision: linspace, exp(-0.5 (x / sigma)^2), divide by the sum.
  std::vector<float> k(static_cast<size_t>(kernel_size));
  const float half = static_cast<float>(kernel_size - 1) * 0.5f;
  const float s = static_cast<float>(sigma);
  float sum = 0.f;
  for (int i = 0; i < kernel_size; ++i) {
    const float x = kernel_size == 1 ? -half : -half + (2.f * half) * static_cast<float>(i) / static_cast<float>(kernel_size - 1);
    const float r = x / s;
    k[static_cast<size_t>(i)] = std::exp(-0.5f * r * r);
    sum += k[static_cast<size_t>(i)];
  }
  for (auto& v : k) v /= sum;
  return k;
}

void gaussian_blur(const cv::Mat& src, cv::Mat& dst, const BlurParams& params) {
  if (src.empty()) throw InvalidArgument("gaussian_blur: empty image");
  if (src.channels() != 1 || (src.depth() != CV_8U && src.depth() != CV_16U))
    throw InvalidArgument("gaussian_blur: expected 8- or 16-bit grey, got type " + std::to_string(src.type()));
  if (params.kernel_size < 1 || params.kernel_size % 2 == 0)
    throw InvalidArgument("gaussian_blur: kernel-size must be odd and >= 1, got " + std::to_string(params.kernel_size));
  const int half = params.kernel_size / 2;
  if (half >= src.rows || half >= src.cols)
    throw InvalidArgument("gaussian_blur: kernel-size " + std::to_string(params.kernel_size) +
                          " too large for a " + std::to_string(src.cols) + "x" + std::to_string(src.rows) +
                          " image (reflect padding needs a larger image)");
  if (params.kernel_size == 1) {
    if (&src != &dst) src.copyTo(dst);
    return;
  }
  const double sigma = params.sigma > 0 ? params.sigma : default_sigma(params.kernel_size);
  const std::vector<float> k = gaussian_kernel(params.kernel_size, sigma);
  const cv::Mat kernel(1, params.kernel_size, CV_32F, const_cast<float*>(k.data()));
  // Separable float filtering with round-to-nearest on output; torch's "reflect" is
  // OpenCV's BORDER_REFLECT_101. BORDER_ISOLATED: a ROI's border reflects its own pixels, not
  // the parent image's beyond it.
  cv::sepFilter2D(src, dst, src.depth(), kernel, kernel, cv::Point(-1, -1), 0.0,
                  cv::BORDER_REFLECT_101 | cv::BORDER_ISOLATED);
}

}  // namespace cxr::preprocess
