// SPDX-License-Identifier: LGPL-2.1-or-later
// Gaussian blur: torchvision's kernel, reflect border and rounding, 8- and 16-bit, ROIs.
#include "cxr_catch.hpp"

#include <cmath>
#include <opencv2/core.hpp>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/preprocess/blur.hpp"
#include "testutil.hpp"

using namespace cxr::preprocess;
using cxrtest::random_image;

namespace {

// torchvision's gaussian_blur written out: 2-D float kernel (outer product), reflect padding
// (no edge repeat), float sums, round half to even, saturate.
cv::Mat reference_blur(const cv::Mat& src, int k, double sigma) {
  const std::vector<float> k1 = gaussian_kernel(k, sigma);
  const int h = k / 2;
  cv::Mat dst(src.size(), src.type());
  auto reflect = [](int i, int n) { return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i); };
  const double maxval = src.depth() == CV_8U ? 255 : 65535;
  for (int y = 0; y < src.rows; ++y)
    for (int x = 0; x < src.cols; ++x) {
      float s = 0.f;
      for (int dy = -h; dy <= h; ++dy)
        for (int dx = -h; dx <= h; ++dx) {
          const int yy = reflect(y + dy, src.rows), xx = reflect(x + dx, src.cols);
          const float v = src.depth() == CV_8U ? src.at<uint8_t>(yy, xx) : src.at<uint16_t>(yy, xx);
          s += v * (k1[dy + h] * k1[dx + h]);
        }
      const double r = std::min(maxval, std::max(0.0, std::nearbyint(double(s))));
      if (src.depth() == CV_8U)
        dst.at<uint8_t>(y, x) = static_cast<uint8_t>(r);
      else
        dst.at<uint16_t>(y, x) = static_cast<uint16_t>(r);
    }
  return dst;
}

}  // namespace

TEST_CASE("blur: torchvision's default sigma and kernel", "[blur]") {
  CHECK(default_sigma(5) == Approx(1.1));
  CHECK(default_sigma(3) == Approx(0.8));
  // torchvision 0.14 _get_gaussian_kernel1d(5, 1.1)
  const std::vector<float> expected{0.0707663744688034f, 0.24446037411689758f, 0.36954644322395325f,
                                    0.24446037411689758f, 0.0707663744688034f};
  const std::vector<float> k = gaussian_kernel(5, 1.1);
  REQUIRE(k.size() == 5);
  for (size_t i = 0; i < k.size(); ++i) CHECK(k[i] == Approx(expected[i]).epsilon(1e-6));
}

TEST_CASE("blur: a small image equals torchvision's output", "[blur]") {
  // torchvision 0.14: F.gaussian_blur(t, [5, 5]) on this uint8 image.
  const uint8_t src[5][7] = {{175, 196, 25, 246, 67, 211, 151}, {103, 92, 185, 142, 23, 72, 89},
                             {110, 42, 218, 136, 167, 230, 68}, {176, 127, 135, 172, 0, 75, 55},
                             {250, 6, 19, 188, 44, 191, 69}};
  const uint8_t expected[5][7] = {{127, 131, 136, 132, 119, 118, 120}, {121, 127, 137, 133, 119, 116, 116},
                                  {115, 121, 134, 133, 120, 114, 112}, {119, 118, 123, 121, 108, 102, 100},
                                  {121, 116, 114, 114, 103, 99, 97}};
  cv::Mat in(5, 7, CV_8U, const_cast<uint8_t*>(&src[0][0])), out;
  gaussian_blur(in, out, {});
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x) {
      INFO("pixel " << x << "," << y);
      CHECK(std::abs(int(out.at<uint8_t>(y, x)) - int(expected[y][x])) <= 1);
    }
}

