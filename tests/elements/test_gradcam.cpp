// SPDX-License-Identifier: LGPL-2.1-or-later
// cxrgradcam: RGB overlay / GRAY8 heatmap caps at the input frame's size (odd widths, 8 and
// 16 bit, size changes mid-stream), CAM and result metas, targets, and model errors at start.
#include <ATen/Parallel.h>

#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <cmath>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "cxr/models/card.hpp"
#include "cxr/models/predictor.hpp"
#include "frameutil.hpp"
#include "gst/gstcxrcammeta.h"
#include "gst/gstcxrmeta.h"
#include "testutil.hpp"

namespace {

/// A small MobileNetV3 card with fresh weights in the temp dir.
std::string make_card(const cxrtest::TempDir& t, const std::string& name, int classes, bool multilabel = false,
                      const std::string& layer = "") {
  cxr::models::ModelCard card;
  card.name = name;
  card.architecture = "mobilenet_v3_large";
  card.task = multilabel ? cxr::models::Task::Multilabel : cxr::models::Task::Multiclass;
  for (int c = 0; c < classes; ++c) card.classes.push_back("class" + std::to_string(c));
  if (multilabel) card.thresholds.assign(card.classes.size(), 0.01f);  // every class positive
  card.weights = t / (name + ".pth");
  card.input.height = 64;
  card.input.width = 64;
  card.input.mean = {0.5f};
  card.input.std = {0.25f};
  card.gradcam_layer = layer;
  cxr::models::write_initial_weights(card, 11);
  const std::string path = t / (name + ".toml");
  cxr::models::save_card(card, path);
  return path;
}

GstStaticPadTemplate hsrc = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
GstStaticPadTemplate hsink = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

GstHarness* harness(const std::string& card, const char* output, const char* target = "predicted",
                    const char* memory_format = "contiguous", guint threads = 0) {
  GstHarness* h = gst_harness_new_empty();
  GstElement* e = gst_element_factory_make("cxrgradcam", nullptr);
  REQUIRE(e);
  gst_util_set_object_arg(G_OBJECT(e), "output", output);
  gst_util_set_object_arg(G_OBJECT(e), "memory-format", memory_format);
  g_object_set(e, "model", card.c_str(), "device", "cpu", "target", target, "threads", threads, NULL);
  gst_harness_add_element_full(h, e, &hsrc, "sink", &hsink, "src");
  gst_object_unref(e);
  return h;
}

std::string out_format(GstHarness* h) {
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  REQUIRE(caps);
  std::string f = gst_structure_get_string(gst_caps_get_structure(caps, 0), "format");
  gst_caps_unref(caps);
  return f;
}

std::vector<GstCxrCamMeta*> cam_metas(GstBuffer* buf) {
  std::vector<GstCxrCamMeta*> out;
  gpointer state = nullptr;
  while (GstMeta* m = gst_buffer_iterate_meta_filtered(buf, &state, GST_CXR_CAM_META_API_TYPE)) {
    out.push_back(reinterpret_cast<GstCxrCamMeta*>(m));
  }
  return out;
}

cv::Mat cam_mat(const GstCxrCamMeta* m) {
  return cv::Mat(static_cast<int>(m->height), static_cast<int>(m->width), CV_32F, m->data);
}

}  // namespace

