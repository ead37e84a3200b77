// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>
#include <sys/stat.h>

#include <string>

#include "frameutil.hpp"
#include "gst/gstcxrevents.h"
#include "gst/gstcxrmeta.h"
#include "testutil.hpp"

namespace {

GstHarness* scansrc(const std::string& props) {
  GstHarness* h = gst_harness_new_parse(("cxrscansrc " + props).c_str());
  gst_harness_play(h);
  return h;
}

// Pulls events until one named name arrives (or the queue is empty).
const GstStructure* find_event(GstHarness* h, const char* name, GstEvent** keep) {
  while (GstEvent* ev = gst_harness_try_pull_event(h)) {
    if (const GstStructure* s = gst_cxr_event_get(ev, name)) {
      *keep = ev;
      return s;
    }
    gst_event_unref(ev);
  }
  return nullptr;
}

}  // namespace

TEST_CASE("cxrscansrc emits every file of a class folder with its meta", "[scansrc]") {
  const std::string root = cxrtest::samples("pneumonia");
  GstHarness* h = scansrc("location=" + root);
  const char* classes[] = {"bacterial", "normal", "viral"};
  for (guint64 i = 0; i < 60; ++i) {
    GstBuffer* buf = gst_harness_pull(h);
    REQUIRE(buf);
    const GstCxrScanMeta* m = gst_buffer_get_cxr_scan_meta(buf);
    REQUIRE(m);
    CHECK(m->index == i);
    REQUIRE(m->label >= 0);
    REQUIRE(m->label < 3);
    const std::string path(m->path);
    CHECK(path.find(std::string("/") + classes[m->label] + "/") != std::string::npos);
    // The buffer holds the whole file.
    struct stat st;
    REQUIRE(stat(m->path, &st) == 0);
    CHECK(gst_buffer_get_size(buf) == static_cast<gsize>(st.st_size));
    CHECK(m->split == GST_CXR_SPLIT_NONE);
    gst_buffer_unref(buf);
  }
  // The sticky dataset event came before the data and names the classes.
  GstEvent* ev = nullptr;
  const GstStructure* s = find_event(h, GST_CXR_EVENT_DATASET, &ev);
  REQUIRE(s);
  CHECK(std::string(gst_structure_get_string(s, "task")) == "multiclass");
  const GValue* names = gst_structure_get_value(s, "classes");
  REQUIRE(gst_value_array_get_size(names) == 3);
  CHECK(std::string(g_value_get_string(gst_value_array_get_value(names, 2))) == "viral");
  guint64 total = 0;
  CHECK(gst_structure_get_uint64(s, "total", &total));
  CHECK(total == 60);
  gst_event_unref(ev);
  // Then EOS, possibly after other events still on their way from the source's thread
  // (gst_harness_pull_event waits up to a minute for each, then gives NULL).
  bool eos = false;
  while (!eos) {
    GstEvent* e = gst_harness_pull_event(h);
    if (!e) break;
    eos = GST_EVENT_TYPE(e) == GST_EVENT_EOS;
    gst_event_unref(e);
  }
  CHECK(eos);
  gst_harness_teardown(h);
}

TEST_CASE("cxrscansrc turns unreadable files into error events and goes on", "[scansrc]") {
  cxrtest::TempDir t;
  t.touch("a.png", "1234");
  t.touch("big.png", std::string(100, 'x'));
  t.touch("list.txt", "a.png\nmissing.png\nbig.png\na.png\n");
  GstHarness* h = scansrc("location=" + (t / "list.txt") + " max-file-size=50");
  GstBuffer* b1 = gst_harness_pull(h);
  GstBuffer* b2 = gst_harness_pull(h);
  REQUIRE(b1);
  REQUIRE(b2);
  CHECK(gst_buffer_get_cxr_scan_meta(b1)->index == 0);
  CHECK(gst_buffer_get_cxr_scan_meta(b2)->index == 3);
  gst_buffer_unref(b1);
  gst_buffer_unref(b2);
  int errors = 0;
  while (GstEvent* ev = gst_harness_try_pull_event(h)) {
    if (const GstStructure* s = gst_cxr_event_get(ev, GST_CXR_EVENT_SCAN_ERROR)) {
      const std::string path = gst_structure_get_string(s, "path");
      const std::string reason = gst_structure_get_string(s, "reason");
      if (errors == 0) {
        CHECK(path.find("missing.png") != std::string::npos);
        CHECK(reason.find("cannot open") != std::string::npos);
      } else {
        CHECK(path.find("big.png") != std::string::npos);
        CHECK(reason.find("max-file-size=50") != std::string::npos);
      }
      ++errors;
    }
    gst_event_unref(ev);
  }
  CHECK(errors == 2);
  gst_harness_teardown(h);
}

