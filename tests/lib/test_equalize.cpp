// SPDX-License-Identifier: LGPL-2.1-or-later
// Histogram equalization: torchvision's rule (8-bit bit-exact), OpenCV's, CLAHE; 8/16-bit, ROIs.
#include "cxr_catch.hpp"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/preprocess/equalize.hpp"

using namespace cxr::preprocess;

namespace {

// A scan-like image: a skewed distribution (most pixels dark), the full range touched.
cv::Mat skewed_image(cv::Size size, int type, uint64_t seed) {
  cv::Mat f(size, CV_64F);
  cv::RNG rng(seed);
  rng.fill(f, cv::RNG::UNIFORM, 0.0, 1.0);
  cv::pow(f, 3.0, f);
  cv::Mat m;
  f.convertTo(m, type, type == CV_8U ? 255.0 : 65535.0);
  return m;
}

// torchvision's _scale_channel transcribed from Python for `levels` levels.
template <typename T>
cv::Mat reference_torchvision(const cv::Mat& src, int64_t levels) {
  std::vector<int64_t> hist(static_cast<size_t>(levels), 0);
  for (int y = 0; y < src.rows; ++y)
    for (int x = 0; x < src.cols; ++x) ++hist[src.at<T>(y, x)];
  std::vector<int64_t> nonzero;
  for (int64_t c : hist)
    if (c) nonzero.push_back(c);
  int64_t head = 0;
  for (size_t i = 0; i + 1 < nonzero.size(); ++i) head += nonzero[i];
  const int64_t step = head / (levels - 1);
  if (step == 0) return src.clone();
  std::vector<int64_t> lut(static_cast<size_t>(levels), 0);
  int64_t cum = 0;
  for (size_t i = 0; i < hist.size(); ++i) {
    cum += hist[i];
    if (i + 1 < hist.size()) lut[i + 1] = std::min<int64_t>((cum + step / 2) / step, levels - 1);
  }
  cv::Mat dst(src.size(), src.type());
  for (int y = 0; y < src.rows; ++y)
    for (int x = 0; x < src.cols; ++x) dst.at<T>(y, x) = static_cast<T>(lut[src.at<T>(y, x)]);
  return dst;
}

EqualizeParams mode(EqualizeMode m) {
  EqualizeParams p;
  p.mode = m;
  return p;
}

}  // namespace

TEST_CASE("equalize: torchvision's LUT on a known image", "[equalize]") {
  // torchvision 0.14 F.equalize on v(y, x) = (x^2 + 3y) % 61 + 90, 64x48: the level each input
  // level 90..150 maps to.
  const int expected[61] = {0,   5,   9,   14,  19,  23,  29,  33,  38,  43,  47,  51,  56,  61,  65,  71,
                            75,  80,  85,  90,  94,  99,  104, 108, 113, 118, 122, 127, 131, 136, 141, 145,
                            149, 154, 158, 163, 167, 172, 176, 180, 185, 189, 193, 198, 202, 206, 211, 215,
                            219, 224, 229, 233, 238, 242, 247, 251, 255, 255, 255, 255, 255};
  cv::Mat src(48, 64, CV_8U);
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x) src.at<uint8_t>(y, x) = static_cast<uint8_t>((x * x + 3 * y) % 61 + 90);
  cv::Mat out;
  equalize(src, out, {});
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x) {
      INFO("pixel " << x << "," << y);
      REQUIRE(int(out.at<uint8_t>(y, x)) == expected[src.at<uint8_t>(y, x) - 90]);
    }
}

