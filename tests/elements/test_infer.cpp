// SPDX-License-Identifier: LGPL-2.1-or-later
// cxrinfer: batching, batch-timeout, EOS flush, events kept in order, results as meta and
// messages, frames unchanged, and model errors at start.
#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <ATen/Parallel.h>
#include <pthread.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <fstream>
#include <string>
#include <vector>

#include "cxr/models/card.hpp"
#include "cxr/models/predictor.hpp"
#include "cxr/runtime/threads.hpp"
#include "frameutil.hpp"
#include "gst/gstcxrmeta.h"
#include "testutil.hpp"

// LibTorch's process-wide CPU allocator (c10/core/CPUAllocator.h, whose inline code needs glog).
namespace c10 {
struct Allocator;
Allocator* GetCPUAllocator();
}  // namespace c10

namespace {

constexpr int kW = 67;  // odd width: GRAY8 rows are padded to 68 bytes
constexpr int kH = 48;
constexpr int kStride = 68;

/// A small MobileNetV3 card with fresh weights in the temp dir.
std::string make_card(const cxrtest::TempDir& t, const std::string& name, int weight_classes, int card_classes,
                      const std::string& task = "multiclass", const std::string& architecture = "mobilenet_v3_large") {
  cxr::models::ModelCard card;
  card.name = name;
  card.architecture = architecture;
  card.task = task == "multilabel" ? cxr::models::Task::Multilabel : cxr::models::Task::Multiclass;
  for (int c = 0; c < weight_classes; ++c) card.classes.push_back("class" + std::to_string(c));
  card.weights = t / (name + ".pth");
  card.input.height = 64;
  card.input.width = 64;
  card.input.mean = {0.5f};
  card.input.std = {0.25f};
  if (card.task == cxr::models::Task::Multilabel) card.thresholds.assign(card.classes.size(), 0.5f);
  cxr::models::write_initial_weights(card, 11);
  card.classes.resize(static_cast<size_t>(card_classes), "extra");
  for (int c = weight_classes; c < card_classes; ++c) card.classes[static_cast<size_t>(c)] = "extra" + std::to_string(c);
  if (card.task == cxr::models::Task::Multilabel) card.thresholds.assign(card.classes.size(), 0.5f);
  const std::string path = t / (name + ".toml");
  cxr::models::save_card(card, path);
  return path;
}

GstBuffer* frame(guint8 value, GstClockTime pts) {
  GstBuffer* buf = gst_buffer_new_allocate(nullptr, kStride * kH, nullptr);
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_WRITE);
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kStride; ++x) map.data[y * kStride + x] = static_cast<guint8>(value + (x * y) % 50);
  }
  gst_buffer_unmap(buf, &map);
  GST_BUFFER_PTS(buf) = pts;
  GST_BUFFER_DURATION(buf) = GST_SECOND;
  return buf;
}

GstStaticPadTemplate hsrc = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
GstStaticPadTemplate hsink = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

GstHarness* harness(const std::string& card, guint batch, guint64 timeout = 0, gboolean embeddings = FALSE,
                    guint threads = 0, const char* memory_format = "auto", const char* overlap = "true",
                    guint streams = 1, const char* name = nullptr, const char* layout_cache = "",
                    const char* engine = "auto") {
  GstHarness* h = gst_harness_new_empty();
  GstElement* e = gst_element_factory_make("cxrinfer", name);
  REQUIRE(e);
  gst_util_set_object_arg(G_OBJECT(e), "memory-format", memory_format);
  gst_util_set_object_arg(G_OBJECT(e), "engine", engine);
  gst_util_set_object_arg(G_OBJECT(e), "overlap", overlap);
  g_object_set(e, "model", card.c_str(), "batch-size", batch, "batch-timeout", timeout, "embeddings", embeddings,
               "threads", threads, "streams", streams, "layout-cache", layout_cache, NULL);
  gst_harness_add_element_full(h, e, &hsrc, "sink", &hsink, "src");
  gst_object_unref(e);
  gst_harness_set_src_caps_str(h, ("video/x-raw,format=GRAY8,width=" + std::to_string(kW) + ",height=" +
                                   std::to_string(kH) + ",framerate=0/1")
                                      .c_str());
  return h;
}

