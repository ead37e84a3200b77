// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/input.hpp"

#include <string>

#include "cxr/error.hpp"
#include "cxr/preprocess/resize.hpp"

namespace cxr::models {

void scale_to_input(const cv::Mat& scan, cv::Mat& dst, cv::Size size) {
  if (scan.size() == size) {
    scan.copyTo(dst);
    return;
  }
  // Pillow's antialiased bilinear, bit-exact for 8-bit: what torchvision's Resize((h, w)) does
  // to the PIL images the study trained on.
  cxr::preprocess::ResizeParams params;
  params.mode = cxr::preprocess::ResizeMode::Stretch;
  params.method = cxr::preprocess::ResizeMethod::Antialias;
  params.width = size.width;
  params.height = size.height;
  cxr::preprocess::resize(scan, dst, params);
}

void prepare_input_into(const cv::Mat& scan, const InputSpec& spec, float* dst) {
  if (scan.empty() || scan.channels() != 1 || (scan.depth() != CV_8U && scan.depth() != CV_16U)) {
    throw InvalidArgument("model input must be a non-empty 8- or 16-bit grey image (got type " +
                          std::to_string(scan.type()) + ", " + std::to_string(scan.cols) + "x" +
                          std::to_string(scan.rows) + ")");
  }
  if (spec.channels < 1 || spec.height < 1 || spec.width < 1) throw InvalidArgument("invalid model input size");
  cv::Mat scaled = scan;  // a scan of the input size is read in place
  if (scan.size() != cv::Size(spec.width, spec.height)) scale_to_input(scan, scaled, cv::Size(spec.width, spec.height));
  const double range = scan.depth() == CV_16U ? 65535.0 : 255.0;
  const size_t plane = static_cast<size_t>(spec.height) * static_cast<size_t>(spec.width);
  for (int c = 0; c < spec.channels; ++c) {
    // (x / range - mean) / std in float32, the order torchvision's ToTensor + Normalize use.
    cv::Mat out(spec.height, spec.width, CV_32F, dst + plane * static_cast<size_t>(c));
    const float mean = spec.mean_of(c);
    const float sd = spec.std_of(c);
    if (c > 0 && mean == spec.mean_of(0) && sd == spec.std_of(0)) {
      cv::Mat(spec.height, spec.width, CV_32F, dst).copyTo(out);
      continue;
    }
    for (int y = 0; y < spec.height; ++y) {
      float* o = out.ptr<float>(y);
      if (scaled.depth() == CV_8U) {
        const uint8_t* s = scaled.ptr<uint8_t>(y);
        for (int x = 0; x < spec.width; ++x) o[x] = (static_cast<float>(s[x]) / 255.0f - mean) / sd;
      } else {
        const uint16_t* s = scaled.ptr<uint16_t>(y);
        for (int x = 0; x < spec.width; ++x) o[x] = (static_cast<float>(s[x]) / static_cast<float>(range) - mean) / sd;
      }
    }
  }
}

cv::Mat prepare_input(const cv::Mat& scan, const InputSpec& spec) {
  cv::Mat out(spec.channels * spec.height, spec.width, CV_32F);
  prepare_input_into(scan, spec, out.ptr<float>());
  return out;
}

}  // namespace cxr::models
