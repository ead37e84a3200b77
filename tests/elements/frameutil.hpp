// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// Helpers of the element tests: cv::Mat <-> buffers, caps, harness output, start failures.
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "cxr_catch.hpp"
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <string>

#include "cxr/runtime/threads.hpp"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrmeta.h"
#include "testutil.hpp"

namespace cxrtest {

inline std::string caps_for(cv::Size size, int type) {
  return std::string("video/x-raw,format=") + (type == CV_8U ? "GRAY8" : "GRAY16_LE") +
         ",width=" + std::to_string(size.width) + ",height=" + std::to_string(size.height) + ",framerate=0/1";
}

/// A buffer holding m in GStreamer's layout (rows padded to 4 bytes), optionally with a scan meta.
inline GstBuffer* buffer_for(const cv::Mat& m, int split = -1, guint64 index = 0, guint epoch = 0) {
  GstBuffer* buf = gst_cxr_buffer_wrap_mat(m.clone());
  if (split >= 0) {
    GstCxrScanMeta* meta = gst_buffer_add_cxr_scan_meta(buf);
    meta->split = static_cast<GstCxrSplit>(split);
    meta->index = index;
    meta->epoch = epoch;
    gst_cxr_meta_set_string(&meta->path, ("/scans/" + std::to_string(index) + ".png").c_str());
  }
  return buf;
}

/// The caps the harness's sink pad last received.
inline cv::Size output_size(GstHarness* h) {
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  if (!caps) return {};
  GstVideoInfo info;
  gst_video_info_from_caps(&info, caps);
  gst_caps_unref(caps);
  return {GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info)};
}

/// A copy of the pixels of buf, read with the harness sink pad's current caps (and stride).
inline cv::Mat mat_of(GstHarness* h, GstBuffer* buf) {
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  GstVideoInfo info;
  gst_video_info_from_caps(&info, caps);
  gst_caps_unref(caps);
  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, &info, buf, GST_MAP_READ)) return {};
  cv::Mat m = gst_cxr_frame_to_mat(&frame).clone();
  gst_video_frame_unmap(&frame);
  return m;
}

/// Push m and pull the result as a Mat (empty when nothing came out).
inline cv::Mat push_pull(GstHarness* h, GstBuffer* buf, GstFlowReturn* flow = nullptr) {
  const GstFlowReturn r = gst_harness_push(h, buf);
  if (flow) *flow = r;
  GstBuffer* out = gst_harness_try_pull(h);
  if (!out) return {};
  cv::Mat m = mat_of(h, out);
  gst_buffer_unref(out);
  return m;
}

inline bool same(const cv::Mat& a, const cv::Mat& b) {
  return !a.empty() && a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

/// The text (message and debug) of the error message on `bus`, posted by `element`; there must
/// be one.
inline std::string pop_error_text(GstBus* bus, GstElement* element) {
  GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  REQUIRE(msg);
  CHECK(GST_MESSAGE_SRC(msg) == GST_OBJECT(element));
  GError* err = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_error(msg, &err, &debug);
  const std::string text = std::string(err->message) + " " + (debug ? debug : "");
  g_error_free(err);
  g_free(debug);
  gst_message_unref(msg);
  return text;
}

/// Starts `source` ! element ! fakesink (taking `element`); the start must fail with an error
/// message posted by `element`. Returns its text (message and debug).
inline std::string start_error(GstElement* element, const char* source = "fakesrc") {
  GstElement* pipeline = gst_pipeline_new(nullptr);
  GstElement* src = gst_element_factory_make(source, nullptr);
  GstElement* sink = gst_element_factory_make("fakesink", nullptr);
  gst_bin_add_many(GST_BIN(pipeline), src, element, sink, NULL);
  REQUIRE(gst_element_link_many(src, element, sink, NULL));
  CHECK(gst_element_set_state(pipeline, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE);
  GstBus* bus = gst_element_get_bus(pipeline);
  const std::string text = pop_error_text(bus, element);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return text;
}

/// Starts a source or sink `element` on its own (not taken); the start must fail with an error
/// message. Returns its text (message and debug); the element is back in NULL.
inline std::string start_error_alone(GstElement* element) {
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(element, bus);
  CHECK(gst_element_set_state(element, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE);
  const std::string text = pop_error_text(bus, element);
  gst_element_set_state(element, GST_STATE_NULL);
  gst_element_set_bus(element, nullptr);
  gst_object_unref(bus);
  return text;
}

/// A guint64 property (a counter) of the element of `factory` in the harness h (which wraps it in
/// a bin).
inline guint64 harness_counter(GstHarness* h, const char* factory, const char* property) {
  GstElement* element = gst_harness_find_element(h, factory);
  REQUIRE(element != nullptr);
  guint64 value = 0;
  g_object_get(element, property, &value, nullptr);
  gst_object_unref(element);
  return value;
}

/// The name of the (first) thread on which a cxrinfer or cxrgradcam runs LibTorch.
inline std::string compute_thread_of(GstElement* element) {
  gchar* name = gst_element_get_name(element);
  std::string s = cxr::runtime::compute_thread_name(name);
  g_free(name);
  return s;
}

/// How many threads of this process bear `name` (as /proc shows it: at most 15 characters).
/// Threads inherit their creator's name, so this also counts the OpenMP workers a thread made.
inline int threads_named(const std::string& name) {
  int n = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream f(task.path() / "comm");
    std::string comm;
    if (std::getline(f, comm) && comm == name.substr(0, 15)) ++n;
  }
  return n;
}

}  // namespace cxrtest
