// SPDX-License-Identifier: LGPL-2.1-or-later
// Augmentation: Pillow's flip, sharpness and autocontrast; the (seed, epoch, index) draws.
#include "cxr_catch.hpp"

#include <opencv2/core.hpp>
#include <set>
#include <vector>

#include "cxr/augment/augment.hpp"
#include "cxr/error.hpp"
#include "testutil.hpp"

using namespace cxr::augment;
using cxrtest::random_image;

namespace {

// Pillow 9.4's ImagingFilter3x3 (SMOOTH, kernel / 13 in float) and ImagingBlend, transcribed
// with their float arithmetic.
cv::Mat pillow_sharpness(const cv::Mat& im, double factor) {
  const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
  cv::Mat degen = im.clone();
  if (im.rows >= 3 && im.cols >= 3)
    for (int y = 1; y < im.rows - 1; ++y)
      for (int x = 1; x < im.cols - 1; ++x) {
        auto row = [&](int yy, float kc) {
          const uint8_t* r = im.ptr<uint8_t>(yy);
          return float(r[x - 1]) * k1 + float(r[x]) * kc + float(r[x + 1]) * k1;
        };
        float ss = 0.5f;
        ss += row(y + 1, k1);
        ss += row(y, k5);
        ss += row(y - 1, k1);
        degen.at<uint8_t>(y, x) = ss <= 0.f ? 0 : (ss >= 255.f ? 255 : static_cast<uint8_t>(ss));
      }
  const float alpha = static_cast<float>(factor);
  cv::Mat out(im.size(), CV_8U);
  for (int y = 0; y < im.rows; ++y)
    for (int x = 0; x < im.cols; ++x) {
      const int a = degen.at<uint8_t>(y, x), b = im.at<uint8_t>(y, x);
      const float t = float(a) + alpha * float(b - a);
      if (alpha >= 0.f && alpha <= 1.f)
        out.at<uint8_t>(y, x) = static_cast<uint8_t>(t);
      else
        out.at<uint8_t>(y, x) = t <= 0.f ? 0 : (t >= 255.f ? 255 : static_cast<uint8_t>(t));
    }
  return out;
}

}  // namespace

TEST_CASE("augment: splitmix64 and the per-scan draws", "[augment]") {
  CHECK(splitmix64(0) == 0xe220a8397b1dcdafull);  // splitmix64's first output from state 0
  AugmentParams p;
  p.seed = 42;
  // A draw depends only on (seed, epoch, index).
  for (uint64_t i = 0; i < 50; ++i) {
    const AugmentDraw a = draw(p, 3, i), b = draw(p, 3, i);
    CHECK((a.flip == b.flip && a.sharpness == b.sharpness && a.autocontrast == b.autocontrast));
    const double u = uniform(42, 3, i, 0);
    CHECK((u >= 0.0 && u < 1.0));
  }
  // Each operation fires about half the time at p = 0.5, independently of the others.
  int flips = 0, sharps = 0, contrasts = 0, both = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const AugmentDraw d = draw(p, 0, static_cast<uint64_t>(i));
    flips += d.flip;
    sharps += d.sharpness;
    contrasts += d.autocontrast;
    both += d.flip && d.sharpness;
  }
  CHECK(flips == Approx(n / 2).epsilon(0.03));
  CHECK(sharps == Approx(n / 2).epsilon(0.03));
  CHECK(contrasts == Approx(n / 2).epsilon(0.03));
  CHECK(both == Approx(n / 4).epsilon(0.05));
  // Seeds, epochs and indices all change the draws.
  std::set<double> seen;
  for (uint64_t s = 0; s < 4; ++s)
    for (uint64_t e = 0; e < 4; ++e)
      for (uint64_t i = 0; i < 4; ++i) seen.insert(uniform(s, e, i, 0));
  CHECK(seen.size() == 64);
  CHECK(uniform(1, 2, 3, 0) != uniform(1, 3, 2, 0));
  // p = 0 never fires, p = 1 always does.
  p.flip_probability = 0.0;
  p.sharpness_probability = 1.0;
  p.autocontrast_probability = 0.0;
  for (uint64_t i = 0; i < 100; ++i) {
    const AugmentDraw d = draw(p, 1, i);
    CHECK((!d.flip && d.sharpness && !d.autocontrast));
  }
}

