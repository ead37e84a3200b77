// SPDX-License-Identifier: LGPL-2.1-or-later
// Resize: torchvision's shorter-side rule, Pillow's antialiased BILINEAR, the four modes.
#include "cxr_catch.hpp"

#include <cmath>
#include <opencv2/core.hpp>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/preprocess/resize.hpp"
#include "testutil.hpp"

using namespace cxr::preprocess;
using cxrtest::random_image;

namespace {

// Pillow's resample written plainly (double weights, each pass rounded to 8 bits as Pillow's
// fixed point does up to its coefficient rounding): within one level of the exact path.
cv::Mat reference_resample(const cv::Mat& src, cv::Size out) {
  auto pass = [](const cv::Mat& in, int out_n, bool horizontal) {
    const int in_n = horizontal ? in.cols : in.rows;
    const double scale = double(in_n) / out_n, fs = std::max(1.0, scale), support = fs;
    cv::Mat res = horizontal ? cv::Mat(in.rows, out_n, CV_64F) : cv::Mat(out_n, in.cols, CV_64F);
    for (int o = 0; o < out_n; ++o) {
      const double c = (o + 0.5) * scale;
      const int lo = std::max(0, int(c - support + 0.5)), hi = std::min(in_n, int(c + support + 0.5));
      std::vector<double> w;
      double sum = 0;
      for (int i = lo; i < hi; ++i) {
        const double d = std::abs((i - c + 0.5) / fs);
        w.push_back(d < 1 ? 1 - d : 0);
        sum += w.back();
      }
      const int other = horizontal ? in.rows : in.cols;
      for (int j = 0; j < other; ++j) {
        double acc = 0;
        for (int i = lo; i < hi; ++i) acc += w[size_t(i - lo)] / sum * (horizontal ? in.at<double>(j, i) : in.at<double>(i, j));
        (horizontal ? res.at<double>(j, o) : res.at<double>(o, j)) = std::min(255.0, std::max(0.0, std::floor(acc + 0.5)));
      }
    }
    return res;
  };
  cv::Mat d;
  src.convertTo(d, CV_64F);
  cv::Mat r = pass(pass(d, out.width, true), out.height, false), r8;
  r.convertTo(r8, CV_8U);
  return r8;
}

}  // namespace

TEST_CASE("resize: torchvision's shorter-side size rule", "[resize]") {
  CHECK(shorter_side_size({1024, 1024}, 255) == cv::Size(255, 255));
  CHECK(shorter_side_size({640, 599}, 255) == cv::Size(272, 255));  // int(255 * 640 / 599) = 272
  CHECK(shorter_side_size({599, 640}, 255) == cv::Size(255, 272));
  CHECK(shorter_side_size({385, 289}, 224) == cv::Size(298, 224));  // int(224 * 385 / 289) = 298.38
  CHECK(shorter_side_size({3, 1000}, 10) == cv::Size(10, 3333));
  CHECK(shorter_side_size({100, 300}, 7) == cv::Size(7, 21));  // exact ratio stays exact
  ResizeParams p;
  p.size = 255;
  CHECK(resized_size({640, 524}, p) == cv::Size(311, 255));
  p.mode = ResizeMode::Letterbox;
  p.width = 300;
  p.height = 200;
  CHECK(resized_size({640, 524}, p) == cv::Size(300, 200));
}

TEST_CASE("resize: antialias equals Pillow on a known image", "[resize]") {
  // Pillow 9.4: Image.fromarray(a).resize(..., BILINEAR).
  const uint8_t src[5][7] = {{175, 196, 25, 246, 67, 211, 151}, {103, 92, 185, 142, 23, 72, 89},
                             {110, 42, 218, 136, 167, 230, 68}, {176, 127, 135, 172, 0, 75, 55},
                             {250, 6, 19, 188, 44, 191, 69}};
  const cv::Mat in(5, 7, CV_8U, const_cast<uint8_t*>(&src[0][0]));
  cv::Mat out;
  resample_antialias(in, out, {3, 2});
  const cv::Mat down = (cv::Mat_<uint8_t>(2, 3) << 126, 137, 117, 119, 122, 97);
  CHECK(cv::norm(out, down, cv::NORM_INF) == 0);
  resample_antialias(in, out, {11, 8});
  const uint8_t up[8][11] = {{175, 185, 180, 72, 105, 246, 132, 106, 198, 178, 151},
                             {144, 147, 145, 111, 133, 201, 103, 75, 141, 136, 124},
                             {103, 97, 97, 161, 170, 142, 72, 45, 78, 85, 88},
                             {108, 85, 71, 167, 182, 138, 128, 138, 175, 123, 75},
                             {131, 102, 80, 158, 176, 147, 127, 133, 175, 118, 64},
                             {172, 149, 124, 135, 151, 170, 69, 30, 78, 69, 56},
                             {218, 146, 60, 67, 110, 181, 82, 56, 130, 98, 63},
                             {250, 139, 7, 15, 80, 188, 96, 84, 178, 124, 69}};
  CHECK(cv::norm(out, cv::Mat(8, 11, CV_8U, const_cast<uint8_t*>(&up[0][0])), cv::NORM_INF) == 0);
}

