// SPDX-License-Identifier: LGPL-2.1-or-later
// cxrtrain through GstHarness: the events and frames of a training stream (cxr-dataset,
// cxr-phase, cxr-scan-error, EOS) give a run directory whose files exist and parse, progress
// and epoch messages on the bus, resume skipping the epochs done, and configuration errors.
// LibTorch first: glog's CHECK must not replace Catch's.
#include "cxr/models/weights.hpp"

#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cxr/models/card.hpp"
#include "cxr/models/classifier.hpp"
#include "gst/gstcxrevents.h"
#include "gst/gstcxrmeta.h"
#include "frameutil.hpp"
#include "testutil.hpp"

namespace fs = std::filesystem;

namespace {

GstStaticPadTemplate hsrc = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

constexpr int kW = 33;  // odd width: GRAY8 rows are padded
constexpr int kH = 32;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

GstHarness* harness(const std::string& dir, const std::string& model, bool resume = false) {
  GstHarness* h = gst_harness_new_empty();
  GstElement* e = gst_element_factory_make("cxrtrain", nullptr);
  REQUIRE(e);
  g_object_set(e, "model", model.c_str(), "output-dir", dir.c_str(), "batch-size", 4u, "learning-rate", 0.001,
               "threads", 1u, "seed", G_GUINT64_CONSTANT(5), "resume", resume, "progress", FALSE, NULL);
  gst_harness_add_element_full(h, e, &hsrc, "sink", nullptr, nullptr);
  gst_object_unref(e);
  gst_harness_set_src_caps_str(h, cxrtest::caps_for(cv::Size(kW, kH), CV_8U).c_str());
  return h;
}

/// A frame whose class shows as a bright band, with its scan meta.
GstBuffer* scan(int label, GstCxrSplit split, guint epoch, guint64 index) {
  cv::Mat m = cxrtest::random_image(cv::Size(kW, kH), CV_8U, index * 7 + 1) / 3;
  m.rowRange(label * 10, label * 10 + 10) += cv::Scalar(150);
  GstBuffer* buf = cxrtest::buffer_for(m, split, index, epoch);
  gst_buffer_get_cxr_scan_meta(buf)->label = label;
  return buf;
}

void push_phase(GstHarness* h, guint epoch, GstCxrSplit split, bool start, guint64 count) {
  REQUIRE(gst_harness_push_event(h, gst_cxr_event_new_phase(epoch, split, start, count)));
}

/// dataset event, `epochs` epochs of 8 train + 4 val scans, a test phase of 6, EOS.
void push_stream(GstHarness* h, guint epochs, bool with_val = true) {
  const gchar* classes[] = {"top", "middle", "bottom"};
  const guint64 counts[] = {6, 6, 6};
  GstEvent* ds = gst_cxr_event_new_dataset("multiclass", classes, counts, 3, epochs * 12 + 6);
  gst_structure_set(gst_event_writable_structure(ds), "epochs", G_TYPE_UINT, epochs, NULL);
  REQUIRE(gst_harness_push_event(h, ds));
  for (guint e = 0; e < epochs; ++e) {
    push_phase(h, e, GST_CXR_SPLIT_TRAIN, true, 8);
    for (guint i = 0; i < 8; ++i) REQUIRE(gst_harness_push(h, scan(i % 3, GST_CXR_SPLIT_TRAIN, e, i)) == GST_FLOW_OK);
    push_phase(h, e, GST_CXR_SPLIT_TRAIN, false, 8);
    if (with_val) {
      push_phase(h, e, GST_CXR_SPLIT_VAL, true, 4);
      for (guint i = 0; i < 4; ++i) REQUIRE(gst_harness_push(h, scan(i % 3, GST_CXR_SPLIT_VAL, e, 20 + i)) == GST_FLOW_OK);
      push_phase(h, e, GST_CXR_SPLIT_VAL, false, 4);
    }
  }
  push_phase(h, epochs - 1, GST_CXR_SPLIT_TEST, true, 6);
  for (guint i = 0; i < 6; ++i) REQUIRE(gst_harness_push(h, scan(i % 3, GST_CXR_SPLIT_TEST, epochs - 1, 40 + i)) == GST_FLOW_OK);
  GstCxrScanMeta bad{};
  bad.path = const_cast<gchar*>("/scans/broken.png");
  bad.split = GST_CXR_SPLIT_TEST;
  REQUIRE(gst_harness_push_event(h, gst_cxr_event_new_scan_error(&bad, "truncated", "cxrdecode")));
  push_phase(h, epochs - 1, GST_CXR_SPLIT_TEST, false, 6);
  REQUIRE(gst_harness_push_event(h, gst_event_new_eos()));
}

}  // namespace