TEST_CASE("augment: sharpness equals Pillow on a known image", "[augment]") {
  // Pillow 9.4: ImageEnhance.Sharpness(img).enhance(2) via torchvision's F.adjust_sharpness.
  const uint8_t src[5][7] = {{175, 196, 25, 246, 67, 211, 151}, {103, 92, 185, 142, 23, 72, 89},
                             {110, 42, 218, 136, 167, 230, 68}, {176, 127, 135, 172, 0, 75, 55},
                             {250, 6, 19, 188, 44, 191, 69}};
  const uint8_t expected[5][7] = {{175, 196, 25, 246, 67, 211, 151}, {103, 68, 214, 147, 0, 39, 89},
                                  {110, 0, 255, 140, 204, 255, 68}, {176, 132, 148, 208, 0, 58, 55},
                                  {250, 6, 19, 188, 44, 191, 69}};
  const cv::Mat in(5, 7, CV_8U, const_cast<uint8_t*>(&src[0][0]));
  cv::Mat out;
  adjust_sharpness(in, out, 2.0);
  CHECK(cv::norm(out, cv::Mat(5, 7, CV_8U, const_cast<uint8_t*>(&expected[0][0])), cv::NORM_INF) == 0);
}

TEST_CASE("augment: sharpness equals Pillow's float arithmetic", "[augment]") {
  const double factor = GENERATE(0.0, 0.3, 0.5, 1.0, 1.7, 2.0, 3.3, 10.0);
  const cv::Size size = GENERATE(cv::Size(385, 289), cv::Size(3, 3), cv::Size(2, 50), cv::Size(64, 1));
  CAPTURE(factor, size.width, size.height);
  const cv::Mat src = random_image(size, CV_8U, 9);
  cv::Mat out;
  adjust_sharpness(src, out, factor);
  CHECK(cv::norm(out, pillow_sharpness(src, factor), cv::NORM_INF) == 0);
}

TEST_CASE("augment: sharpness in 16-bit follows the same rule", "[augment]") {
  const cv::Mat src8 = random_image({385, 289}, CV_8U, 10);
  cv::Mat src16, out16, out8, back;
  src8.convertTo(src16, CV_16U, 257.0);
  SECTION("factor 1 is the identity, factor 0 the smoothed image") {
    adjust_sharpness(src16, out16, 1.0);
    CHECK(cv::norm(out16, src16, cv::NORM_INF) == 0);
    adjust_sharpness(src16, out16, 0.0);
    adjust_sharpness(src8, out8, 0.0);
    out16.convertTo(back, CV_8U, 1.0 / 257.0);
    CHECK(cv::norm(out8, back, cv::NORM_INF) <= 1);
  }
  SECTION("factor 2 within one 8-bit level of the 8-bit result") {
    adjust_sharpness(src16, out16, 2.0);
    adjust_sharpness(src8, out8, 2.0);
    out16.convertTo(back, CV_8U, 1.0 / 257.0);
    CHECK(cv::norm(out8, back, cv::NORM_INF) <= 1);
    // Borders are copied.
    CHECK(cv::norm(out16.row(0), src16.row(0), cv::NORM_INF) == 0);
    CHECK(cv::norm(out16.col(384), src16.col(384), cv::NORM_INF) == 0);
  }
}

TEST_CASE("augment: autocontrast equals ImageOps.autocontrast", "[augment]") {
  // Pillow 9.4: ImageOps.autocontrast on a / 2 + 40 of the known image.
  const uint8_t src[5][7] = {{127, 138, 52, 163, 73, 145, 115}, {91, 86, 132, 111, 51, 76, 84},
                             {95, 61, 149, 108, 123, 155, 74}, {128, 103, 107, 126, 40, 77, 67},
                             {165, 43, 49, 134, 62, 135, 74}};
  const uint8_t expected[5][7] = {{177, 199, 24, 250, 67, 214, 153}, {104, 93, 187, 144, 22, 73, 89},
                                  {112, 42, 222, 138, 169, 234, 69}, {179, 128, 136, 175, 0, 75, 55},
                                  {255, 6, 18, 191, 44, 193, 69}};
  const cv::Mat in(5, 7, CV_8U, const_cast<uint8_t*>(&src[0][0]));
  cv::Mat out;
  autocontrast(in, out);
  CHECK(cv::norm(out, cv::Mat(5, 7, CV_8U, const_cast<uint8_t*>(&expected[0][0])), cv::NORM_INF) == 0);
}