void check_result(GstBuffer* out, guint n_classes, bool multilabel) {
  REQUIRE(out);
  GstCxrResultMeta* r = gst_buffer_get_cxr_result_meta(out);
  REQUIRE(r);
  CHECK(r->n_classes == n_classes);
  CHECK(r->multilabel == (multilabel ? TRUE : FALSE));
  float sum = 0;
  int decided = 0;
  for (guint c = 0; c < r->n_classes; ++c) {
    CHECK(std::string(g_quark_to_string(r->class_quarks[c])) == "class" + std::to_string(c));
    CHECK(r->probabilities[c] >= 0.0f);
    CHECK(r->probabilities[c] <= 1.0f);
    sum += r->probabilities[c];
    decided += r->decisions[c];
    if (multilabel) CHECK(r->probabilities[c] == Approx(1.0 / (1.0 + std::exp(-r->logits[c]))));
  }
  if (!multilabel) {
    CHECK(sum == Approx(1.0f));
    CHECK(decided == 1);
  }
}

/// Pulls n frames and checks each one's result; with `pts_step`, also that frame i has PTS
/// i * pts_step.
void pull_results(GstHarness* h, int n, guint n_classes, GstClockTime pts_step = GST_CLOCK_TIME_NONE) {
  for (int i = 0; i < n; ++i) {
    GstBuffer* out = gst_harness_pull(h);
    if (GST_CLOCK_TIME_IS_VALID(pts_step)) CHECK(GST_BUFFER_PTS(out) == static_cast<GstClockTime>(i) * pts_step);
    check_result(out, n_classes, false);
    gst_buffer_unref(out);
  }
}

/// Pulls n frames from each harness: the same logits, frame by frame (and PTS i * pts_step from
/// `a` when a step is given).
void pull_same_logits(GstHarness* a, GstHarness* b, int n, GstClockTime pts_step = GST_CLOCK_TIME_NONE) {
  for (int i = 0; i < n; ++i) {
    GstBuffer* x = gst_harness_pull(a);
    GstBuffer* y = gst_harness_pull(b);
    if (GST_CLOCK_TIME_IS_VALID(pts_step)) CHECK(GST_BUFFER_PTS(x) == static_cast<GstClockTime>(i) * pts_step);
    GstCxrResultMeta* rx = gst_buffer_get_cxr_result_meta(x);
    GstCxrResultMeta* ry = gst_buffer_get_cxr_result_meta(y);
    REQUIRE(rx);
    REQUIRE(ry);
    REQUIRE(rx->n_classes == ry->n_classes);
    for (guint c = 0; c < rx->n_classes; ++c) CHECK(rx->logits[c] == Approx(ry->logits[c]).margin(1e-5));
    gst_buffer_unref(x);
    gst_buffer_unref(y);
  }
}

/// cxrinfer with `card` (none when empty) and `memory_format`, started between fakesrc and
/// fakesink: the text of the error it must fail with.
std::string start_error(const std::string& card, const char* memory_format = "auto") {
  GstElement* infer = gst_element_factory_make("cxrinfer", nullptr);
  if (!card.empty()) g_object_set(infer, "model", card.c_str(), NULL);
  gst_util_set_object_arg(G_OBJECT(infer), "memory-format", memory_format);
  return cxrtest::start_error(infer);
}

}  // namespace

// First in this file (Catch2 runs test cases in declaration order): nothing has started yet.
TEST_CASE("cxrinfer: loading the plugin changes nothing process-wide; the first start does", "[infer]") {
  c10::Allocator* const before = c10::GetCPUAllocator();
  GstPlugin* plugin = gst_plugin_load_by_name("cxr");
  REQUIRE(plugin);
  CHECK(gst_plugin_is_loaded(plugin));
  CHECK(c10::GetCPUAllocator() == before);  // LibTorch's own allocator, after the plugin loaded
  gst_object_unref(plugin);
  cxrtest::TempDir t;
  GstHarness* h = harness(make_card(t, "m", 2, 2), 1);
  REQUIRE(gst_harness_push(h, frame(10, 0)) == GST_FLOW_OK);
  pull_results(h, 1, 2);
  CHECK(c10::GetCPUAllocator() != before);  // the caching allocator, since an element started
  gst_harness_teardown(h);
}