TEST_CASE("equalize: torchvision mode equals the transcribed rule", "[equalize]") {
  const cv::Size size = GENERATE(cv::Size(385, 289), cv::Size(1, 1), cv::Size(3, 1000), cv::Size(600, 7));
  const uint64_t seed = GENERATE(1, 2);
  CAPTURE(size.width, size.height, seed);
  SECTION("8-bit") {
    const cv::Mat src = skewed_image(size, CV_8U, seed);
    cv::Mat out;
    equalize(src, out, {});
    CHECK(cv::norm(out, reference_torchvision<uint8_t>(src, 256), cv::NORM_INF) == 0);
  }
  SECTION("16-bit") {
    const cv::Mat src = skewed_image(size, CV_16U, seed);
    cv::Mat out;
    equalize(src, out, {});
    REQUIRE(out.type() == CV_16U);
    CHECK(cv::norm(out, reference_torchvision<uint16_t>(src, 65536), cv::NORM_INF) == 0);
  }
}

TEST_CASE("equalize: torchvision mode leaves images with too few pixels per level alone", "[equalize]") {
  // step = floor(pixels outside the last level / 255) is 0: torchvision returns the input.
  cv::Mat src(10, 20, CV_8U);
  cv::RNG(3).fill(src, cv::RNG::UNIFORM, 0, 256);
  cv::Mat out;
  equalize(src, out, {});
  CHECK(cv::norm(src, out, cv::NORM_INF) == 0);
  const cv::Mat flat(50, 50, CV_16U, cv::Scalar(1000));
  equalize(flat, out, {});
  CHECK(cv::norm(flat, out, cv::NORM_INF) == 0);
}

TEST_CASE("equalize: opencv mode", "[equalize]") {
  SECTION("8-bit is cv::equalizeHist") {
    const cv::Mat src = skewed_image(cv::Size(385, 289), CV_8U, 11);
    cv::Mat out, ref;
    equalize(src, out, mode(EqualizeMode::OpenCV));
    cv::equalizeHist(src, ref);
    CHECK(cv::norm(out, ref, cv::NORM_INF) == 0);
  }
  SECTION("16-bit: darkest level to 0, brightest to 65535, monotone") {
    const cv::Mat src = skewed_image(cv::Size(385, 289), CV_16U, 12);
    cv::Mat out;
    equalize(src, out, mode(EqualizeMode::OpenCV));
    REQUIRE(out.type() == CV_16U);
    double lo, hi;
    cv::Point lo_at, hi_at;
    cv::minMaxLoc(src, &lo, &hi, &lo_at, &hi_at);
    CHECK(out.at<uint16_t>(lo_at) == 0);
    CHECK(out.at<uint16_t>(hi_at) == 65535);
    // Monotone: sorting by input sorts the output.
    std::vector<std::pair<uint16_t, uint16_t>> pairs;
    for (int y = 0; y < src.rows; ++y)
      for (int x = 0; x < src.cols; ++x) pairs.emplace_back(src.at<uint16_t>(y, x), out.at<uint16_t>(y, x));
    std::sort(pairs.begin(), pairs.end());
    bool monotone = true;
    for (size_t i = 1; i < pairs.size(); ++i) monotone = monotone && pairs[i].second >= pairs[i - 1].second;
    CHECK(monotone);
  }
  SECTION("16-bit on 8-bit levels scaled by 257 is within one 8-bit level of equalizeHist") {
    const cv::Mat src8 = skewed_image(cv::Size(200, 150), CV_8U, 13);
    cv::Mat src16, out16, ref8, out8;
    src8.convertTo(src16, CV_16U, 257.0);
    equalize(src16, out16, mode(EqualizeMode::OpenCV));
    cv::equalizeHist(src8, ref8);
    out16.convertTo(out8, CV_8U, 1.0 / 257.0);
    CHECK(cv::norm(out8, ref8, cv::NORM_INF) <= 1);
  }
  SECTION("a flat 16-bit image keeps its level") {
    const cv::Mat flat(9, 9, CV_16U, cv::Scalar(4321));
    cv::Mat out;
    equalize(flat, out, mode(EqualizeMode::OpenCV));
    CHECK(cv::norm(flat, out, cv::NORM_INF) == 0);
  }
}