TEST_CASE("cxrscansrc with on-error=stop ends the stream with an error", "[scansrc]") {
  cxrtest::TempDir t;
  t.touch("list.txt", "missing.png\n");
  GstElement* pipe = gst_parse_launch(("cxrscansrc on-error=stop location=" + (t / "list.txt") + " ! fakesink").c_str(),
                                      nullptr);
  REQUIRE(pipe);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipe);
  GstMessage* msg = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND,
                                               static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
  REQUIRE(msg);
  CHECK(GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR);
  GError* err = nullptr;
  gst_message_parse_error(msg, &err, nullptr);
  CHECK(std::string(err->message).find("missing.png") != std::string::npos);
  g_error_free(err);
  gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
}

TEST_CASE("cxrscansrc without a location fails to start with a reason", "[scansrc]") {
  GstElement* src = gst_element_factory_make("cxrscansrc", nullptr);
  REQUIRE(src);
  CHECK(cxrtest::start_error_alone(src).find("no location") != std::string::npos);
  gst_object_unref(src);
}

TEST_CASE("cxrscansrc reads a ChestX-ray8 style CSV index", "[scansrc]") {
  GstHarness* h = scansrc("labels=" + cxrtest::samples("nih/labels.csv") +
                          " label-columns=Atelectasis,Pneumonia");
  int n = 0;
  for (; n < 3; ++n) {
    GstBuffer* b = gst_harness_pull(h);
    REQUIRE(b);
    const GstCxrScanMeta* m = gst_buffer_get_cxr_scan_meta(b);
    REQUIRE(m->n_labels == 2);
    CHECK(m->label == -1);
    if (n == 2) CHECK((m->labels[0] == 1 && m->labels[1] == 1));
    gst_buffer_unref(b);
  }
  CHECK(n == 3);
  gst_harness_teardown(h);
}

TEST_CASE("cxrscansrc splits, undersamples and loops epochs with phase events", "[scansrc]") {
  GstHarness* h = scansrc("location=" + cxrtest::samples("pneumonia") +
                          " split=0.5,0.25,0.25 epochs=2 shuffle=true seed=7 undersample=normal:8");
  // 20 + 8 + 20 scans: per class train 10/4/10, val 5/2/5, test 5/2/5.
  const guint64 expected = 2 * (24 + 12) + 12;
  std::vector<std::string> phases;
  std::vector<std::pair<guint, GstCxrSplit>> seen;
  for (guint64 i = 0; i < expected; ++i) {
    GstBuffer* b = gst_harness_pull(h);
    REQUIRE(b);
    const GstCxrScanMeta* m = gst_buffer_get_cxr_scan_meta(b);
    seen.emplace_back(m->epoch, m->split);
    gst_buffer_unref(b);
  }
  // Phases: epoch 0 train, val; epoch 1 train, val; test.
  std::vector<std::pair<guint, GstCxrSplit>> runs;
  for (const auto& s : seen)
    if (runs.empty() || runs.back() != s) runs.push_back(s);
  REQUIRE(runs.size() == 5);
  CHECK(runs[0] == std::make_pair(0u, GST_CXR_SPLIT_TRAIN));
  CHECK(runs[1] == std::make_pair(0u, GST_CXR_SPLIT_VAL));
  CHECK(runs[2] == std::make_pair(1u, GST_CXR_SPLIT_TRAIN));
  CHECK(runs[3] == std::make_pair(1u, GST_CXR_SPLIT_VAL));
  CHECK(runs[4] == std::make_pair(1u, GST_CXR_SPLIT_TEST));
  int starts = 0, ends = 0;
  guint64 total = 0, scans = 0, train = 0, val = 0, test = 0;
  guint epochs = 0;
  while (GstEvent* ev = gst_harness_try_pull_event(h)) {
    if (const GstStructure* s = gst_cxr_event_get(ev, GST_CXR_EVENT_PHASE)) {
      const std::string state = gst_structure_get_string(s, "state");
      starts += state == "start";
      ends += state == "end";
    }
    if (const GstStructure* s = gst_cxr_event_get(ev, GST_CXR_EVENT_DATASET)) {
      // What a trainer plans with: the epochs and the scans per split.
      CHECK(gst_structure_get_uint64(s, "total", &total));
      CHECK(gst_structure_get_uint(s, "epochs", &epochs));
      CHECK(gst_structure_get_uint64(s, "scans", &scans));
      CHECK(gst_structure_get_uint64(s, "train-scans", &train));
      CHECK(gst_structure_get_uint64(s, "val-scans", &val));
      CHECK(gst_structure_get_uint64(s, "test-scans", &test));
    }
    gst_event_unref(ev);
  }
  CHECK(total == expected);
  CHECK(epochs == 2);
  CHECK(scans == 48);
  CHECK(train == 24);
  CHECK(val == 12);
  CHECK(test == 12);
  CHECK(starts == 5);
  CHECK(ends >= 4);  // the last end may still be on its way with EOS
  gst_harness_teardown(h);
}
