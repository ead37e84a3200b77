// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The study's training augmentation, as torchvision applies it to PIL 'L' images:
/// RandomHorizontalFlip, RandomAdjustSharpness(factor), RandomAutocontrast, each with its own
/// probability, in that order. The draws for a scan depend only on (seed, epoch, index), so a
/// run reproduces whatever the threading.
#include <opencv2/core.hpp>
#include <cstdint>

namespace cxr::augment {

struct AugmentParams {
  double flip_probability = 0.5;          ///< RandomHorizontalFlip's p, in [0, 1]
  double sharpness_probability = 0.5;     ///< RandomAdjustSharpness's p, in [0, 1]
  double sharpness_factor = 2.0;          ///< ImageEnhance.Sharpness factor (>= 0; 1 = unchanged)
  double autocontrast_probability = 0.5;  ///< RandomAutocontrast's p, in [0, 1]
  uint64_t seed = 0;
};

/// Which operations a scan gets.
struct AugmentDraw {
  bool flip = false;
  bool sharpness = false;
  bool autocontrast = false;
};

/// splitmix64's finaliser: a well-mixed 64-bit hash of x.
uint64_t splitmix64(uint64_t x);

/// A uniform double in [0, 1) for draw number `stream` of scan (seed, epoch, index).
double uniform(uint64_t seed, uint64_t epoch, uint64_t index, uint64_t stream);

/// The draws for scan `index` in epoch `epoch` (a counter-based hash; no state).
AugmentDraw draw(const AugmentParams& params, uint64_t epoch, uint64_t index);

/// PIL's Image.transpose(FLIP_LEFT_RIGHT).
void horizontal_flip(const cv::Mat& src, cv::Mat& dst);

/// PIL's ImageEnhance.Sharpness(img).enhance(factor): the SMOOTH filter (3x3 [1 1 1; 1 5 1;
/// 1 1 1] / 13, border pixels copied) blended with the image, extrapolated and truncated as
/// Image.blend does. 8-bit: bit-exact; 16-bit: the same rule over 0..65535.
void adjust_sharpness(const cv::Mat& src, cv::Mat& dst, double factor);

/// PIL's ImageOps.autocontrast(img) (no cutoff): the darkest level -> 0, the brightest -> max,
/// linear in between, truncated. 8-bit: bit-exact; 16-bit: the same rule over 0..65535.
void autocontrast(const cv::Mat& src, cv::Mat& dst);

/// Validate params and apply the drawn operations in torchvision's order (flip, sharpness,
/// autocontrast). dst gets src's size and type; with no operation drawn it is a copy.
/// src and dst must not share pixels.
void apply(const cv::Mat& src, cv::Mat& dst, const AugmentParams& params, const AugmentDraw& ops);

/// Check params (probabilities in [0, 1], factor >= 0); throws InvalidArgument.
void validate(const AugmentParams& params);

}  // namespace cxr::augment