TEST_CASE("resize: antialias is within one level of the plain double reference", "[resize]") {
  const cv::Size in_size = GENERATE(cv::Size(385, 289), cv::Size(64, 1000), cv::Size(31, 17));
  const cv::Size out_size = GENERATE(cv::Size(255, 255), cv::Size(97, 41), cv::Size(500, 13), cv::Size(1, 1));
  CAPTURE(in_size.width, in_size.height, out_size.width, out_size.height);
  const cv::Mat src = random_image(in_size, CV_8U, 77);
  cv::Mat out;
  resample_antialias(src, out, out_size);
  REQUIRE(out.size() == out_size);
  CHECK(cv::norm(out, reference_resample(src, out_size), cv::NORM_INF) <= 1);
}

TEST_CASE("resize: 16-bit follows the 8-bit result", "[resize]") {
  const cv::Size out_size = GENERATE(cv::Size(255, 191), cv::Size(800, 600), cv::Size(385, 100));
  const cv::Mat src8 = random_image({385, 289}, CV_8U, 5);
  cv::Mat src16, out8, out16, back;
  src8.convertTo(src16, CV_16U, 257.0);
  resample_antialias(src8, out8, out_size);
  resample_antialias(src16, out16, out_size);
  REQUIRE(out16.type() == CV_16U);
  out16.convertTo(back, CV_8U, 1.0 / 257.0);
  CHECK(cv::norm(out8, back, cv::NORM_INF) <= 1);
}

TEST_CASE("resize: flat images stay flat; same size copies", "[resize]") {
  const int type = GENERATE(CV_8U, CV_16U);
  const ResizeMethod method =
      GENERATE(ResizeMethod::Antialias, ResizeMethod::Bilinear, ResizeMethod::Area, ResizeMethod::Nearest);
  CAPTURE(type, to_string(method));
  const double level = type == CV_8U ? 173 : 40000;
  const cv::Mat flat(289, 385, type, cv::Scalar(level));
  ResizeParams p;
  p.method = method;
  p.size = 100;
  cv::Mat out;
  resize(flat, out, p);
  CHECK(out.size() == cv::Size(133, 100));
  CHECK(cv::norm(out, cv::Mat(out.size(), type, cv::Scalar(level)), cv::NORM_INF) == 0);
  const cv::Mat src = random_image({385, 289}, type, 8);
  p.size = 289;
  resize(src, out, p);
  CHECK(cv::norm(out, src, cv::NORM_INF) == 0);
}

TEST_CASE("resize: ROI input and output views", "[resize]") {
  const int type = GENERATE(CV_8U, CV_16U);
  const ResizeMode mode =
      GENERATE(ResizeMode::Stretch, ResizeMode::ShorterSide, ResizeMode::Letterbox, ResizeMode::CenterCrop);
  CAPTURE(type, to_string(mode));
  const cv::Mat big = random_image({420, 300}, type, 17);
  const cv::Mat roi = big(cv::Rect(11, 6, 385, 289));
  REQUIRE_FALSE(roi.isContinuous());
  ResizeParams p;
  p.mode = mode;
  p.size = 150;
  p.width = 160;
  p.height = 90;
  cv::Mat a;
  resize(roi.clone(), a, p);
  const cv::Size out_size = resized_size(roi.size(), p);
  cv::Mat canvas(400, 400, type, cv::Scalar(0));
  cv::Mat view = canvas(cv::Rect(1, 2, out_size.width, out_size.height));
  const uchar* data = view.data;
  resize(roi, view, p);
  CHECK(view.data == data);
  CHECK(cv::norm(a, view, cv::NORM_INF) == 0);
}

