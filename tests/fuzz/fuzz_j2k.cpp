// SPDX-License-Identifier: LGPL-2.1-or-later
// JPEG 2000 decoding (a codestream or a JP2 file), as the DICOM reader calls it for the
// fragments of an encapsulated frame: OpenJPEG behind our stream callbacks, the max-pixels
// guard, and the conversion of the first component to a cv::Mat.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "cxr/error.hpp"
#include "cxr/io/detail.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cxr::io::DecodeParams params;
  params.max_pixels = 4u * 1024 * 1024;
  try {
    const cxr::io::detail::J2kFrame f = cxr::io::detail::decode_j2k(data, size, params);
    const int depth = f.pixels.depth();
    const bool type_ok = f.is_signed ? depth == CV_16S : (f.precision <= 8 ? depth == CV_8U : depth == CV_16U);
    if (!type_ok || f.pixels.channels() != 1 || uint64_t(f.pixels.total()) > params.max_pixels) {
      std::fprintf(stderr, "decode_j2k: frame type or size differs from what it declares\n");
      std::abort();
    }
  } catch (const cxr::DecodeError&) {
  }
  return 0;
}