TEST_CASE("cxrtrain: a stream of events and frames gives a complete run directory", "[train]") {
  cxrtest::TempDir t;
  const std::string dir = t / "run";
  GstHarness* h = harness(dir, "resnet34");
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  push_stream(h, 2);

  int progress = 0, epochs = 0, done = 0;
  while (GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    const GstStructure* s = gst_message_get_structure(msg);
    if (gst_structure_has_name(s, "cxr-train-progress")) {
      progress++;
      double loss = -1;
      CHECK(gst_structure_get_double(s, "loss", &loss));
      CHECK(loss >= 0);
    } else if (gst_structure_has_name(s, "cxr-epoch")) {
      epochs++;
      double f1 = -1;
      CHECK(gst_structure_get_double(s, "val-f1", &f1));
      CHECK(gst_structure_has_field(s, "lr"));
    } else if (gst_structure_has_name(s, "cxr-train-done")) {
      done++;
    }
    gst_message_unref(msg);
  }
  CHECK(progress == 4);  // 8 scans / batch 4, two epochs
  CHECK(epochs == 2);
  CHECK(done == 1);
  CHECK(gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR) == nullptr);

  const cxr::models::ModelCard card = cxr::models::load_card(dir + "/model.toml");
  CHECK(card.classes == std::vector<std::string>{"top", "middle", "bottom"});
  CHECK(card.input.height == kH);
  CHECK(card.input.width == kW);
  auto model = cxr::models::make_classifier("resnet34", 3);
  cxr::models::load_weights(*model, card.weights);
  cxr::models::load_weights(*model, dir + "/last.pt");
  const std::string metrics = slurp(dir + "/metrics.jsonl");
  CHECK(std::count(metrics.begin(), metrics.end(), '\n') == 2);
  CHECK(metrics.find("{\"epoch\":1,\"train_loss\":") != std::string::npos);
  const std::string summary = slurp(dir + "/summary.json");
  CHECK(summary.find("\"scan_errors\":1") != std::string::npos);
  CHECK(summary.find("\"test\":{\"n\":6,") != std::string::npos);
  const std::string csv = slurp(dir + "/test_predictions.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 7);
  CHECK(csv.find("/scans/40.png,40,top,") != std::string::npos);

  gst_element_set_bus(h->element, nullptr);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

TEST_CASE("cxrtrain: without a val split the last epoch is kept, and resume skips the epochs done", "[train]") {
  cxrtest::TempDir t;
  const std::string dir = t / "run";
  {
    GstHarness* h = harness(dir, "mobilenet_v3_large");
    push_stream(h, 2, false);
    gst_harness_teardown(h);
  }
  const std::string summary = slurp(dir + "/summary.json");
  CHECK(summary.find("\"best_epoch\":1") != std::string::npos);
  CHECK(summary.find("no validation split") != std::string::npos);
  CHECK(slurp(dir + "/metrics.jsonl").find("\"val_loss\":null") != std::string::npos);
  // Resuming a finished run trains nothing more: the same weights come out.
  const auto before = cxr::models::read_state_dict(dir + "/last.pt");
  GstHarness* h = harness(dir, "mobilenet_v3_large", true);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  push_stream(h, 2, false);
  int progress = 0;
  while (GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    progress += gst_structure_has_name(gst_message_get_structure(msg), "cxr-train-progress");
    gst_message_unref(msg);
  }
  CHECK(progress == 0);
  const auto after = cxr::models::read_state_dict(dir + "/last.pt");
  for (const auto& item : before) CHECK(torch::equal(item.value(), after[item.key()]));
  gst_element_set_bus(h->element, nullptr);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

TEST_CASE("cxrtrain: configuration errors stop the element with a message", "[train]") {
  cxrtest::TempDir t;
  struct Case {
    std::string model, property, value, expect;
  };
  const Case cases[] = {
      {"", "", "", "model is not set"},
      {"vgg16", "", "", "vgg16"},
      {t / "missing.toml", "", "", "missing.toml"},
      {"resnet34", "optimizer", "rmsprop", "rmsprop"},
      {"resnet34", "scheduler", "linear", "linear"},
      {"resnet34", "input-size", "12y", "input-size"},
      {"resnet34", "pos-weight", "1,x", "pos-weight"},
  };
  for (const auto& c : cases) {
    INFO(c.model << " " << c.property);
    GstElement* e = gst_element_factory_make("cxrtrain", nullptr);
    g_object_set(e, "output-dir", (t / "run").c_str(), NULL);
    if (!c.model.empty()) g_object_set(e, "model", c.model.c_str(), NULL);
    if (!c.property.empty()) g_object_set(e, c.property.c_str(), c.value.c_str(), NULL);
    const std::string text = cxrtest::start_error_alone(e);
    INFO(text);
    CHECK(text.find(c.expect) != std::string::npos);
    gst_object_unref(e);
  }
  // A card's classes must agree with the stream's.
  cxr::models::ModelCard card;
  card.architecture = "resnet34";
  card.classes = {"a", "b"};
  card.weights = t / "w.pt";
  card.input.height = card.input.width = 32;
  cxr::models::save_card(card, t / "two.toml");
  GstHarness* h = harness(t / "run2", t / "two.toml");
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  const gchar* classes[] = {"x", "y", "z"};
  // The sticky event reaches the element with the next buffer, which the error then refuses.
  gst_harness_push_event(h, gst_cxr_event_new_dataset("multiclass", classes, nullptr, 3, 0));
  CHECK(gst_harness_push(h, scan(0, GST_CXR_SPLIT_TRAIN, 0, 0)) != GST_FLOW_OK);
  GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  CHECK(msg != nullptr);
  if (msg) gst_message_unref(msg);
  gst_element_set_bus(h->element, nullptr);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}