TEST_CASE("cxrinfer: frames wait for a full batch and pass unchanged with results", "[infer]") {
  cxrtest::TempDir t;
  GstHarness* h = harness(make_card(t, "m", 3, 3), 3);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);

  REQUIRE(gst_harness_push(h, frame(10, 0)) == GST_FLOW_OK);
  REQUIRE(gst_harness_push(h, frame(100, GST_SECOND)) == GST_FLOW_OK);
  CHECK(gst_harness_buffers_received(h) == 0);
  GstBuffer* third = frame(200, 2 * GST_SECOND);
  GstBuffer* copy = gst_buffer_copy_deep(third);
  REQUIRE(gst_harness_push(h, third) == GST_FLOW_OK);  // a full batch: handed to the compute thread

  for (int i = 0; i < 3; ++i) {
    GstBuffer* out = gst_harness_pull(h);  // waits for the batch to run
    CHECK(GST_BUFFER_PTS(out) == static_cast<GstClockTime>(i) * GST_SECOND);
    check_result(out, 3, false);
    if (i == 2) {
      // The frame itself is untouched.
      GstMapInfo a, b;
      gst_buffer_map(out, &a, GST_MAP_READ);
      gst_buffer_map(copy, &b, GST_MAP_READ);
      REQUIRE(a.size == b.size);
      CHECK(std::equal(a.data, a.data + a.size, b.data));
      gst_buffer_unmap(out, &a);
      gst_buffer_unmap(copy, &b);
    }
    gst_buffer_unref(out);
  }
  gst_buffer_unref(copy);

  // One cxr-result message per frame, with its times.
  int messages = 0;
  while (GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    const GstStructure* s = gst_message_get_structure(msg);
    if (gst_structure_has_name(s, "cxr-result")) {
      guint64 ts = 0, rt = 0;
      CHECK(gst_structure_get_uint64(s, "timestamp", &ts));
      CHECK(gst_structure_get_uint64(s, "running-time", &rt));
      CHECK(ts == static_cast<guint64>(messages) * GST_SECOND);
      CHECK(rt == ts);
      CHECK(gst_value_array_get_size(gst_structure_get_value(s, "probabilities")) == 3);
      CHECK(gst_value_array_get_size(gst_structure_get_value(s, "predicted")) == 1);
      CHECK(std::string(gst_structure_get_string(s, "model")) == "m");
      ++messages;
    }
    gst_message_unref(msg);
  }
  CHECK(messages == 3);
  gst_element_set_bus(h->element, nullptr);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

TEST_CASE("cxrinfer: the same scan gives the same result alone or in a batch", "[infer]") {
  cxrtest::TempDir t;
  const std::string card = make_card(t, "m", 2, 2);
  GstHarness* one = harness(card, 1);
  GstHarness* four = harness(card, 4);
  for (int i = 0; i < 4; ++i) {
    REQUIRE(gst_harness_push(one, frame(static_cast<guint8>(30 * i), 0)) == GST_FLOW_OK);
    REQUIRE(gst_harness_push(four, frame(static_cast<guint8>(30 * i), 0)) == GST_FLOW_OK);
  }
  pull_same_logits(one, four, 4);
  gst_harness_teardown(one);
  gst_harness_teardown(four);
}

TEST_CASE("cxrinfer: auto times the layouts on the stream's first batches and remembers the choice", "[infer]") {
  cxrtest::TempDir t;
  const std::string card = make_card(t, "m", 2, 2);
  const std::string cache = t / "cache/layouts.tsv";
  GstHarness* pinned = harness(card, 2, 0, FALSE, 1, "contiguous");
  // The layout trial is the LibTorch engine's.
  GstHarness* automatic = harness(card, 2, 0, FALSE, 1, "auto", "true", 1, nullptr, cache.c_str(), "libtorch");
  // MobileNetV3's trial: channels-last and NCHW, a warm-up batch each, then each timed on two
  // batches of 2, the two taking turns (12 scans).
  for (int i = 0; i < 14; ++i) {
    REQUIRE(gst_harness_push(pinned, frame(static_cast<guint8>(18 * i), 0)) == GST_FLOW_OK);
    REQUIRE(gst_harness_push(automatic, frame(static_cast<guint8>(18 * i), 0)) == GST_FLOW_OK);
  }
  // Every scan of the trial has its result, equal to the pinned layout's within float rounding.
  pull_same_logits(pinned, automatic, 14);
  gst_harness_teardown(pinned);
  gst_harness_teardown(automatic);
  std::ifstream in(cache);
  std::string line;
  REQUIRE(std::getline(in, line));
  CHECK(line.find("arch=mobilenet_v3_large;input=64x64;batch=2;threads=1;streams=1") != std::string::npos);
  CHECK((line.find("\tchannels-last\t") != std::string::npos || line.find("\tcontiguous\t") != std::string::npos));
  CHECK_FALSE(std::getline(in, line));
}

