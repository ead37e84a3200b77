// SPDX-License-Identifier: LGPL-2.1-or-later
// cxrdecode in a GstHarness: whole-file buffers with and without scan meta, caps and pixels,
// caps changes between scans, bad files (warning + cxr-scan-error event, or element error with
// on-error=stop), and a filesrc pipeline that delivers a file in blocks.
#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <cstring>
#include <string>
#include <vector>

#include "cxr/io/decode.hpp"
#include "gst/gstcxrevents.h"
#include "gst/gstcxrmeta.h"
#include "testutil.hpp"

namespace {

GstBuffer* file_buffer(const std::string& path, bool with_meta) {
  const std::vector<unsigned char> bytes = cxrtest::read_file(path);
  GstBuffer* buf = gst_buffer_new_memdup(bytes.data(), bytes.size());
  GST_BUFFER_PTS(buf) = 42 * GST_SECOND;
  GST_BUFFER_OFFSET(buf) = 7;
  if (with_meta) {
    GstCxrScanMeta* meta = gst_buffer_add_cxr_scan_meta(buf);
    gst_cxr_meta_set_string(&meta->path, path.c_str());
    meta->label = 2;
    meta->index = 3;
  }
  return buf;
}

GstBuffer* bytes_buffer(const std::string& s) {
  return s.empty() ? gst_buffer_new() : gst_buffer_new_memdup(s.data(), s.size());
}

// The frame's pixels as a Mat copy (row stride taken from the video meta).
cv::Mat frame_pixels(GstBuffer* buf, GstCaps* caps) {
  GstVideoInfo info;
  REQUIRE(gst_video_info_from_caps(&info, caps));
  GstVideoFrame frame;
  REQUIRE(gst_video_frame_map(&frame, &info, buf, GST_MAP_READ));
  const int type = GST_VIDEO_INFO_FORMAT(&info) == GST_VIDEO_FORMAT_GRAY8 ? CV_8UC1 : CV_16UC1;
  cv::Mat view(GST_VIDEO_FRAME_HEIGHT(&frame), GST_VIDEO_FRAME_WIDTH(&frame), type,
               GST_VIDEO_FRAME_PLANE_DATA(&frame, 0), size_t(GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0)));
  cv::Mat copy = view.clone();
  gst_video_frame_unmap(&frame);
  return copy;
}

std::string caps_format(GstCaps* caps) {
  const gchar* f = gst_structure_get_string(gst_caps_get_structure(caps, 0), "format");
  return f ? f : "";
}

// Pulls events until a cxr-scan-error one (or none left); returns its reason.
std::string pull_scan_error(GstHarness* h, std::string* path = nullptr) {
  while (GstEvent* ev = gst_harness_try_pull_event(h)) {
    const GstStructure* s = gst_cxr_event_get(ev, GST_CXR_EVENT_SCAN_ERROR);
    if (s) {
      std::string reason = gst_structure_get_string(s, "reason");
      if (path) *path = gst_structure_get_string(s, "path");
      gst_event_unref(ev);
      return reason;
    }
    gst_event_unref(ev);
  }
  return "";
}

// Drains the bus; returns the first message of `type` as "text" or "".
std::string bus_message(GstHarness* h, GstMessageType type) {
  GstBus* bus = gst_element_get_bus(h->element);
  std::string text;
  while (GstMessage* m = gst_bus_pop(bus)) {
    if (GST_MESSAGE_TYPE(m) == type && text.empty()) {
      GError* err = nullptr;
      gchar* dbg = nullptr;
      if (type == GST_MESSAGE_WARNING)
        gst_message_parse_warning(m, &err, &dbg);
      else
        gst_message_parse_error(m, &err, &dbg);
      text = err ? err->message : "";
      g_clear_error(&err);
      g_free(dbg);
    }
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  return text;
}

GstHarness* new_harness() {
  GstHarness* h = gst_harness_new("cxrdecode");
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  gst_object_unref(bus);
  gst_harness_set_src_caps_str(h, "application/x-cxr-scan");
  return h;
}

}  // namespace

