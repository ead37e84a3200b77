// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// Internal interface between decode.cpp and the per-format decoders.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cxr/io/decode.hpp"

namespace cxr::io::detail {

/// Throws DecodeError when width * height exceeds params.max_pixels (or either is zero).
void check_size(uint64_t width, uint64_t height, const DecodeParams& params, const char* what);

/// Applies full_range / force_8bit to an image whose pixels hold `bits`-bit values.
void finish_depth(Image& image, const DecodeParams& params);

Image decode_png(const uint8_t* data, size_t size, const DecodeParams& params);
Image decode_jpeg(const uint8_t* data, size_t size, const DecodeParams& params);
Image decode_dicom(const uint8_t* data, size_t size, const DecodeParams& params);

/// A decoded JPEG 2000 component: stored values, the codestream's precision and signedness.
struct J2kFrame {
  cv::Mat pixels;  ///< CV_16UC1 (CV_16SC1 when signed) or CV_8UC1 for precision <= 8
  int precision = 0;
  bool is_signed = false;
  int components = 0;
};

/// Decodes a JPEG 2000 codestream (or JP2 file) with OpenJPEG; only the first component is
/// returned. The size is checked against params.max_pixels from the header before decoding.
J2kFrame decode_j2k(const uint8_t* data, size_t size, const DecodeParams& params);

}  // namespace cxr::io::detail