TEST_CASE("cxrinfer: LibTorch runs on one thread of the element's, with `threads` threads", "[infer]") {
  // Load, layout timing, batches from the streaming thread (here: this one) and from the
  // batch-timeout thread all run on "<element name>:torch". Threads inherit their creator's
  // name, so its OpenMP workers bear it too: none with threads=1, at least one with 2. This
  // thread's own LibTorch setting is left alone.
  const int before = at::get_num_threads();
  at::set_num_threads(3);
  cxrtest::TempDir t;
  const std::string card = make_card(t, "m", 2, 2);
  for (guint threads : {1u, 2u}) {
    INFO("threads " << threads);
    GstHarness* h = harness(card, 2, 100 * GST_MSECOND, FALSE, threads);
    const std::string compute = cxrtest::compute_thread_of(h->element);
    REQUIRE(gst_harness_push(h, frame(40, 0)) == GST_FLOW_OK);
    REQUIRE(gst_harness_push(h, frame(41, GST_SECOND)) == GST_FLOW_OK);  // a full batch: this thread
    REQUIRE(gst_harness_push(h, frame(42, 2 * GST_SECOND)) == GST_FLOW_OK);  // alone: the timer's
    pull_results(h, 3, 2);
    if (threads == 1) {
      CHECK(cxrtest::threads_named(compute) == 1);
    } else {
      CHECK(cxrtest::threads_named(compute) >= 2);
    }
    CHECK(at::get_num_threads() == 3);
    // OpenBLAS's thread count is process-wide and follows (where the process runs OpenBLAS, as
    // the project's set-up installs).
    const int blas = cxr::runtime::blas_threads();
    if (blas != -1) CHECK(blas == static_cast<int>(threads));
    gst_harness_teardown(h);
    // The compute thread and its OpenMP workers end with the element's state. (LibTorch's
    // process-wide pthreadpool, resized on every thread-count change, may keep a worker made
    // there until the next change: this one.)
    at::set_num_threads(3);
    CHECK(cxrtest::threads_named(compute) == 0);
  }
  at::set_num_threads(before);
}

namespace {

/// What left an element's src pad, in order: "b<seconds of PTS>" for a buffer, "e<name>" for a
/// custom event, and the name of the thread that pushed each buffer.
struct Trace {
  std::mutex mutex;
  std::vector<std::string> order;
  std::vector<std::string> buffer_threads;
};

GstPadProbeReturn trace_probe(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* t = static_cast<Trace*>(data);
  std::lock_guard<std::mutex> lock(t->mutex);
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
    t->order.push_back("b" + std::to_string(GST_BUFFER_PTS(GST_PAD_PROBE_INFO_BUFFER(info)) / GST_SECOND));
    char name[32] = {};
    pthread_getname_np(pthread_self(), name, sizeof name);
    t->buffer_threads.push_back(name);
  } else if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_CUSTOM_DOWNSTREAM) {
    t->order.push_back(std::string("e") + gst_structure_get_name(gst_event_get_structure(GST_PAD_PROBE_INFO_EVENT(info))));
  }
  return GST_PAD_PROBE_OK;
}

GstEvent* marker(const std::string& name) {
  return gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM, gst_structure_new_empty(name.c_str()));
}

}  // namespace