TEST_CASE("blur: within one grey level of the 2-D float reference", "[blur]") {
  const int type = GENERATE(CV_8U, CV_16U);
  const int k = GENERATE(3, 5, 7);
  const double sigma = GENERATE(0.0, 0.7, 2.5);
  const cv::Size size = GENERATE(cv::Size(385, 289), cv::Size(17, 9), cv::Size(8, 64));
  CAPTURE(type, k, sigma, size.width, size.height);
  const cv::Mat src = random_image(size, type, 1234);
  cv::Mat out;
  gaussian_blur(src, out, {k, sigma});
  REQUIRE(out.size() == src.size());
  REQUIRE(out.type() == src.type());
  const cv::Mat ref = reference_blur(src, k, sigma > 0 ? sigma : default_sigma(k));
  cv::Mat diff;
  cv::absdiff(out, ref, diff);
  double maxdiff;
  cv::minMaxLoc(diff, nullptr, &maxdiff);
  CHECK(maxdiff <= 1.0);
  // Ties are rare: almost every pixel is exact.
  CHECK(cv::countNonZero(diff) <= static_cast<int>(src.total() / 100) + 1);
}

TEST_CASE("blur: ROI input and in-place equal the continuous result", "[blur]") {
  const int type = GENERATE(CV_8U, CV_16U);
  const cv::Mat big = random_image(cv::Size(400, 300), type, 99);
  const cv::Mat roi = big(cv::Rect(7, 5, 385, 289));
  REQUIRE_FALSE(roi.isContinuous());
  cv::Mat a, b;
  gaussian_blur(roi.clone(), a, {});
  gaussian_blur(roi, b, {});
  CHECK(cv::norm(a, b, cv::NORM_INF) == 0);
  cv::Mat inplace = roi.clone();
  gaussian_blur(inplace, inplace, {});
  CHECK(cv::norm(a, inplace, cv::NORM_INF) == 0);
  // The output can be a view into a larger buffer (a GStreamer frame with padded stride).
  cv::Mat canvas(300, 400, type, cv::Scalar(0));
  cv::Mat view = canvas(cv::Rect(0, 0, 385, 289));
  const uchar* data = view.data;
  gaussian_blur(roi, view, {});
  CHECK(view.data == data);
  CHECK(cv::norm(a, view, cv::NORM_INF) == 0);
}

TEST_CASE("blur: flat images stay flat, kernel 1 copies", "[blur]") {
  const int type = GENERATE(CV_8U, CV_16U);
  const cv::Mat flat(31, 29, type, cv::Scalar(type == CV_8U ? 200 : 51234));
  cv::Mat out;
  gaussian_blur(flat, out, {});
  CHECK(cv::norm(flat, out, cv::NORM_INF) == 0);
  const cv::Mat src = random_image(cv::Size(13, 11), type, 5);
  gaussian_blur(src, out, {1, 0.0});
  CHECK(cv::norm(src, out, cv::NORM_INF) == 0);
}

TEST_CASE("blur: invalid input is rejected", "[blur]") {
  cv::Mat out;
  const cv::Mat gray(20, 20, CV_8U, cv::Scalar(1));
  CHECK_THROWS_AS(gaussian_blur(cv::Mat(), out, {}), cxr::InvalidArgument);
  CHECK_THROWS_AS(gaussian_blur(cv::Mat(20, 20, CV_8UC3), out, {}), cxr::InvalidArgument);
  CHECK_THROWS_AS(gaussian_blur(cv::Mat(20, 20, CV_32F), out, {}), cxr::InvalidArgument);
  CHECK_THROWS_AS(gaussian_blur(gray, out, {4, 0.0}), cxr::InvalidArgument);
  CHECK_THROWS_AS(gaussian_blur(gray, out, {0, 0.0}), cxr::InvalidArgument);
  CHECK_THROWS_AS(gaussian_blur(gray, out, {-3, 0.0}), cxr::InvalidArgument);
  CHECK_THROWS_AS(gaussian_blur(cv::Mat(2, 20, CV_8U), out, {5, 0.0}), cxr::InvalidArgument);
  CHECK_THROWS_WITH(gaussian_blur(gray, out, {4, 0.0}), Catch::Contains("4"));
}
