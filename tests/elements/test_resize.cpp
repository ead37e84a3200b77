// SPDX-License-Identifier: LGPL-2.1-or-later
// cxrresize through a GstHarness: output caps per mode and per scan size, pixels, passthrough.
#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>

#include "cxr/preprocess/resize.hpp"
#include "frameutil.hpp"

using namespace cxrtest;
using cxr::preprocess::ResizeMode;

namespace {
cv::Mat engine(const cv::Mat& src, ResizeMode mode, int size, int w, int h, int fill = 0) {
  cxr::preprocess::ResizeParams p;
  p.mode = mode;
  p.size = size;
  p.width = w;
  p.height = h;
  p.fill = fill;
  cv::Mat out;
  cxr::preprocess::resize(src, out, p);
  return out;
}
}  // namespace

TEST_CASE("cxrresize shorter-side: caps follow each scan's size", "[resize]") {
  const int type = GENERATE(CV_8U, CV_16U);
  CAPTURE(type);
  GstHarness* h = gst_harness_new("cxrresize");
  g_object_set(h->element, "size", 255, NULL);

  const cv::Mat a = random_image({385, 289}, type, 1);
  gst_harness_set_src_caps_str(h, caps_for(a.size(), type).c_str());
  const cv::Mat out_a = push_pull(h, buffer_for(a, GST_CXR_SPLIT_TRAIN, 0));
  CHECK(output_size(h) == cv::Size(339, 255));  // int(255 * 385 / 289)
  CHECK(same(out_a, engine(a, ResizeMode::ShorterSide, 255, 0, 0)));

  const cv::Mat b = random_image({300, 1000}, type, 2);
  gst_harness_set_src_caps_str(h, caps_for(b.size(), type).c_str());
  const cv::Mat out_b = push_pull(h, buffer_for(b, GST_CXR_SPLIT_TRAIN, 1));
  CHECK(output_size(h) == cv::Size(255, 850));
  CHECK(same(out_b, engine(b, ResizeMode::ShorterSide, 255, 0, 0)));
  gst_harness_teardown(h);
}

TEST_CASE("cxrresize fixed-size modes", "[resize]") {
  const char* mode = GENERATE("stretch", "letterbox", "center-crop");
  CAPTURE(mode);
  GstHarness* h = gst_harness_new("cxrresize");
  gst_util_set_object_arg(G_OBJECT(h->element), "mode", mode);
  g_object_set(h->element, "width", 161, "height", 97, "fill", 17, NULL);
  const cv::Mat src = random_image({385, 289}, CV_8U, 3);
  gst_harness_set_src_caps_str(h, caps_for(src.size(), CV_8U).c_str());
  const cv::Mat out = push_pull(h, buffer_for(src));
  CHECK(output_size(h) == cv::Size(161, 97));
  CHECK(same(out, engine(src, cxr::preprocess::resize_mode_from_string(mode), 0, 161, 97, 17)));
  gst_harness_teardown(h);
}

TEST_CASE("cxrresize renegotiates when its properties change mid-stream", "[resize]") {
  GstHarness* h = gst_harness_new("cxrresize");
  g_object_set(h->element, "size", 200, NULL);
  const cv::Mat src = random_image({385, 289}, CV_8U, 4);
  gst_harness_set_src_caps_str(h, caps_for(src.size(), CV_8U).c_str());
  CHECK(same(push_pull(h, buffer_for(src)), engine(src, ResizeMode::ShorterSide, 200, 0, 0)));
  CHECK(output_size(h) == cv::Size(266, 200));

  g_object_set(h->element, "size", 100, NULL);
  CHECK(same(push_pull(h, buffer_for(src)), engine(src, ResizeMode::ShorterSide, 100, 0, 0)));
  CHECK(output_size(h) == cv::Size(133, 100));

  gst_util_set_object_arg(G_OBJECT(h->element), "mode", "stretch");
  g_object_set(h->element, "width", 64, "height", 48, NULL);
  CHECK(same(push_pull(h, buffer_for(src)), engine(src, ResizeMode::Stretch, 0, 64, 48)));
  CHECK(output_size(h) == cv::Size(64, 48));

  // The method changes the pixels, not the caps.
  gst_util_set_object_arg(G_OBJECT(h->element), "method", "nearest");
  cxr::preprocess::ResizeParams p;
  p.mode = ResizeMode::Stretch;
  p.method = cxr::preprocess::ResizeMethod::Nearest;
  p.width = 64;
  p.height = 48;
  cv::Mat nearest;
  cxr::preprocess::resize(src, nearest, p);
  CHECK(same(push_pull(h, buffer_for(src)), nearest));
  gst_harness_teardown(h);
}

TEST_CASE("cxrresize passes scans of the output size through", "[resize]") {
  GstHarness* h = gst_harness_new("cxrresize");
  g_object_set(h->element, "size", 289, NULL);
  const cv::Mat src = random_image({385, 289}, CV_8U, 5);
  gst_harness_set_src_caps_str(h, caps_for(src.size(), CV_8U).c_str());
  GstBuffer* in = buffer_for(src, GST_CXR_SPLIT_VAL, 9);
  gst_buffer_ref(in);
  REQUIRE(gst_harness_push(h, in) == GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(h);
  CHECK(out == in);
  CHECK(same(mat_of(h, out), src));
  CHECK(gst_buffer_get_cxr_scan_meta(out)->index == 9);
  gst_buffer_unref(out);
  gst_buffer_unref(in);
  gst_harness_teardown(h);
}

TEST_CASE("cxrresize drops a scan it cannot resize and goes on", "[resize]") {
  GstHarness* h = gst_harness_new("cxrresize");
  gst_util_set_object_arg(G_OBJECT(h->element), "mode", "letterbox");
  g_object_set(h->element, "width", 50, "height", 50, "fill", 300, NULL);  // 300 is no 8-bit level
  const cv::Mat src = random_image({100, 60}, CV_8U, 6);
  gst_harness_set_src_caps_str(h, caps_for(src.size(), CV_8U).c_str());
  GstFlowReturn flow;
  CHECK(push_pull(h, buffer_for(src, GST_CXR_SPLIT_TEST, 2), &flow).empty());
  CHECK(flow == GST_FLOW_OK);
  g_object_set(h->element, "fill", 30, NULL);
  CHECK(same(push_pull(h, buffer_for(src)), engine(src, ResizeMode::Letterbox, 0, 50, 50, 30)));
  gst_harness_teardown(h);
}
