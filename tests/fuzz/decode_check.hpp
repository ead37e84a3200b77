// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// What every decoded scan must satisfy, whatever its file said (decode.hpp's contract): a
// single-channel image of the promised type within max_pixels, values inside [0, 2^bits - 1].
#include <cstdio>
#include <cstdlib>

#include "cxr/io/decode.hpp"

namespace cxr::fuzz {

[[noreturn]] inline void contract_broken(const char* what) {
  std::fprintf(stderr, "decode contract broken: %s\n", what);
  std::abort();
}

inline void check_image(const cxr::io::Image& image, const cxr::io::DecodeParams& params) {
  const cv::Mat& m = image.pixels;
  if (m.empty() || m.channels() != 1) contract_broken("empty or multi-channel pixels");
  if (uint64_t(m.rows) * uint64_t(m.cols) > params.max_pixels) contract_broken("more pixels than max_pixels");
  const int depth = m.depth();
  if (depth != CV_8U && depth != CV_16U && !(depth == CV_16S && params.stored_values))
    contract_broken("pixel type is not CV_8UC1 / CV_16UC1 (or CV_16SC1 for signed stored values)");
  if (params.force_8bit && !params.stored_values && depth != CV_8U) contract_broken("force_8bit gave deep pixels");
  if (image.bits < 1 || image.bits > (depth == CV_8U ? 8 : 16)) contract_broken("bits outside the pixel type");
  if (depth == CV_16S) return;
  double lo = 0, hi = 0;
  cv::minMaxLoc(m, &lo, &hi);
  if (hi > double((1 << image.bits) - 1)) contract_broken("a value exceeds 2^bits - 1");
  // Reading every row also lets ASan see a pixel buffer smaller than its header.
}

}  // namespace cxr::fuzz
