// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// Helpers shared by the Catch2 tests: where the sample scans are, reading files, noise images.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace cxrtest {

inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

/// data/samples of the source tree (set by meson as CXR_SAMPLES).
inline std::string samples(const std::string& rel = "") {
  const std::string root = env_or("CXR_SAMPLES", "data/samples");
  return rel.empty() ? root : root + "/" + rel;
}

/// An image of `type` (CV_8U or CV_16U) filled with uniform noise over the whole range; the same
/// for the same seed.
inline cv::Mat random_image(cv::Size size, int type, uint64_t seed) {
  cv::Mat m(size, type);
  cv::RNG(seed).fill(m, cv::RNG::UNIFORM, 0, type == CV_8U ? 256 : 65536);
  return m;
}

inline std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
}

/// A fresh folder under the temp dir, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int n = 0;
    path = std::filesystem::temp_directory_path() /
           ("cxr-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& rel) const { return (path / rel).string(); }
  /// Writes text to rel (creating folders).
  void touch(const std::string& rel, const std::string& text = "x") const {
    std::filesystem::create_directories((path / rel).parent_path());
    std::ofstream(path / rel, std::ios::binary) << text;
  }
};

}  // namespace cxrtest