TEST_CASE("cxrinfer: the compute thread runs each batch and pushes it while the next one fills", "[infer]") {
  // Frames leave from "<name>:torch"; serialized events keep their place between frames,
  // whether they arrive inside a batch being filled or between batches still running.
  cxrtest::TempDir t;
  GstHarness* h = harness(make_card(t, "m", 2, 2), 2, 0, FALSE, 1);
  const std::string compute = cxrtest::compute_thread_of(h->element);
  Trace trace;
  GstPad* src = gst_element_get_static_pad(h->element, "src");
  gst_pad_add_probe(src, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                    trace_probe, &trace, nullptr);
  gst_object_unref(src);

  std::vector<std::string> expected;
  for (int i = 0; i < 11; ++i) {
    REQUIRE(gst_harness_push(h, frame(static_cast<guint8>(9 * i), static_cast<GstClockTime>(i) * GST_SECOND)) ==
            GST_FLOW_OK);
    expected.push_back("b" + std::to_string(i));
    if (i % 3 == 1) {  // after a full batch (i = 1, 7) or inside one (i = 4, 10)
      const std::string name = "cxr-marker-" + std::to_string(i);
      REQUIRE(gst_harness_push_event(h, marker(name)));
      expected.push_back("e" + name);
    }
  }
  REQUIRE(gst_harness_push_event(h, gst_event_new_eos()));  // runs the last, partial batch
  CHECK(gst_harness_buffers_received(h) == 11);
  {
    std::lock_guard<std::mutex> lock(trace.mutex);
    CHECK(trace.order == expected);
    REQUIRE(trace.buffer_threads.size() == 11);
    for (const auto& name : trace.buffer_threads) CHECK(name == compute.substr(0, 15));
  }
  pull_results(h, 11, 2);
  gst_harness_teardown(h);
}

namespace {

/// Holds the push of the first frame (PTS 0) until released, or 20 s at most.
struct Hold {
  std::mutex mutex;
  std::condition_variable cond;
  bool released = false;
  bool timed_out = false;
  void release() {
    std::lock_guard<std::mutex> lock(mutex);
    released = true;
    cond.notify_all();
  }
};

GstPadProbeReturn hold_probe(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* hold = static_cast<Hold*>(data);
  if (GST_BUFFER_PTS(GST_PAD_PROBE_INFO_BUFFER(info)) != 0) return GST_PAD_PROBE_OK;
  std::unique_lock<std::mutex> lock(hold->mutex);
  hold->timed_out = !hold->cond.wait_for(lock, std::chrono::seconds(20), [&] { return hold->released; });
  return GST_PAD_PROBE_OK;
}

}  // namespace