TEST_CASE("cxrgradcam: overlay is RGB at the frame's size, with CAM and result metas", "[gradcam]") {
  cxrtest::TempDir t;
  GstHarness* h = harness(make_card(t, "m", 3), "overlay");
  const int type = GENERATE(CV_8U, CV_16U);
  const cv::Size sizes[] = {{67, 48}, {101, 77}};  // the size changes mid-stream
  for (const cv::Size& size : sizes) {
    gst_harness_set_src_caps_str(h, cxrtest::caps_for(size, type).c_str());
    cv::Mat scan = cxrtest::random_image(size, type, 3);
    REQUIRE(gst_harness_push(h, cxrtest::buffer_for(scan, GST_CXR_SPLIT_TEST, 4)) == GST_FLOW_OK);
    GstBuffer* out = gst_harness_pull(h);
    REQUIRE(out);
    CHECK(out_format(h) == "RGB");
    CHECK(cxrtest::output_size(h) == size);
    cv::Mat rgb = cxrtest::mat_of(h, out);
    REQUIRE(rgb.type() == CV_8UC3);

    auto cams = cam_metas(out);
    REQUIRE(cams.size() == 1);
    const GstCxrCamMeta* cam = cams[0];
    CHECK(cam->width == static_cast<guint>(size.width));
    CHECK(cam->height == static_cast<guint>(size.height));
    double lo = 0, hi = 0;
    cv::minMaxLoc(cam_mat(cam), &lo, &hi);
    CHECK(lo == 0.0);
    CHECK(hi == Approx(1.0));
    CHECK(std::string(cam->model) == "m");
    CHECK(std::string(cam->method) == "gradcam");
    CHECK(std::string(cam->layer) == "features");

    GstCxrResultMeta* r = gst_buffer_get_cxr_result_meta(out);
    REQUIRE(r);
    REQUIRE(r->n_classes == 3);
    int top = 0;
    for (guint c = 1; c < 3; ++c) {
      if (r->probabilities[c] > r->probabilities[top]) top = static_cast<int>(c);
    }
    CHECK(cam->target == top);
    CHECK(std::string(g_quark_to_string(cam->target_name)) == "class" + std::to_string(top));
    GstCxrScanMeta* s = gst_buffer_get_cxr_scan_meta(out);
    REQUIRE(s);
    CHECK(s->index == 4);

    // Where the map is 0 the overlay is the grey frame under alpha-weighted JET blue (0, 0, 128).
    cv::Point at;
    cv::minMaxLoc(cam_mat(cam), nullptr, nullptr, &at, nullptr);
    const double grey = type == CV_8U ? scan.at<uint8_t>(at) : scan.at<uint16_t>(at) / 257.0;
    const cv::Vec3b px = rgb.at<cv::Vec3b>(at);
    CHECK(std::abs(px[0] - 0.5 * grey) <= 4);
    CHECK(std::abs(px[2] - (0.5 * grey + 0.5 * 128)) <= 4);
    gst_buffer_unref(out);
  }
  gst_harness_teardown(h);
}

TEST_CASE("cxrgradcam: threads and memory-format; every memory format gives the same map", "[gradcam]") {
  cxrtest::TempDir t;
  const std::string card = make_card(t, "m", 2);
  const cv::Size size(75, 61);
  const cv::Mat scan = cxrtest::random_image(size, CV_8U, 12);
  const int before = at::get_num_threads();
  std::vector<cv::Mat> maps;
  for (const char* format : {"contiguous", "channels-last", "auto"}) {
    INFO(format);
    GstHarness* h = harness(card, "heatmap", "class0", format, 1);
    gint value = -1;
    g_object_get(h->element, "memory-format", &value, NULL);
    CHECK(value == (std::string(format) == "contiguous" ? 2 : std::string(format) == "channels-last" ? 1 : 0));
    at::set_num_threads(2);
    gst_harness_set_src_caps_str(h, cxrtest::caps_for(size, CV_8U).c_str());
    REQUIRE(gst_harness_push(h, cxrtest::buffer_for(scan)) == GST_FLOW_OK);
    GstBuffer* out = gst_harness_pull(h);
    REQUIRE(out);
    // The forward and backward ran on the element's compute thread, with 1 thread: no OpenMP
    // worker beside it, and this (streaming) thread's setting untouched.
    CHECK(cxrtest::threads_named(cxrtest::compute_thread_of(h->element)) == 1);
    CHECK(at::get_num_threads() == 2);
    auto cams = cam_metas(out);
    REQUIRE(cams.size() == 1);
    maps.push_back(cam_mat(cams[0]).clone());
    gst_buffer_unref(out);
    gst_harness_teardown(h);
  }
  at::set_num_threads(before);
  CHECK(cv::norm(maps[1], maps[0], cv::NORM_INF) < 1e-3);
  CHECK(cv::norm(maps[2], maps[0], cv::NORM_INF) < 1e-3);
}

