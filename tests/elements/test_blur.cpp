// SPDX-License-Identifier: LGPL-2.1-or-later
// cxrblur through a GstHarness: pixels equal the engine's, padded strides, property changes.
#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>

#include "cxr/preprocess/blur.hpp"
#include "frameutil.hpp"

using namespace cxrtest;

TEST_CASE("cxrblur blurs 8- and 16-bit scans as the engine does", "[blur]") {
  const int type = GENERATE(CV_8U, CV_16U);
  const cv::Size size = GENERATE(cv::Size(385, 289), cv::Size(31, 7));
  CAPTURE(type, size.width, size.height);
  GstHarness* h = gst_harness_new("cxrblur");
  gst_harness_set_src_caps_str(h, caps_for(size, type).c_str());
  const cv::Mat src = random_image(size, type, 1);
  GstFlowReturn flow;
  const cv::Mat out = push_pull(h, buffer_for(src, GST_CXR_SPLIT_TEST, 7), &flow);
  CHECK(flow == GST_FLOW_OK);
  cv::Mat expected;
  cxr::preprocess::gaussian_blur(src, expected, {});
  CHECK(same(out, expected));
  CHECK(output_size(h) == size);
  gst_harness_teardown(h);
}

TEST_CASE("cxrblur keeps the scan meta and follows property changes mid-stream", "[blur]") {
  GstHarness* h = gst_harness_new("cxrblur");
  const cv::Size size(385, 289);
  gst_harness_set_src_caps_str(h, caps_for(size, CV_8U).c_str());
  const cv::Mat src = random_image(size, CV_8U, 2);

  REQUIRE(gst_harness_push(h, buffer_for(src, GST_CXR_SPLIT_TRAIN, 42, 3)) == GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(h);
  const GstCxrScanMeta* meta = gst_buffer_get_cxr_scan_meta(out);
  REQUIRE(meta);
  CHECK(meta->index == 42);
  CHECK(meta->epoch == 3);
  CHECK(meta->split == GST_CXR_SPLIT_TRAIN);
  CHECK(std::string(meta->path) == "/scans/42.png");
  gst_buffer_unref(out);

  g_object_set(h->element, "kernel-size", 9, "sigma", 3.0, NULL);
  cv::Mat expected;
  cxr::preprocess::gaussian_blur(src, expected, {9, 3.0});
  CHECK(same(push_pull(h, buffer_for(src)), expected));

  g_object_set(h->element, "kernel-size", 1, NULL);
  CHECK(same(push_pull(h, buffer_for(src)), src));
  gst_harness_teardown(h);
}

TEST_CASE("cxrblur drops a scan it cannot blur and goes on", "[blur]") {
  GstHarness* h = gst_harness_new("cxrblur");
  g_object_set(h->element, "kernel-size", 11, NULL);
  gst_harness_set_src_caps_str(h, caps_for({5, 5}, CV_8U).c_str());
  GstFlowReturn flow;
  CHECK(push_pull(h, buffer_for(random_image({5, 5}, CV_8U, 3), GST_CXR_SPLIT_TEST, 1), &flow).empty());
  CHECK(flow == GST_FLOW_OK);
  gst_harness_set_src_caps_str(h, caps_for({40, 30}, CV_8U).c_str());
  const cv::Mat src = random_image({40, 30}, CV_8U, 4);
  cv::Mat expected;
  cxr::preprocess::gaussian_blur(src, expected, {11, 0.0});
  CHECK(same(push_pull(h, buffer_for(src)), expected));
  gst_harness_teardown(h);
}
