// SPDX-License-Identifier: LGPL-2.1-or-later
// cxrdicomsink with GstHarness, writing to a folder (output-dir): an SR and a Secondary Capture
// in the source's study per scan with a result, the inbox released upstream, and nothing but the
// release for a scan without a result.
#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>

#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "cxr/dicom/instance.hpp"
#include "cxr/io/decode.hpp"
#include "frameutil.hpp"
#include "gst/gstcxrmeta.h"
#include "testutil.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int kW = 37, kH = 23;  // odd sizes: GRAY8 rows padded to 40 bytes

/// A GRAY8 frame of the scan at `source` with a result (normal 0.2, pneumonia 0.8).
GstBuffer* scan_with_result(const std::string& source, bool with_result) {
  const int stride = (kW + 3) / 4 * 4;
  GstBuffer* buf = gst_buffer_new_allocate(nullptr, static_cast<gsize>(stride * kH), nullptr);
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_WRITE);
  for (int y = 0; y < kH; ++y)
    for (int x = 0; x < stride; ++x) map.data[y * stride + x] = static_cast<guint8>(x * 5 + y);
  gst_buffer_unmap(buf, &map);
  GstCxrScanMeta* m = gst_buffer_add_cxr_scan_meta(buf);
  gst_cxr_meta_set_string(&m->path, source.c_str());
  if (with_result) {
    GstCxrResultMeta* r = gst_buffer_add_cxr_result_meta(buf, 2);
    gst_cxr_meta_set_string(&r->model, "tiny");
    r->class_quarks[0] = g_quark_from_string("normal");
    r->class_quarks[1] = g_quark_from_string("pneumonia");
    r->probabilities[0] = 0.2f;
    r->probabilities[1] = 0.8f;
    r->decisions[1] = 1;
  }
  return buf;
}

std::vector<std::string> dcm_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".dcm" && e.path().filename().string()[0] != '.') out.push_back(e.path().string());
  return out;
}

/// The path of the next cxr-inbox-done event upstream, or "" when there is none.
std::string released(GstHarness* h) {
  for (GstEvent* ev; (ev = gst_harness_try_pull_upstream_event(h)) != nullptr;) {
    const GstStructure* s = gst_event_get_structure(ev);
    std::string path;
    if (s && gst_structure_has_name(s, "cxr-inbox-done")) path = gst_structure_get_string(s, "path");
    gst_event_unref(ev);
    if (!path.empty()) return path;
  }
  return "";
}

}  // namespace

TEST_CASE("cxrdicomsink: an SR and a Secondary Capture in the source's study per scan", "[dicomsink]") {
  cxrtest::TempDir t;
  const std::string source = t / "inbox/scan.dcm";
  fs::create_directories(t / "inbox");
  fs::copy_file(cxrtest::samples("dicom/CR-MONO1-10-chest.dcm"), source);
  const cxr::dicom::InstanceInfo src = cxr::dicom::read_instance_info(source);
  fs::create_directories(t / "out");
  // Sinks start when the harness is made: the folder goes in the description.
  GstHarness* h = gst_harness_new_parse(("cxrdicomsink output-dir=" + (t / "out")).c_str());
  gst_harness_set_src_caps_str(
      h, ("video/x-raw,format=GRAY8,width=" + std::to_string(kW) + ",height=" + std::to_string(kH) + ",framerate=0/1")
             .c_str());
  REQUIRE(gst_harness_push(h, scan_with_result(source, true)) == GST_FLOW_OK);

  const auto files = dcm_files(t / "out");
  REQUIRE(files.size() == 2);
  int sr = 0, sc = 0;
  for (const auto& f : files) {
    const cxr::dicom::InstanceInfo info = cxr::dicom::read_instance_info(f);
    CHECK(info.study_uid == src.study_uid);
    CHECK(info.patient_id == src.patient_id);
    CHECK(info.sop_instance_uid != src.sop_instance_uid);
    if (info.modality == "SR") {
      ++sr;
    } else {
      ++sc;
      // The Secondary Capture holds the frame it received.
      const cv::Mat img = cxr::io::decode_file(f).pixels;
      REQUIRE(img.size() == cv::Size(kW, kH));
      CHECK(img.at<uint8_t>(4, 7) == 7 * 5 + 4);
    }
  }
  CHECK(sr == 1);
  CHECK(sc == 1);
  CHECK(released(h) == source);  // the inbox copy may go
  CHECK(cxrtest::harness_counter(h, "cxrdicomsink", "queued") == 1);

  // Without a result: nothing is written, and the scan is released all the same.
  REQUIRE(gst_harness_push(h, scan_with_result(source, false)) == GST_FLOW_OK);
  CHECK(dcm_files(t / "out").size() == 2);
  CHECK(released(h) == source);
  gst_harness_teardown(h);
}
