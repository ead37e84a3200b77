// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Writing frames to image files (PNG keeps 16-bit data as 16-bit).
#include <opencv2/core.hpp>
#include <string>

namespace cxr::util {

/// Writes an 8/16-bit grey, RGB or RGBA image as PNG (fast compression). The Mat's channel
/// order is RGB(A), as GStreamer frames are. Throws cxr::IoError naming the file on failure;
/// the file appears atomically (temp file + rename).
void write_png(const std::string& path, const cv::Mat& image);

/// A file-name stem from a scan path: "a/b/IM-0001.jpeg" -> "IM-0001".
std::string file_stem(const std::string& path);

}  // namespace cxr::util