TEST_CASE("cxrgradcam: heatmap is GRAY8 of the CAM meta's values", "[gradcam]") {
  cxrtest::TempDir t;
  GstHarness* h = harness(make_card(t, "m", 2), "heatmap", "class1");
  const cv::Size size(85, 63);
  gst_harness_set_src_caps_str(h, cxrtest::caps_for(size, CV_16U).c_str());
  REQUIRE(gst_harness_push(h, cxrtest::buffer_for(cxrtest::random_image(size, CV_16U, 8))) == GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(h);
  REQUIRE(out);
  CHECK(out_format(h) == "GRAY8");
  CHECK(cxrtest::output_size(h) == size);
  cv::Mat heat = cxrtest::mat_of(h, out);
  auto cams = cam_metas(out);
  REQUIRE(cams.size() == 1);
  CHECK(cams[0]->target == 1);
  cv::Mat expect;
  cam_mat(cams[0]).convertTo(expect, CV_8U, 255.0);
  CHECK(cv::norm(heat, expect, cv::NORM_INF) == 0);
  double hi = 0;
  cv::minMaxLoc(heat, nullptr, &hi);
  CHECK(hi == 255);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST_CASE("cxrgradcam: positives of a multilabel card, and an upstream result meta is kept", "[gradcam]") {
  cxrtest::TempDir t;
  GstHarness* h = harness(make_card(t, "ml", 3, true, "features.13"), "heatmap", "positives");
  const cv::Size size(64, 64);
  gst_harness_set_src_caps_str(h, cxrtest::caps_for(size, CV_8U).c_str());
  GstBuffer* in = cxrtest::buffer_for(cxrtest::random_image(size, CV_8U, 2));
  GstCxrResultMeta* upstream = gst_buffer_add_cxr_result_meta(in, 1);
  gst_cxr_meta_set_string(&upstream->model, "upstream");
  REQUIRE(gst_harness_push(h, in) == GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(h);
  REQUIRE(out);
  auto cams = cam_metas(out);
  REQUIRE(cams.size() == 3);
  for (int c = 0; c < 3; ++c) {
    CHECK(cams[static_cast<size_t>(c)]->target == c);
    CHECK(std::string(cams[static_cast<size_t>(c)]->layer) == "features.13");
  }
  GstCxrResultMeta* r = gst_buffer_get_cxr_result_meta(out);
  REQUIRE(r);
  CHECK(std::string(r->model) == "upstream");
  // The picture is the per-pixel maximum of the three maps.
  cv::Mat mx = cam_mat(cams[0]).clone();
  cv::max(mx, cam_mat(cams[1]), mx);
  cv::max(mx, cam_mat(cams[2]), mx);
  cv::Mat expect;
  mx.convertTo(expect, CV_8U, 255.0);
  CHECK(cv::norm(cxrtest::mat_of(h, out), expect, cv::NORM_INF) == 0);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST_CASE("cxrgradcam: a missing or unsuitable model is an element error at start", "[gradcam]") {
  cxrtest::TempDir t;
  struct Case {
    std::string card, target, expect;
  };
  const std::string good = make_card(t, "good", 2);
  const std::string layer = make_card(t, "layer", 2, false, "layer4");
  t.touch("ts.toml", "[model]\narchitecture = \"torchscript\"\ntask = \"multiclass\"\nclasses = [\"a\", \"b\"]\nweights = \"x.pt\"\n[input]\nsize = [64, 64]\nmean = [0.5]\nstd = [0.25]\n");
  const Case cases[] = {
      {t / "nonexistent.toml", "predicted", "nonexistent.toml"},
      {t / "ts.toml", "predicted", "TorchScript"},
      {layer, "predicted", "layer4"},
      {good, "pneumothorax", "target 'pneumothorax'"},
      {good, "2", "target '2'"},
      {"", "predicted", "model card"},
  };
  for (const auto& c : cases) {
    INFO(c.card << " target=" << c.target);
    GstElement* cam = gst_element_factory_make("cxrgradcam", nullptr);
    if (!c.card.empty()) g_object_set(cam, "model", c.card.c_str(), NULL);
    g_object_set(cam, "target", c.target.c_str(), "device", "cpu", NULL);
    const std::string text = cxrtest::start_error(cam, "videotestsrc");
    INFO(text);
    CHECK(text.find(c.expect) != std::string::npos);
  }
}