TEST_CASE("augment: autocontrast stretches to the full range, flat images unchanged", "[augment]") {
  const int type = GENERATE(CV_8U, CV_16U);
  const double maxval = type == CV_8U ? 255 : 65535;
  cv::Mat src = random_image({385, 289}, type, 12), out;
  src = src / 4 + maxval / 8;
  autocontrast(src, out);
  double lo, hi;
  cv::minMaxLoc(out, &lo, &hi);
  CHECK(lo == 0);
  CHECK(hi == maxval);
  const cv::Mat flat(20, 20, type, cv::Scalar(maxval / 3));
  autocontrast(flat, out);
  CHECK(cv::norm(out, flat, cv::NORM_INF) == 0);
  // In place works (the element chains operations in one buffer).
  cv::Mat copy = src.clone(), ref;
  autocontrast(src, ref);
  autocontrast(copy, copy);
  CHECK(cv::norm(copy, ref, cv::NORM_INF) == 0);
}

TEST_CASE("augment: apply runs flip, sharpness, autocontrast in torchvision's order", "[augment]") {
  const int type = GENERATE(CV_8U, CV_16U);
  const cv::Mat big = random_image({400, 300}, type, 13);
  const cv::Mat src = big(cv::Rect(5, 5, 385, 289));
  REQUIRE_FALSE(src.isContinuous());
  AugmentParams p;
  for (int mask = 0; mask < 8; ++mask) {
    CAPTURE(type, mask);
    const AugmentDraw ops{(mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0};
    cv::Mat expected = src.clone(), tmp;
    if (ops.flip) {
      cv::flip(expected, tmp, 1);
      expected = tmp.clone();
    }
    if (ops.sharpness) {
      adjust_sharpness(expected, tmp, 2.0);
      expected = tmp.clone();
    }
    if (ops.autocontrast) {
      autocontrast(expected, tmp);
      expected = tmp.clone();
    }
    cv::Mat canvas(300, 400, type, cv::Scalar(0));
    cv::Mat view = canvas(cv::Rect(2, 2, 385, 289));
    const uchar* data = view.data;
    apply(src, view, p, ops);
    CHECK(view.data == data);
    CHECK(cv::norm(view, expected, cv::NORM_INF) == 0);
  }
  // The flip is a mirror: twice is the identity, and the first column becomes the last.
  cv::Mat once, twice;
  horizontal_flip(src, once);
  horizontal_flip(once, twice);
  CHECK(cv::norm(twice, src, cv::NORM_INF) == 0);
  CHECK(cv::norm(once.col(384), src.col(0), cv::NORM_INF) == 0);
}

TEST_CASE("augment: invalid input is rejected", "[augment]") {
  cv::Mat out;
  const cv::Mat gray(20, 20, CV_8U, cv::Scalar(1));
  AugmentParams p;
  CHECK_THROWS_AS(apply(cv::Mat(), out, p, {}), cxr::InvalidArgument);
  CHECK_THROWS_AS(apply(cv::Mat(20, 20, CV_8UC3), out, p, {}), cxr::InvalidArgument);
  CHECK_THROWS_AS(autocontrast(cv::Mat(20, 20, CV_32F), out), cxr::InvalidArgument);
  CHECK_THROWS_AS(horizontal_flip(cv::Mat(20, 20, CV_16S), out), cxr::InvalidArgument);
  CHECK_THROWS_WITH(adjust_sharpness(gray, out, -1.0), Catch::Contains("-1"));
  p.flip_probability = 1.5;
  CHECK_THROWS_WITH(apply(gray, out, p, {}), Catch::Contains("flip-probability"));
  p.flip_probability = 0.5;
  p.sharpness_factor = -2.0;
  CHECK_THROWS_WITH(validate(p), Catch::Contains("sharpness-factor"));
  p.sharpness_factor = 2.0;
  p.autocontrast_probability = -0.1;
  CHECK_THROWS_AS(validate(p), cxr::InvalidArgument);
}
