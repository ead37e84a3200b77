// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/util/image_write.hpp"

#include <cstdio>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "cxr/error.hpp"

namespace cxr::util {

void write_png(const std::string& path, const cv::Mat& image) {
  if (image.empty()) throw InvalidArgument(path + ": no image to write");
  cv::Mat bgr;
  if (image.channels() == 3) cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
  else if (image.channels() == 4) cv::cvtColor(image, bgr, cv::COLOR_RGBA2BGRA);
  else bgr = image;
  std::vector<uchar> bytes;
  // Level 1: results are written per scan on the streaming thread; speed beats size here.
  if (!cv::imencode(".png", bgr, bytes, {cv::IMWRITE_PNG_COMPRESSION, 1}))
    throw IoError(path + ": PNG encoding failed");
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw IoError(tmp + ": cannot create file");
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    throw IoError(path + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw IoError(path + ": rename failed");
}

std::string file_stem(const std::string& path) { return std::filesystem::path(path).stem().string(); }

}  // namespace cxr::util