TEST_CASE("resize: letterbox pads, center-crop crops", "[resize]") {
  const cv::Mat src = random_image({400, 200}, CV_8U, 3) | 1;  // no pixel is 0
  ResizeParams p;
  p.width = 100;
  p.height = 100;
  SECTION("letterbox: a 100x50 picture centred with 25 rows of fill above and below") {
    p.mode = ResizeMode::Letterbox;
    p.fill = 0;
    cv::Mat out, inner;
    resize(src, out, p);
    REQUIRE(out.size() == cv::Size(100, 100));
    CHECK(cv::countNonZero(out.rowRange(0, 25)) == 0);
    CHECK(cv::countNonZero(out.rowRange(75, 100)) == 0);
    resample_antialias(src, inner, {100, 50});
    CHECK(cv::norm(out.rowRange(25, 75), inner, cv::NORM_INF) == 0);
  }
  SECTION("center-crop: the middle 100 columns of a 200x100 resize") {
    p.mode = ResizeMode::CenterCrop;
    cv::Mat out, cover;
    resize(src, out, p);
    REQUIRE(out.size() == cv::Size(100, 100));
    resample_antialias(src, cover, {200, 100});
    CHECK(cv::norm(out, cover.colRange(50, 150), cv::NORM_INF) == 0);
  }
  SECTION("letterbox fill in 16-bit") {
    cv::Mat src16, out;
    src.convertTo(src16, CV_16U, 257.0);
    p.mode = ResizeMode::Letterbox;
    p.fill = 60000;
    resize(src16, out, p);
    CHECK(out.at<uint16_t>(0, 0) == 60000);
    CHECK(out.at<uint16_t>(99, 99) == 60000);
  }
}

TEST_CASE("resize: box selects a source region as Pillow's box argument", "[resize]") {
  cv::Mat src(289, 385, CV_8U);
  for (int y = 0; y < 289; ++y)
    for (int x = 0; x < 385; ++x) src.at<uint8_t>(y, x) = static_cast<uint8_t>((x / 2 + (y * y) / 97) % 256);
  // Pillow 9.4: im.resize((6, 5), BILINEAR, box=(100.5, 50.25, 300, 210)); the filter reads
  // beyond the box edges, as Pillow's does.
  const cv::Mat expected = (cv::Mat_<uint8_t>(5, 6) << 104, 121, 137, 154, 171, 187, 158, 175, 189, 195, 188, 166,
                            165, 143, 114, 89, 73, 68, 83, 91, 105, 122, 139, 153, 159, 158, 153, 144, 130, 115);
  cv::Mat out;
  resample_antialias(src, out, {6, 5}, cv::Rect2f(100.5f, 50.25f, 199.5f, 159.75f));
  CHECK(cv::norm(out, expected, cv::NORM_INF) == 0);
}

TEST_CASE("resize: invalid input is rejected", "[resize]") {
  const cv::Mat gray(20, 30, CV_8U, cv::Scalar(1));
  cv::Mat out;
  ResizeParams p;
  CHECK_THROWS_AS(resize(cv::Mat(), out, p), cxr::InvalidArgument);
  CHECK_THROWS_AS(resize(cv::Mat(20, 20, CV_8UC3), out, p), cxr::InvalidArgument);
  CHECK_THROWS_AS(resize(cv::Mat(20, 20, CV_32F), out, p), cxr::InvalidArgument);
  p.size = 0;
  CHECK_THROWS_WITH(resize(gray, out, p), Catch::Contains("0"));
  p.size = 10;
  p.mode = ResizeMode::Stretch;
  p.width = -5;
  CHECK_THROWS_WITH(resize(gray, out, p), Catch::Contains("-5"));
  p.width = 10;
  p.mode = ResizeMode::Letterbox;
  p.fill = 256;
  CHECK_THROWS_WITH(resize(gray, out, p), Catch::Contains("256"));
  CHECK_THROWS_AS(resample_antialias(gray, out, {0, 10}), cxr::InvalidArgument);
  CHECK_THROWS_AS(resample_antialias(gray, out, {10, 10}, cv::Rect2f(20.f, 0.f, 20.f, 10.f)), cxr::InvalidArgument);
  CHECK_THROWS_AS(resize_mode_from_string("fit"), cxr::InvalidArgument);
  CHECK_THROWS_AS(resize_method_from_string("cubic"), cxr::InvalidArgument);
  CHECK(resize_mode_from_string("center-crop") == ResizeMode::CenterCrop);
  CHECK(resize_method_from_string("antialias") == ResizeMethod::Antialias);
}
