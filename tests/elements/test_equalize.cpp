// SPDX-License-Identifier: LGPL-2.1-or-later
// cxrequalize through a GstHarness: each mode's pixels, 8/16-bit, property changes mid-stream.
#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>

#include "cxr/preprocess/equalize.hpp"
#include "frameutil.hpp"

using namespace cxrtest;
using cxr::preprocess::EqualizeMode;

namespace {
cv::Mat skewed(cv::Size size, int type, uint64_t seed) {
  cv::Mat f(size, CV_64F), m;
  cv::RNG(seed).fill(f, cv::RNG::UNIFORM, 0.0, 1.0);
  cv::pow(f, 3.0, f);
  f.convertTo(m, type, type == CV_8U ? 255.0 : 65535.0);
  return m;
}
}  // namespace

TEST_CASE("cxrequalize equalizes as the engine does in every mode", "[equalize]") {
  const int type = GENERATE(CV_8U, CV_16U);
  const char* mode = GENERATE("torchvision", "opencv", "clahe");
  CAPTURE(type, mode);
  const cv::Size size(385, 289);
  GstHarness* h = gst_harness_new("cxrequalize");
  gst_util_set_object_arg(G_OBJECT(h->element), "mode", mode);
  g_object_set(h->element, "clip-limit", 3.0, "tile-grid", 4, NULL);
  gst_harness_set_src_caps_str(h, caps_for(size, type).c_str());
  const cv::Mat src = skewed(size, type, 5);
  cxr::preprocess::EqualizeParams p;
  p.mode = cxr::preprocess::equalize_mode_from_string(mode);
  p.clip_limit = 3.0;
  p.tile_grid = 4;
  cv::Mat expected;
  cxr::preprocess::equalize(src, expected, p);
  const cv::Mat out = push_pull(h, buffer_for(src, GST_CXR_SPLIT_VAL, 1));
  CHECK(same(out, expected));
  CHECK(cv::norm(out, src, cv::NORM_INF) > 0);
  CHECK(output_size(h) == size);
  gst_harness_teardown(h);
}

TEST_CASE("cxrequalize follows property changes mid-stream", "[equalize]") {
  GstHarness* h = gst_harness_new("cxrequalize");
  const cv::Size size(385, 289);
  gst_harness_set_src_caps_str(h, caps_for(size, CV_8U).c_str());
  const cv::Mat src = skewed(size, CV_8U, 6);
  cv::Mat tv, ocv, clahe;
  cxr::preprocess::EqualizeParams p;
  cxr::preprocess::equalize(src, tv, p);
  p.mode = EqualizeMode::OpenCV;
  cxr::preprocess::equalize(src, ocv, p);
  p.mode = EqualizeMode::Clahe;
  p.clip_limit = 2.0;
  p.tile_grid = 8;
  cxr::preprocess::equalize(src, clahe, p);
  REQUIRE(cv::norm(tv, ocv, cv::NORM_INF) > 0);  // the modes are told apart

  CHECK(same(push_pull(h, buffer_for(src)), tv));
  gst_util_set_object_arg(G_OBJECT(h->element), "mode", "opencv");
  CHECK(same(push_pull(h, buffer_for(src)), ocv));
  gst_util_set_object_arg(G_OBJECT(h->element), "mode", "clahe");
  CHECK(same(push_pull(h, buffer_for(src)), clahe));
  // A scan of another size and depth mid-stream.
  const cv::Mat src16 = skewed({100, 301}, CV_16U, 7);
  gst_harness_set_src_caps_str(h, caps_for(src16.size(), CV_16U).c_str());
  cv::Mat expected16;
  cxr::preprocess::equalize(src16, expected16, p);
  CHECK(same(push_pull(h, buffer_for(src16)), expected16));
  gst_harness_teardown(h);
}

TEST_CASE("cxrequalize works in place and leaves a buffer shared upstream untouched", "[equalize]") {
  const cv::Size size(385, 289);
  GstHarness* h = gst_harness_new("cxrequalize");
  gst_harness_set_src_caps_str(h, caps_for(size, CV_8U).c_str());
  const cv::Mat src = skewed(size, CV_8U, 8);
  cv::Mat expected;
  cxr::preprocess::equalize(src, expected, {});

  // Sole owner: the pixels are equalized in the buffer that was pushed.
  GstBuffer* own = buffer_for(src);
  GstMapInfo map;
  REQUIRE(gst_buffer_map(own, &map, GST_MAP_READ));
  const guint8* pixels = map.data;
  gst_buffer_unmap(own, &map);
  REQUIRE(gst_harness_push(h, own) == GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(h);
  REQUIRE(out);
  REQUIRE(gst_buffer_map(out, &map, GST_MAP_READ));
  CHECK(map.data == pixels);
  gst_buffer_unmap(out, &map);
  CHECK(same(mat_of(h, out), expected));
  gst_buffer_unref(out);

  // Shared (as after a tee): the element works on a copy; the other holder's pixels stay as they were.
  GstBuffer* shared = buffer_for(src);
  gst_buffer_ref(shared);
  CHECK(same(push_pull(h, shared), expected));
  CHECK(same(mat_of(h, shared), src));
  gst_buffer_unref(shared);
  gst_harness_teardown(h);
}

TEST_CASE("cxrequalize rejects other formats at negotiation", "[equalize]") {
  GstHarness* h = gst_harness_new("cxrequalize");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=8,height=8,framerate=0/1");
  GstBuffer* buf = gst_buffer_new_allocate(nullptr, 8 * 8 * 3, nullptr);
  CHECK(gst_harness_push(h, buf) == GST_FLOW_NOT_NEGOTIATED);
  gst_harness_teardown(h);
}