TEST_CASE("cxrinfer: streams run batches side by side; frames and events leave in order", "[infer]") {
  // Three streams of one thread ("inf:torch", "inf:torch1", "inf:torch2"); the order of frames
  // and events and every result are those of one stream. Each batch runs on the first thread
  // that is free, and a batch that finishes before its turn does not hold its thread: the
  // thread that pushes the batch before it pushes it too.
  cxrtest::TempDir t;
  const std::string card = make_card(t, "m", 2, 2);
  GstHarness* one = harness(card, 2, 0, FALSE, 1);
  GstHarness* h = harness(card, 2, 0, FALSE, 1, "auto", "true", 3, "inf");
  Trace trace;
  Hold hold;
  GstPad* src = gst_element_get_static_pad(h->element, "src");
  gst_pad_add_probe(src, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                    trace_probe, &trace, nullptr);
  // The thread that runs the first batch is held in its push of frame 0 until every frame is
  // in. Meanwhile the other two run the batches after it. The pushes below get through only if
  // they do: batch k fills input bank k % 4 (three streams and one to fill), so frame 14
  // (batch 7) waits until batch 3 has run. A batch handed to the held thread in turn would
  // never run, and the hold would end by its 20 s timeout instead.
  gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, hold_probe, &hold, nullptr);
  gst_object_unref(src);

  constexpr int kFrames = 17;  // eight full batches and a partial one, run at EOS
  std::vector<std::string> expected;
  for (int i = 0; i < kFrames; ++i) {
    const auto pts = static_cast<GstClockTime>(i) * GST_SECOND;
    REQUIRE(gst_harness_push(h, frame(static_cast<guint8>(13 * i), pts)) == GST_FLOW_OK);
    REQUIRE(gst_harness_push(one, frame(static_cast<guint8>(13 * i), pts)) == GST_FLOW_OK);
    expected.push_back("b" + std::to_string(i));
    if (i % 3 == 1) {
      const std::string name = "cxr-marker-" + std::to_string(i);
      REQUIRE(gst_harness_push_event(h, marker(name)));
      expected.push_back("e" + name);
    }
  }
  hold.release();
  REQUIRE(gst_harness_push_event(h, gst_event_new_eos()));
  REQUIRE(gst_harness_push_event(one, gst_event_new_eos()));
  CHECK_FALSE(hold.timed_out);
  CHECK(gst_harness_buffers_received(h) == kFrames);
  {
    std::lock_guard<std::mutex> lock(trace.mutex);
    CHECK(trace.order == expected);
    REQUIRE(trace.buffer_threads.size() == kFrames);
    const std::string held = trace.buffer_threads[0];
    CHECK((held == "inf:torch" || held == "inf:torch1" || held == "inf:torch2"));
    for (int i = 0; i < kFrames; ++i) {
      const std::string& pusher = trace.buffer_threads[static_cast<size_t>(i)];
      INFO("frame " << i << " pushed by " << pusher << ", frame 0 by " << held);
      if (i < 8) {
        // Batches 1 to 3 ran while frame 0 was held; the held thread pushed them after it,
        // and the threads that ran them went on to the next batches.
        CHECK(pusher == held);
      } else {
        CHECK((pusher == "inf:torch" || pusher == "inf:torch1" || pusher == "inf:torch2"));
      }
    }
  }
  for (const char* name : {"inf:torch", "inf:torch1", "inf:torch2"}) {
    CHECK(cxrtest::threads_named(name) == 1);  // one thread each: no OpenMP workers
  }
  pull_same_logits(h, one, kFrames, GST_SECOND);
  gst_harness_teardown(h);
  gst_harness_teardown(one);
  CHECK(cxrtest::threads_named("inf:torch1") == 0);  // the streams end with the element's state
}

TEST_CASE("cxrinfer: overlap=false waits for each batch", "[infer]") {
  // Then a full batch has left the element when the push that filled it returns. (With
  // overlap, the push returns at once: when the frames leave is then up to the scheduler, so
  // only their order and thread are checked above.)
  cxrtest::TempDir t;
  GstHarness* h = harness(make_card(t, "m", 2, 2), 2, 0, FALSE, 1, "auto", "false");
  for (int batch = 0; batch < 3; ++batch) {
    REQUIRE(gst_harness_push(h, frame(20, 2 * batch * GST_SECOND)) == GST_FLOW_OK);
    REQUIRE(gst_harness_push(h, frame(21, (2 * batch + 1) * GST_SECOND)) == GST_FLOW_OK);
    CHECK(gst_harness_buffers_received(h) == static_cast<guint>(2 * batch + 2));
  }
  pull_results(h, 6, 2, GST_SECOND);
  gst_harness_teardown(h);
}

TEST_CASE("cxrinfer: a flush drops the batch being filled; the stream goes on after it", "[infer]") {
  const guint streams = GENERATE(1u, 2u);
  CAPTURE(streams);
  cxrtest::TempDir t;
  GstHarness* h = harness(make_card(t, "m", 2, 2), 2, 0, FALSE, 1, "auto", "true", streams);
  REQUIRE(gst_harness_push(h, frame(1, 0)) == GST_FLOW_OK);
  REQUIRE(gst_harness_push(h, frame(2, GST_SECOND)) == GST_FLOW_OK);  // runs
  REQUIRE(gst_harness_push(h, frame(3, 2 * GST_SECOND)) == GST_FLOW_OK);  // waits for a second frame
  REQUIRE(gst_harness_push_event(h, gst_event_new_flush_start()));
  CHECK(gst_harness_push(h, frame(4, 3 * GST_SECOND)) == GST_FLOW_FLUSHING);
  REQUIRE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  REQUIRE(gst_harness_push_event(h, gst_event_new_segment(&segment)));
  // The harness's own sink pad was flushed too: what it had received is gone with the flush.
  while (GstBuffer* b = gst_harness_try_pull(h)) gst_buffer_unref(b);
  REQUIRE(gst_harness_push(h, frame(5, 10 * GST_SECOND)) == GST_FLOW_OK);
  REQUIRE(gst_harness_push(h, frame(6, 11 * GST_SECOND)) == GST_FLOW_OK);
  for (GstClockTime pts : {10 * GST_SECOND, 11 * GST_SECOND}) {
    GstBuffer* out = gst_harness_pull(h);
    REQUIRE(out);
    CHECK(GST_BUFFER_PTS(out) == pts);  // not the flushed frame 3
    check_result(out, 2, false);
    gst_buffer_unref(out);
  }
  REQUIRE(gst_harness_push_event(h, gst_event_new_eos()));
  CHECK(gst_harness_try_pull(h) == nullptr);
  gst_harness_teardown(h);
}

