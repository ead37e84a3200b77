// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/augment/augment.hpp"

#include <algorithm>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "cxr/error.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CXR_HOT __attribute__((target_clones("avx2", "default")))
#else
#define CXR_HOT
#endif

namespace cxr::augment {

namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;

void check_grey(const cv::Mat& src, const char* fn) {
  if (src.empty()) throw InvalidArgument(std::string(fn) + ": empty image");
  if (src.channels() != 1 || (src.depth() != CV_8U && src.depth() != CV_16U))
    throw InvalidArgument(std::string(fn) + ": expected 8- or 16-bit grey, got type " + std::to_string(src.type()));
}

// One interior row of PIL's SMOOTH filter blended with the image. SMOOTH's float sum
// 0.5 + S / 13 (S = the 3x3 sum + 4 x centre) is never within float error of an integer, so
// truncating it equals the integer (2 S + 13) / 26. The blend is Image.blend's float
// expression d + alpha * (img - d), truncated (alpha in [0, 1]) or clipped and truncated.
CXR_HOT void sharpen_row_8u(const uint8_t* up, const uint8_t* mid, const uint8_t* down, uint8_t* out, int n,
                            float alpha, bool interpolate) {
  for (int x = 1; x < n - 1; ++x) {
    const int s = up[x - 1] + up[x] + up[x + 1] + mid[x - 1] + 5 * mid[x] + mid[x + 1] + down[x - 1] + down[x] +
                  down[x + 1];
    const int d = (2 * s + 13) / 26;
    const float t = static_cast<float>(d) + alpha * static_cast<float>(mid[x] - d);
    if (interpolate)
      out[x] = static_cast<uint8_t>(t);
    else
      out[x] = t <= 0.f ? 0 : (t >= 255.f ? 255 : static_cast<uint8_t>(t));
  }
}

CXR_HOT void sharpen_row_16u(const uint16_t* up, const uint16_t* mid, const uint16_t* down, uint16_t* out, int n,
                             double alpha) {
  for (int x = 1; x < n - 1; ++x) {
    const int64_t s = int64_t(up[x - 1]) + up[x] + up[x + 1] + mid[x - 1] + 5 * int64_t(mid[x]) + mid[x + 1] +
                      down[x - 1] + down[x] + down[x + 1];
    const int64_t d = (2 * s + 13) / 26;
    const double t = static_cast<double>(d) + alpha * static_cast<double>(int64_t(mid[x]) - d);
    out[x] = t <= 0.0 ? 0 : (t >= 65535.0 ? 65535 : static_cast<uint16_t>(t));
  }
}

// The border pixels of the SMOOTH image are the image's own, so the blend leaves them as they
// are: d + alpha * 0 == d.
template <typename T, typename RowFn>
void sharpen(const cv::Mat& src, cv::Mat& dst, RowFn row) {
  const int rows = src.rows, cols = src.cols;
  for (int y = 0; y < rows; ++y) {
    const T* s = src.ptr<T>(y);
    T* d = dst.ptr<T>(y);
    if (y == 0 || y == rows - 1 || rows < 3 || cols < 3) {
      std::copy(s, s + cols, d);
      continue;
    }
    d[0] = s[0];
    d[cols - 1] = s[cols - 1];
    row(src.ptr<T>(y - 1), s, src.ptr<T>(y + 1), d, cols);
  }
}

}  // namespace

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + kGolden;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double uniform(uint64_t seed, uint64_t epoch, uint64_t index, uint64_t stream) {
  // Chained hashing keeps (seed, epoch, index) triples that differ anywhere apart.
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ epoch);
  h = splitmix64(h ^ index);
  h = splitmix64(h + (stream + 1) * kGolden);
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

void validate(const AugmentParams& p) {
  auto check_p = [](double v, const char* name) {
    if (!(v >= 0.0 && v <= 1.0))
      throw InvalidArgument(std::string("augment: ") + name + " must be in [0, 1], got " + std::to_string(v));
  };
  check_p(p.flip_probability, "flip-probability");
  check_p(p.sharpness_probability, "sharpness-probability");
  check_p(p.autocontrast_probability, "autocontrast-probability");
  if (!(p.sharpness_factor >= 0.0))
    throw InvalidArgument("augment: sharpness-factor must be >= 0, got " + std::to_string(p.sharpness_factor));
}

