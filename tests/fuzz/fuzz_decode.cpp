// SPDX-License-Identifier: LGPL-2.1-or-later
// Scan decoding from bytes, as cxrdecode does: sniffing, then PNG (fast path and libpng), JPEG,
// or DICOM through DCMTK (native, JPEG, JPEG-LS, RLE, JPEG 2000). The same target is built as
// fuzz-png, fuzz-jpeg and fuzz-dicom, each with its own seeds, dictionary and (PNG) mutator.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/oflog/oflog.h>

#include <cstddef>
#include <cstdint>

#include "cxr/error.hpp"
#include "cxr/io/decode.hpp"
#include "decode_check.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // DCMTK warns on stderr about every oddity of a mutated file, which would dominate the run.
  OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The input's length picks the options, so every byte stays the scan's own.
  cxr::io::DecodeParams params;
  params.max_pixels = 4u * 1024 * 1024;  // small enough to keep executions fast
  params.force_8bit = size & 1;
  params.apply_voi = size & 2;
  params.stored_values = (size & 12) == 12;
  params.full_range = (size & 4) == 0 || params.stored_values;
  try {
    const cxr::io::Image image = cxr::io::decode(data, size, params);
    cxr::fuzz::check_image(image, params);
  } catch (const cxr::DecodeError&) {
  }
  return 0;
}
