// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Histogram equalization of grey scans: torchvision's F.equalize, OpenCV's equalizeHist, CLAHE.
#include <opencv2/core.hpp>
#include <string>

namespace cxr::preprocess {

enum class EqualizeMode {
  Torchvision,  ///< bit-exact with torchvision 0.14 F.equalize on uint8; same rule over 65536 bins for 16-bit
  OpenCV,       ///< cv::equalizeHist for 8-bit; the same rule over 65536 bins for 16-bit
  Clahe,        ///< cv::CLAHE (8- and 16-bit)
};

struct EqualizeParams {
  EqualizeMode mode = EqualizeMode::Torchvision;
  double clip_limit = 2.0;  ///< CLAHE contrast limit (> 0), as cv::createCLAHE's clipLimit
  int tile_grid = 8;        ///< CLAHE tiles per side (1..256)
};

/// "torchvision" / "opencv" / "clahe"; throws InvalidArgument for anything else.
EqualizeMode equalize_mode_from_string(const std::string& s);
const char* to_string(EqualizeMode mode);

/// Equalize an 8- or 16-bit single-channel image (any stride; src may be a ROI). dst gets src's
/// size and depth; src and dst may be the same Mat.
void equalize(const cv::Mat& src, cv::Mat& dst, const EqualizeParams& params);

}  // namespace cxr::preprocess