TEST_CASE("cxrinfer: batch-timeout runs a partial batch", "[infer]") {
  const guint streams = GENERATE(1u, 2u);
  CAPTURE(streams);
  cxrtest::TempDir t;
  const guint64 timeout = 150 * GST_MSECOND;
  GstHarness* h = harness(make_card(t, "m", 2, 2), 8, timeout, FALSE, 0, "auto", "true", streams);
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(gst_harness_push(h, frame(1, 0)) == GST_FLOW_OK);
  REQUIRE(gst_harness_push(h, frame(2, GST_SECOND)) == GST_FLOW_OK);
  CHECK(gst_harness_buffers_received(h) == 0);
  GstBuffer* a = gst_harness_pull(h);  // blocks until the timer ran the batch
  GstBuffer* b = gst_harness_pull(h);
  const auto waited = std::chrono::steady_clock::now() - start;
  REQUIRE(a);
  REQUIRE(b);
  CHECK(waited >= std::chrono::milliseconds(140));
  CHECK(waited < std::chrono::seconds(20));
  check_result(a, 2, false);
  check_result(b, 2, false);
  gst_buffer_unref(a);
  gst_buffer_unref(b);
  // The timer re-arms for the next partial batch.
  REQUIRE(gst_harness_push(h, frame(3, 2 * GST_SECOND)) == GST_FLOW_OK);
  GstBuffer* c = gst_harness_pull(h);
  REQUIRE(c);
  CHECK(GST_BUFFER_PTS(c) == 2 * GST_SECOND);
  gst_buffer_unref(c);
  gst_harness_teardown(h);
}

TEST_CASE("cxrinfer: EOS flushes the last partial batch, events keep their place", "[infer]") {
  cxrtest::TempDir t;
  GstHarness* h = harness(make_card(t, "m", 4, 4, "multilabel"), 8, 0, TRUE);
  while (GstEvent* e = gst_harness_try_pull_event(h)) gst_event_unref(e);  // stream-start, caps, segment

  REQUIRE(gst_harness_push(h, frame(5, 0)) == GST_FLOW_OK);
  REQUIRE(gst_harness_push_event(h, gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM,
                                                         gst_structure_new_empty("cxr-test-marker"))));
  REQUIRE(gst_harness_push(h, frame(6, GST_SECOND)) == GST_FLOW_OK);
  REQUIRE(gst_harness_push(h, frame(7, 2 * GST_SECOND)) == GST_FLOW_OK);
  CHECK(gst_harness_buffers_received(h) == 0);
  CHECK(gst_harness_events_in_queue(h) == 0);  // the marker waits behind the first frame
  REQUIRE(gst_harness_push_event(h, gst_event_new_eos()));
  REQUIRE(gst_harness_buffers_received(h) == 3);

  for (int i = 0; i < 3; ++i) {
    GstBuffer* out = gst_harness_pull(h);
    check_result(out, 4, true);
    GstCxrResultMeta* r = gst_buffer_get_cxr_result_meta(out);
    CHECK(r->n_embedding == 1280);  // embeddings=true
    gst_buffer_unref(out);
  }
  GstEvent* marker = gst_harness_pull_event(h);
  REQUIRE(marker);
  CHECK(GST_EVENT_TYPE(marker) == GST_EVENT_CUSTOM_DOWNSTREAM);
  gst_event_unref(marker);
  GstEvent* eos = gst_harness_pull_event(h);
  REQUIRE(eos);
  CHECK(GST_EVENT_TYPE(eos) == GST_EVENT_EOS);
  gst_event_unref(eos);
  gst_harness_teardown(h);
}