TEST_CASE("cxrdecode: PNG with scan meta gives GRAY8 equal to the lib decode", "[decode]") {
  GstHarness* h = new_harness();
  const std::string path = cxrtest::samples("nih/00000773_001.png");
  REQUIRE(gst_harness_push(h, file_buffer(path, true)) == GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(h);
  REQUIRE(out);
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  REQUIRE(caps);
  CHECK(caps_format(caps) == "GRAY8");
  const cv::Mat px = frame_pixels(out, caps);
  const cxr::io::Image ref = cxr::io::decode_file(path);
  CHECK(cv::norm(px, ref.pixels, cv::NORM_INF) == 0);
  CHECK(GST_BUFFER_PTS(out) == 42 * GST_SECOND);
  CHECK(GST_BUFFER_OFFSET(out) == 7);
  const GstCxrScanMeta* meta = gst_buffer_get_cxr_scan_meta(out);
  REQUIRE(meta);
  CHECK(std::string(meta->path) == path);
  CHECK(meta->label == 2);
  CHECK(meta->index == 3);
  CHECK(meta->bits_stored == 8);
  CHECK(std::string(meta->photometric) == "RGBA");  // the README's RGBA NIH scan
  gst_caps_unref(caps);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST_CASE("cxrdecode: DICOM without meta, caps change between scans, meta from DICOM", "[decode]") {
  GstHarness* h = new_harness();
  // 10-bit MONOCHROME1 DICOM: GRAY16_LE, full range.
  const std::string dcm = cxrtest::samples("dicom/CR-MONO1-10-chest.dcm");
  REQUIRE(gst_harness_push(h, file_buffer(dcm, false)) == GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(h);
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  CHECK(caps_format(caps) == "GRAY16_LE");
  GstVideoInfo info;
  REQUIRE(gst_video_info_from_caps(&info, caps));
  CHECK(GST_VIDEO_INFO_WIDTH(&info) == 440);
  const cv::Mat px = frame_pixels(out, caps);
  double lo, hi;
  cv::minMaxLoc(px, &lo, &hi);
  CHECK(hi > 60000);  // full 16-bit range, not 10-bit values
  CHECK(cv::norm(px, cxr::io::decode_file(dcm).pixels, cv::NORM_INF) == 0);
  const GstCxrScanMeta* meta = gst_buffer_get_cxr_scan_meta(out);
  REQUIRE(meta);
  CHECK(meta->bits_stored == 10);
  CHECK(std::string(meta->photometric) == "MONOCHROME1");
  gst_caps_unref(caps);
  gst_buffer_unref(out);

  // Then an 8-bit DICOM of another size: new caps, UIDs in the meta.
  const std::string nih = cxrtest::samples("dicom/NIH_DX_nccid_testdata.dcm");
  REQUIRE(gst_harness_push(h, file_buffer(nih, true)) == GST_FLOW_OK);
  out = gst_harness_pull(h);
  caps = gst_pad_get_current_caps(h->sinkpad);
  CHECK(caps_format(caps) == "GRAY8");
  REQUIRE(gst_video_info_from_caps(&info, caps));
  CHECK(GST_VIDEO_INFO_WIDTH(&info) == 1024);
  meta = gst_buffer_get_cxr_scan_meta(out);
  REQUIRE(meta);
  CHECK(std::string(meta->patient_id) == "Covid0000");
  CHECK(meta->sop_uid != nullptr);
  CHECK(meta->study_uid != nullptr);
  gst_caps_unref(caps);
  gst_buffer_unref(out);

  // And a JPEG of yet another size.
  REQUIRE(gst_harness_push(h, file_buffer(cxrtest::samples("pneumonia/viral/person10_virus_35.jpeg"), true)) ==
          GST_FLOW_OK);
  out = gst_harness_pull(h);
  caps = gst_pad_get_current_caps(h->sinkpad);
  REQUIRE(gst_video_info_from_caps(&info, caps));
  CHECK(GST_VIDEO_INFO_WIDTH(&info) == 224);
  gst_caps_unref(caps);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST_CASE("cxrdecode: force-8bit gives GRAY8 for deep scans", "[decode]") {
  GstHarness* h = new_harness();
  g_object_set(h->element, "force-8bit", TRUE, NULL);
  REQUIRE(gst_harness_push(h, file_buffer(cxrtest::samples("dicom/WG04_RG1_JLSN.dcm"), true)) == GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(h);
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  CHECK(caps_format(caps) == "GRAY8");
  gst_caps_unref(caps);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST_CASE("cxrdecode: a bad file is a warning plus a cxr-scan-error event, then the stream goes on", "[decode]") {
  GstHarness* h = new_harness();
  const char* bad[] = {"this is text in a file named scan.png", ""};
  for (const char* text : bad) {
    INFO(text);
    GstBuffer* buf = bytes_buffer(text);
    GstCxrScanMeta* meta = gst_buffer_add_cxr_scan_meta(buf);
    gst_cxr_meta_set_string(&meta->path, "/data/scan.png");
    REQUIRE(gst_harness_push(h, buf) == GST_FLOW_OK);
    CHECK(gst_harness_buffers_in_queue(h) == 0);
    std::string path;
    const std::string reason = pull_scan_error(h, &path);
    CHECK(!reason.empty());
    CHECK(path == "/data/scan.png");
    const std::string warning = bus_message(h, GST_MESSAGE_WARNING);
    CHECK(warning.find("/data/scan.png") != std::string::npos);
    CHECK(warning.find(reason) != std::string::npos);
  }
  // A truncated JPEG fails too; a good scan afterwards still decodes.
  std::vector<unsigned char> jpg = cxrtest::read_file(cxrtest::samples("pneumonia/normal/IM-0001-0001.jpeg"));
  GstBuffer* cut = gst_buffer_new_memdup(jpg.data(), jpg.size() / 2);
  REQUIRE(gst_harness_push(h, cut) == GST_FLOW_OK);
  CHECK(pull_scan_error(h).find("Premature end") != std::string::npos);
  REQUIRE(gst_harness_push(h, file_buffer(cxrtest::samples("covid/006f3a8a.png"), true)) == GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(h);
  CHECK(out != nullptr);
  if (out) gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST_CASE("cxrdecode: max-pixels rejects a scan from its header", "[decode]") {
  GstHarness* h = new_harness();
  g_object_set(h->element, "max-pixels", G_GUINT64_CONSTANT(1000), NULL);
  REQUIRE(gst_harness_push(h, file_buffer(cxrtest::samples("covid/006f3a8a.png"), true)) == GST_FLOW_OK);
  CHECK(gst_harness_buffers_in_queue(h) == 0);
  CHECK(pull_scan_error(h).find("max-pixels") != std::string::npos);
  gst_harness_teardown(h);
}

TEST_CASE("cxrdecode: on-error=stop turns a bad file into an element error", "[decode]") {
  GstHarness* h = new_harness();
  gst_util_set_object_arg(G_OBJECT(h->element), "on-error", "stop");
  CHECK(gst_harness_push(h, bytes_buffer("random text, not a scan")) == GST_FLOW_ERROR);
  CHECK(bus_message(h, GST_MESSAGE_ERROR).find("not a PNG, JPEG or DICOM") != std::string::npos);
  gst_harness_teardown(h);
}

TEST_CASE("cxrdecode: filesrc blocks are gathered into one scan named by its path", "[decode]") {
  const std::string path = cxrtest::samples("dicom/CR-MONO1-10-chest.dcm");
  const std::string desc = "filesrc location=\"" + path + "\" blocksize=4096 ! cxrdecode ! appsink name=sink sync=false";
  GError* err = nullptr;
  GstElement* pipe = gst_parse_launch(desc.c_str(), &err);
  REQUIRE(err == nullptr);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipe), "sink");
  REQUIRE(gst_element_set_state(pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  GstSample* sample = nullptr;
  g_signal_emit_by_name(sink, "pull-sample", &sample);
  REQUIRE(sample);
  GstBuffer* buf = gst_sample_get_buffer(sample);
  const cv::Mat px = frame_pixels(buf, gst_sample_get_caps(sample));
  CHECK(cv::norm(px, cxr::io::decode_file(path).pixels, cv::NORM_INF) == 0);
  const GstCxrScanMeta* meta = gst_buffer_get_cxr_scan_meta(buf);
  REQUIRE(meta);
  REQUIRE(meta->path);
  CHECK(std::string(meta->path) == path);
  gst_sample_unref(sample);
  // Only one frame for the whole file.
  GstSample* more = nullptr;
  g_signal_emit_by_name(sink, "pull-sample", &more);
  CHECK(more == nullptr);
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipe);
}
