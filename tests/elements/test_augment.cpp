// SPDX-License-Identifier: LGPL-2.1-or-later
// cxraugment through a GstHarness: train-only, reproducible per (seed, epoch, index), properties.
#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>

#include <map>

#include "cxr/augment/augment.hpp"
#include "frameutil.hpp"

using namespace cxrtest;

namespace {
cv::Mat engine(const cv::Mat& src, const cxr::augment::AugmentDraw& ops, double factor = 2.0) {
  cxr::augment::AugmentParams p;
  p.sharpness_factor = factor;
  cv::Mat out;
  cxr::augment::apply(src, out, p, ops);
  return out;
}

GstHarness* always_all() {
  GstHarness* h = gst_harness_new("cxraugment");
  g_object_set(h->element, "flip-probability", 1.0, "sharpness-probability", 1.0, "autocontrast-probability", 1.0,
               NULL);
  return h;
}
}  // namespace

TEST_CASE("cxraugment augments train buffers only, unless always=true", "[augment]") {
  const int type = GENERATE(CV_8U, CV_16U);
  CAPTURE(type);
  GstHarness* h = always_all();
  cv::Mat src = random_image({385, 289}, type, 1);
  src = src / 2;  // leaves room for autocontrast
  gst_harness_set_src_caps_str(h, caps_for(src.size(), type).c_str());
  const cv::Mat all = engine(src, {true, true, true});
  REQUIRE_FALSE(same(all, src));

  CHECK(same(push_pull(h, buffer_for(src, GST_CXR_SPLIT_TRAIN, 0)), all));
  CHECK(same(push_pull(h, buffer_for(src, GST_CXR_SPLIT_VAL, 1)), src));
  CHECK(same(push_pull(h, buffer_for(src, GST_CXR_SPLIT_TEST, 2)), src));
  CHECK(same(push_pull(h, buffer_for(src, GST_CXR_SPLIT_NONE, 3)), src));
  CHECK(same(push_pull(h, buffer_for(src)), src));  // no scan meta

  g_object_set(h->element, "always", TRUE, NULL);
  CHECK(same(push_pull(h, buffer_for(src, GST_CXR_SPLIT_VAL, 4)), all));
  CHECK(same(push_pull(h, buffer_for(src)), all));
  gst_harness_teardown(h);
}

TEST_CASE("cxraugment draws depend only on (seed, epoch, index)", "[augment]") {
  const cv::Mat src = random_image({97, 61}, CV_8U, 2) / 2;
  const guint64 seed = 1234;
  // Scans pushed in two different orders through two elements give the same result per scan.
  std::vector<std::pair<guint64, guint>> order;
  for (guint e = 0; e < 2; ++e)
    for (guint64 i = 0; i < 12; ++i) order.emplace_back(i, e);
  auto run = [&](const std::vector<std::pair<guint64, guint>>& scans) {
    GstHarness* h = gst_harness_new("cxraugment");
    g_object_set(h->element, "seed", seed, NULL);
    gst_harness_set_src_caps_str(h, caps_for(src.size(), CV_8U).c_str());
    std::map<std::pair<guint64, guint>, cv::Mat> out;
    for (const auto& s : scans) out[s] = push_pull(h, buffer_for(src, GST_CXR_SPLIT_TRAIN, s.first, s.second));
    gst_harness_teardown(h);
    return out;
  };
  const auto forward = run(order);
  std::vector<std::pair<guint64, guint>> reversed(order.rbegin(), order.rend());
  const auto backward = run(reversed);
  cxr::augment::AugmentParams p;
  p.seed = seed;
  int differs_by_epoch = 0, unchanged = 0;
  for (const auto& s : order) {
    CAPTURE(s.first, s.second);
    CHECK(same(forward.at(s), backward.at(s)));
    CHECK(same(forward.at(s), engine(src, cxr::augment::draw(p, s.second, s.first))));
    if (s.second == 0) differs_by_epoch += !same(forward.at(s), forward.at({s.first, 1}));
    unchanged += same(forward.at(s), src);
  }
  CHECK(differs_by_epoch > 0);  // a new epoch draws anew
  CHECK(unchanged > 0);         // with p = 0.5 some scans get nothing
  CHECK(unchanged < static_cast<int>(order.size()));

  // Another seed, other draws.
  GstHarness* h = gst_harness_new("cxraugment");
  g_object_set(h->element, "seed", seed + 1, NULL);
  gst_harness_set_src_caps_str(h, caps_for(src.size(), CV_8U).c_str());
  int differs_by_seed = 0;
  for (guint64 i = 0; i < 12; ++i)
    differs_by_seed += !same(push_pull(h, buffer_for(src, GST_CXR_SPLIT_TRAIN, i, 0)), forward.at({i, 0}));
  CHECK(differs_by_seed > 0);
  gst_harness_teardown(h);
}

TEST_CASE("cxraugment follows property changes mid-stream", "[augment]") {
  GstHarness* h = gst_harness_new("cxraugment");
  g_object_set(h->element, "always", TRUE, "flip-probability", 1.0, "sharpness-probability", 0.0,
               "autocontrast-probability", 0.0, NULL);
  const cv::Mat src = random_image({385, 289}, CV_8U, 3) / 2;
  gst_harness_set_src_caps_str(h, caps_for(src.size(), CV_8U).c_str());
  CHECK(same(push_pull(h, buffer_for(src)), engine(src, {true, false, false})));
  g_object_set(h->element, "flip-probability", 0.0, "sharpness-probability", 1.0, "sharpness-factor", 0.5, NULL);
  CHECK(same(push_pull(h, buffer_for(src)), engine(src, {false, true, false}, 0.5)));
  g_object_set(h->element, "sharpness-probability", 0.0, "autocontrast-probability", 1.0, NULL);
  CHECK(same(push_pull(h, buffer_for(src)), engine(src, {false, false, true})));
  g_object_set(h->element, "autocontrast-probability", 0.0, NULL);
  CHECK(same(push_pull(h, buffer_for(src)), src));
  // Scan meta rides through.
  REQUIRE(gst_harness_push(h, buffer_for(src, GST_CXR_SPLIT_TRAIN, 77, 5)) == GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(h);
  const GstCxrScanMeta* meta = gst_buffer_get_cxr_scan_meta(out);
  REQUIRE(meta);
  CHECK(meta->index == 77);
  CHECK(meta->epoch == 5);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}