TEST_CASE("cxrinfer: caps may change inside a batch (scans of many sizes)", "[infer]") {
  cxrtest::TempDir t;
  GstHarness* h = harness(make_card(t, "m", 2, 2), 4);
  REQUIRE(gst_harness_push(h, frame(1, 0)) == GST_FLOW_OK);
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY16_LE,width=33,height=20,framerate=0/1");
  GstBuffer* sixteen = gst_buffer_new_allocate(nullptr, 68 * 20, nullptr);
  gst_buffer_memset(sixteen, 0, 0x40, 68 * 20);
  REQUIRE(gst_harness_push(h, sixteen) == GST_FLOW_OK);
  REQUIRE(gst_harness_push_event(h, gst_event_new_eos()));
  REQUIRE(gst_harness_buffers_received(h) == 2);
  pull_results(h, 2, 2);
  gst_harness_teardown(h);
}

TEST_CASE("cxrinfer: a missing or inconsistent model is an element error at start", "[infer]") {
  cxrtest::TempDir t;
  struct Case {
    std::string card, expect;
  };
  const std::string mismatched = make_card(t, "mismatch", 2, 3);  // weights: 2 classes; card: 3
  t.touch("bad.toml", "[model]\narchitecture = \"vgg16\"\n");
  const Case cases[] = {
      {t / "nonexistent.toml", "nonexistent.toml"},
      {mismatched, "classifier.3.weight [2, 1280] in the file, [3, 1280] in the model"},
      {t / "bad.toml", "bad.toml:2"},
      {"", "model card"},
  };
  for (const auto& c : cases) {
    INFO(c.card);
    const std::string text = start_error(c.card);
    INFO(text);
    CHECK(text.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("cxrinfer: memory-format selects the layout; every layout gives the same results", "[infer]") {
  cxrtest::TempDir t;
  const std::string resnet = make_card(t, "r", 2, 2, "multiclass", "resnet34");
  std::vector<float> reference;
  for (const char* format : {"contiguous", "channels-last", "onednn", "winograd", "auto"}) {
    INFO(format);
    GstHarness* h = harness(resnet, 2, 0, FALSE, 0, format);
    for (int i = 0; i < 2; ++i) REQUIRE(gst_harness_push(h, frame(static_cast<guint8>(70 * i), 0)) == GST_FLOW_OK);
    std::vector<float> logits;
    for (int i = 0; i < 2; ++i) {
      GstBuffer* out = gst_harness_pull(h);
      check_result(out, 2, false);
      auto* r = gst_buffer_get_cxr_result_meta(out);
      logits.insert(logits.end(), r->logits, r->logits + r->n_classes);
      gst_buffer_unref(out);
    }
    if (reference.empty()) reference = logits;
    REQUIRE(logits.size() == reference.size());
    for (size_t i = 0; i < logits.size(); ++i) CHECK(logits[i] == Approx(reference[i]).margin(1e-4));
    gst_harness_teardown(h);
  }

  // The oneDNN path is ResNet-34's: on another architecture it is an element error at start.
  const std::string text = start_error(make_card(t, "m", 2, 2), "onednn");
  INFO(text);
  CHECK(text.find("memory format onednn needs the CPU and resnet34") != std::string::npos);
  const std::string winograd = start_error(make_card(t, "m", 2, 2), "winograd");
  INFO(winograd);
  CHECK(winograd.find("memory format winograd needs the CPU, fp32 and resnet34") != std::string::npos);
}

TEST_CASE("cxrinfer: fp16 on a CPU-only device is refused with the reason", "[infer]") {
  cxrtest::TempDir t;
  cxr::models::ModelCard card = cxr::models::load_card(make_card(t, "m", 2, 2));
  cxr::models::PredictorOptions options;
  options.device = "cpu";
  options.precision = cxr::models::Precision::FP16;
  CHECK_THROWS_WITH(cxr::models::Predictor(card, options), Catch::Contains("needs a CUDA device"));
  options.precision = cxr::models::Precision::FP32;
  options.device = "tpu";
  CHECK_THROWS_WITH(cxr::models::Predictor(card, options), Catch::Contains("auto, cpu, cuda, cuda:N"));
}