AugmentDraw draw(const AugmentParams& p, uint64_t epoch, uint64_t index) {
  // One independent stream per operation, as torchvision draws torch.rand(1) once per transform.
  AugmentDraw d;
  d.flip = uniform(p.seed, epoch, index, 0) < p.flip_probability;
  d.sharpness = uniform(p.seed, epoch, index, 1) < p.sharpness_probability;
  d.autocontrast = uniform(p.seed, epoch, index, 2) < p.autocontrast_probability;
  return d;
}

void horizontal_flip(const cv::Mat& src, cv::Mat& dst) {
  check_grey(src, "horizontal_flip");
  if (src.data == dst.data && src.size() == dst.size()) {
    cv::Mat copy = src.clone();
    cv::flip(copy, dst, 1);
    return;
  }
  cv::flip(src, dst, 1);
}

void adjust_sharpness(const cv::Mat& src_in, cv::Mat& dst, double factor) {
  check_grey(src_in, "adjust_sharpness");
  if (!(factor >= 0.0)) throw InvalidArgument("adjust_sharpness: factor must be >= 0, got " + std::to_string(factor));
  const cv::Mat src = src_in.data == dst.data ? src_in.clone() : src_in;
  dst.create(src.size(), src.type());
  if (src.depth() == CV_8U) {
    // Image.blend takes alpha as a C float.
    const float alpha = static_cast<float>(factor);
    const bool interpolate = alpha >= 0.f && alpha <= 1.f;
    sharpen<uint8_t>(src, dst, [&](const uint8_t* u, const uint8_t* m, const uint8_t* d, uint8_t* o, int n) {
      sharpen_row_8u(u, m, d, o, n, alpha, interpolate);
    });
  } else {
    sharpen<uint16_t>(src, dst, [&](const uint16_t* u, const uint16_t* m, const uint16_t* d, uint16_t* o, int n) {
      sharpen_row_16u(u, m, d, o, n, factor);
    });
  }
}

void autocontrast(const cv::Mat& src, cv::Mat& dst) {
  check_grey(src, "autocontrast");
  double lo_d, hi_d;
  cv::minMaxLoc(src, &lo_d, &hi_d);
  const int lo = static_cast<int>(lo_d), hi = static_cast<int>(hi_d);
  if (hi <= lo) {
    if (src.data != dst.data) src.copyTo(dst);
    return;
  }
  // ImageOps.autocontrast's LUT in Python floats: int(ix * scale + offset), clipped.
  const int maxval = src.depth() == CV_8U ? 255 : 65535;
  const double scale = static_cast<double>(maxval) / (hi - lo);
  const double offset = -lo * scale;
  auto level = [&](int ix) {
    const int v = static_cast<int>(ix * scale + offset);
    return v < 0 ? 0 : (v > maxval ? maxval : v);
  };
  if (src.depth() == CV_8U) {
    cv::Mat lut(1, 256, CV_8U);
    for (int ix = 0; ix < 256; ++ix) lut.at<uint8_t>(ix) = static_cast<uint8_t>(level(ix));
    cv::LUT(src, lut, dst);
    return;
  }
  std::vector<uint16_t> lut(65536);
  for (int ix = 0; ix < 65536; ++ix) lut[static_cast<size_t>(ix)] = static_cast<uint16_t>(level(ix));
  dst.create(src.size(), src.type());
  for (int y = 0; y < src.rows; ++y) {
    const uint16_t* s = src.ptr<uint16_t>(y);
    uint16_t* d = dst.ptr<uint16_t>(y);
    for (int x = 0; x < src.cols; ++x) d[x] = lut[s[x]];
  }
}

void apply(const cv::Mat& src, cv::Mat& dst, const AugmentParams& params, const AugmentDraw& ops) {
  check_grey(src, "augment");
  validate(params);
  // Each step reads `cur` and writes dst; only the sharpness step cannot run in place.
  bool in_dst = false;
  if (ops.flip) {
    horizontal_flip(src, dst);
    in_dst = true;
  }
  if (ops.sharpness) {
    adjust_sharpness(in_dst ? dst : src, dst, params.sharpness_factor);
    in_dst = true;
  }
  if (ops.autocontrast) {
    autocontrast(in_dst ? dst : src, dst);
    in_dst = true;
  }
  if (!in_dst) src.copyTo(dst);
}

}  // namespace cxr::augment
