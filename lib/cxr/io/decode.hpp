// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Decoding of encoded scans (PNG, JPEG, DICOM) into single-channel grey images.
///
/// Value ranges. `Image::pixels` is CV_8UC1 or CV_16UC1 (CV_16SC1 only for signed DICOM data
/// read with `stored_values`), and its values lie in [0, 2^Image::bits - 1]:
/// - `stored_values = true` (DICOM only): the stored values exactly as the file holds them
///   (masked to BitsStored, sign-extended when PixelRepresentation = 1), no Modality LUT, no
///   VOI, no MONOCHROME1 inversion; `bits = bits_stored`. This is what pydicom's `pixel_array`
///   returns and what parity checks compare.
/// - otherwise, with `full_range = false`: presentation values (Modality LUT / rescale, VOI when
///   asked, MONOCHROME1 inverted) in the source's own bit depth (a 10-bit scan gives 0..1023).
/// - with `full_range = true` (what the cxrdecode element uses): the same values scaled to the
///   whole range of the output depth by bit replication (v << (16 - b) | v >> (2b - 16) for a
///   b-bit source), so 0 stays 0, the source maximum becomes 65535, and `pixel / 65535` is the
///   intensity downstream normalisation expects.
/// Sources of 8 bits or fewer give CV_8UC1, deeper ones CV_16UC1 (`force_8bit` keeps the top 8
/// bits of the full-range value). PNG and JPEG grey output equals torchvision 0.14's
/// `read_image(path, ImageReadMode.GRAY)` bit for bit (RGB, RGBA and palette PNGs converted by
/// libpng's rgb_to_gray with torchvision's coefficients; JPEG through libjpeg's grey output).
/// Multi-frame DICOM: only the first frame is decoded.
#include <cstddef>
#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

namespace cxr::io {

/// Container format of an encoded scan, found from its content (never its file name).
enum class Format { Unknown, Png, Jpeg, Dicom };

/// "png", "jpeg", "dicom" or "unknown".
const char* format_name(Format format);

/// Looks at the first bytes: PNG signature, JPEG SOI, DICOM "DICM" at 128 or a bare DICOM
/// dataset (ACR-NEMA style, no preamble) starting with a group 0002/0008 element.
Format sniff(const uint8_t* data, size_t size);

struct DecodeParams {
  /// Largest rows * columns accepted, checked from the header before any pixel buffer is
  /// allocated, so a forged header cannot exhaust memory.
  uint64_t max_pixels = 64ull * 1024 * 1024;
  /// Always return 8-bit pixels (the top 8 bits of deeper sources).
  bool force_8bit = false;
  /// DICOM: apply the VOI LUT or window (center/width, VOI LUT Function) when the file has one.
  bool apply_voi = false;
  /// DICOM: return stored values only (see the header comment); overrides the options below.
  bool stored_values = false;
  /// Scale to the full range of the output depth by bit replication (see the header comment).
  bool full_range = true;
};

/// Identification fields of a DICOM scan (empty for PNG/JPEG and when absent).
struct DicomInfo {
  std::string patient_id;
  std::string study_uid;
  std::string series_uid;
  std::string sop_uid;
  std::string sop_class_uid;
  std::string modality;
  std::string transfer_syntax;  ///< UID of the transfer syntax the pixel data was read in
  int number_of_frames = 0;     ///< frames in the file (the first one is decoded)
  int bits_allocated = 0;
  int pixel_representation = 0;  ///< 0 unsigned, 1 two's complement
  double rescale_slope = 1.0;
  double rescale_intercept = 0.0;
  bool has_window = false;  ///< Window Center/Width present
  double window_center = 0.0;
  double window_width = 0.0;
};

/// One decoded scan.
struct Image {
  cv::Mat pixels;            ///< CV_8UC1 / CV_16UC1 (CV_16SC1 for signed stored values)
  int bits = 8;              ///< values of `pixels` lie in [0, 2^bits - 1]
  int bits_stored = 8;       ///< bit depth of the source (PNG bit depth, DICOM BitsStored)
  std::string photometric;   ///< DICOM PhotometricInterpretation; PNG/JPEG: GRAY, GRAY_ALPHA,
                             ///< RGB, RGBA, PALETTE / GRAY, YCbCr, RGB, CMYK, YCCK
  Format format = Format::Unknown;
  DicomInfo dicom;
};

/// Decodes one whole encoded scan held in memory. Throws cxr::DecodeError (unknown format,
/// corrupt or truncated data, unsupported variant, size above max_pixels) with a readable reason.
Image decode(const uint8_t* data, size_t size, const DecodeParams& params = {});

/// Reads a file and decodes it; the error message names the file. Throws cxr::IoError when the
/// file cannot be read.
Image decode_file(const std::string& path, const DecodeParams& params = {});

/// Deepest nesting of sequences and items in a DICOM stream (Part 10 or bare dataset), found by
/// a walk over the element headers that keeps its own stack instead of recursing. DCMTK's
/// parser recurses once per level, so a few megabytes of nested sequences overflow the stack
/// of whatever thread reads them; decode() and the C-STORE listener check this first. Counting
/// stops past `limit`. A stream the walk cannot follow (truncated, inconsistent lengths) is
/// measured as far as it goes; when an element there declares more bytes than the stream has
/// left, `overrun` (if given) gets its offset, else it is set to SIZE_MAX.
int dicom_nesting_depth(const uint8_t* data, size_t size, int limit, size_t* overrun = nullptr);

/// Nesting (sequences plus items) readers accept: far deeper than real images and structured
/// reports, far shallower than a stack overflow.
constexpr int kMaxDicomNesting = 128;

/// Expands `bits`-bit values (in [0, 2^bits - 1]) to the full range of `out_bits` (8 or 16) by
/// bit replication; src and dst may be the same Mat. dst becomes CV_8U for 8, CV_16U for 16.
void expand_bits(const cv::Mat& src, cv::Mat& dst, int bits, int out_bits);

}  // namespace cxr::io