TEST_CASE("equalize: clahe mode is OpenCV's CLAHE", "[equalize]") {
  const int type = GENERATE(CV_8U, CV_16U);
  const double clip = GENERATE(1.0, 2.0, 40.0);
  const int grid = GENERATE(1, 8, 13);
  CAPTURE(type, clip, grid);
  const cv::Mat src = skewed_image(cv::Size(385, 289), type, 21);
  EqualizeParams p = mode(EqualizeMode::Clahe);
  p.clip_limit = clip;
  p.tile_grid = grid;
  cv::Mat out, ref;
  equalize(src, out, p);
  cv::createCLAHE(clip, cv::Size(grid, grid))->apply(src, ref);
  REQUIRE(out.type() == type);
  CHECK(cv::norm(out, ref, cv::NORM_INF) == 0);
  CHECK(cv::norm(out, src, cv::NORM_INF) > 0);
}

TEST_CASE("equalize: ROI input equals the continuous result, output into a view", "[equalize]") {
  const EqualizeMode m = GENERATE(EqualizeMode::Torchvision, EqualizeMode::OpenCV, EqualizeMode::Clahe);
  const int type = GENERATE(CV_8U, CV_16U);
  CAPTURE(to_string(m), type);
  const cv::Mat big = skewed_image(cv::Size(400, 300), type, 31);
  const cv::Mat roi = big(cv::Rect(9, 4, 385, 289));
  REQUIRE_FALSE(roi.isContinuous());
  cv::Mat a;
  equalize(roi.clone(), a, mode(m));
  cv::Mat canvas(300, 400, type, cv::Scalar(0));
  cv::Mat view = canvas(cv::Rect(3, 3, 385, 289));
  const uchar* data = view.data;
  equalize(roi, view, mode(m));
  CHECK(view.data == data);
  CHECK(cv::norm(a, view, cv::NORM_INF) == 0);
}

TEST_CASE("equalize: in place (src and dst one buffer) equals out of place", "[equalize]") {
  // cxrequalize equalizes the frame it receives in place.
  const EqualizeMode m = GENERATE(EqualizeMode::Torchvision, EqualizeMode::OpenCV, EqualizeMode::Clahe);
  const int type = GENERATE(CV_8U, CV_16U);
  const bool roi = GENERATE(false, true);
  CAPTURE(to_string(m), type, roi);
  cv::Mat big = skewed_image(cv::Size(400, 300), type, 47);
  cv::Mat img = roi ? big(cv::Rect(9, 4, 385, 289)) : big;
  cv::Mat expected;
  equalize(img.clone(), expected, mode(m));
  const uchar* data = img.data;
  equalize(img, img, mode(m));
  CHECK(img.data == data);
  CHECK(cv::norm(expected, img, cv::NORM_INF) == 0);
}

TEST_CASE("equalize: invalid input is rejected", "[equalize]") {
  cv::Mat out;
  const cv::Mat gray(20, 20, CV_8U, cv::Scalar(1));
  CHECK_THROWS_AS(equalize(cv::Mat(), out, {}), cxr::InvalidArgument);
  CHECK_THROWS_AS(equalize(cv::Mat(20, 20, CV_8UC3), out, {}), cxr::InvalidArgument);
  CHECK_THROWS_AS(equalize(cv::Mat(20, 20, CV_32F), out, {}), cxr::InvalidArgument);
  EqualizeParams p = mode(EqualizeMode::Clahe);
  p.clip_limit = 0.0;
  CHECK_THROWS_AS(equalize(gray, out, p), cxr::InvalidArgument);
  p.clip_limit = 2.0;
  p.tile_grid = 0;
  CHECK_THROWS_AS(equalize(gray, out, p), cxr::InvalidArgument);
  p.tile_grid = 21;
  CHECK_THROWS_WITH(equalize(gray, out, p), Catch::Contains("21"));
  CHECK_THROWS_AS(equalize_mode_from_string("histeq"), cxr::InvalidArgument);
  CHECK(equalize_mode_from_string("clahe") == EqualizeMode::Clahe);
  CHECK(std::string(to_string(EqualizeMode::OpenCV)) == "opencv");
}
