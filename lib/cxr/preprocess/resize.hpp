// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Resize of grey scans: fixed size, shorter side (torchvision's Resize(int)), letterbox, center
/// crop. The antialiased method reproduces Pillow's BILINEAR resample, which is what torchvision's
/// Resize does to PIL images.
#include <opencv2/core.hpp>
#include <string>

namespace cxr::preprocess {

enum class ResizeMode {
  Stretch,      ///< exactly width x height, aspect ratio not kept
  ShorterSide,  ///< shorter side to `size`, longer side int(size * long / short) as torchvision
  Letterbox,    ///< fit inside width x height keeping the aspect ratio, centred, padded with `fill`
  CenterCrop,   ///< cover width x height keeping the aspect ratio, then crop the centre (offsets
                ///< round((in - out) / 2) as torchvision's center_crop); a square box equals
                ///< torchvision's Resize(s) + CenterCrop(s)
};

enum class ResizeMethod {
  Antialias,  ///< Pillow's BILINEAR resample (triangle filter widened by the downscale factor)
  Bilinear,   ///< cv::INTER_LINEAR (no antialiasing; fast)
  Area,       ///< cv::INTER_AREA
  Nearest,    ///< cv::INTER_NEAREST
};

struct ResizeParams {
  ResizeMode mode = ResizeMode::ShorterSide;
  ResizeMethod method = ResizeMethod::Antialias;
  int width = 256;   ///< target width (stretch, letterbox, center-crop)
  int height = 256;  ///< target height (stretch, letterbox, center-crop)
  int size = 256;    ///< target shorter side (shorter-side)
  int fill = 0;      ///< letterbox padding value (grey level of the image's depth)
};

ResizeMode resize_mode_from_string(const std::string& s);
const char* to_string(ResizeMode mode);
ResizeMethod resize_method_from_string(const std::string& s);
const char* to_string(ResizeMethod method);

/// torchvision's _compute_resized_output_size for an int size: the shorter side becomes
/// `size`, the longer int(size * long / short).
cv::Size shorter_side_size(cv::Size in, int size);

/// The size of resize()'s output for an input of size `in`. Throws InvalidArgument for
/// parameters out of range.
cv::Size resized_size(cv::Size in, const ResizeParams& params);

/// Pillow's Image.resize(size, BILINEAR, box) for one grey channel: 8-bit in Pillow's fixed
/// point (bit-exact), 16-bit with the same coefficients in floating point, rounded. box is the
/// source region in pixels (x, y, width, height); an empty box means the whole image. src and
/// dst must not share pixels.
void resample_antialias(const cv::Mat& src, cv::Mat& dst, cv::Size out, cv::Rect2f box = cv::Rect2f());

/// Resize an 8- or 16-bit single-channel image (any stride; src may be a ROI). dst gets
/// resized_size(src.size(), params) and src's depth. src and dst must not share pixels.
void resize(const cv::Mat& src, cv::Mat& dst, const ResizeParams& params);

}  // namespace cxr::preprocess
