// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>

#include <fstream>
#include <string>
#include <vector>

#include "gst/gstcxrevents.h"
#include "gst/gstcxrmeta.h"
#include "testutil.hpp"

namespace {
std::vector<std::string> lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}
}  // namespace

TEST_CASE("cxrresultsink writes a row per buffer and per error event, flushed at once", "[resultsink]") {
  cxrtest::TempDir t;
  const std::string out = t / "r.jsonl";
  // Sinks start playing when the harness is made, so the location goes in the description.
  GstHarness* h =
      gst_harness_new_parse(("cxrresultsink name=sink logits=true location=" + out + " image-dir=" + (t / "img")).c_str());
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=5,height=3,framerate=0/1");

  const char* classes[] = {"normal", "covid"};
  const guint64 counts[] = {1, 1};
  gst_harness_push_event(h, gst_cxr_event_new_dataset("multiclass", classes, counts, 2, 2));

  GstBuffer* buf = gst_buffer_new_allocate(nullptr, 8 * 3, nullptr);  // stride 8 for width 5
  gst_buffer_memset(buf, 0, 200, 24);
  GstCxrScanMeta* m = gst_buffer_add_cxr_scan_meta(buf);
  gst_cxr_meta_set_string(&m->path, "/x/scan-1.png");
  m->index = 4;
  m->label = 1;
  GstCxrResultMeta* r = gst_buffer_add_cxr_result_meta(buf, 2);
  gst_cxr_meta_set_string(&r->model, "tiny");
  r->class_quarks[0] = g_quark_from_string("normal");
  r->class_quarks[1] = g_quark_from_string("covid");
  r->probabilities[0] = 0.125f;
  r->probabilities[1] = 0.875f;
  r->logits[1] = 2.0f;
  REQUIRE(gst_harness_push(h, buf) == GST_FLOW_OK);

  // The row is on disk before the stream ends.
  auto rows = lines(out);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0] ==
        R"({"path":"/x/scan-1.png","index":4,"label":"covid","width":5,"height":3,"format":"GRAY8","image":")" +
            (t / "img") +
            R"(/000004-scan-1.png","model":"tiny","classes":["normal","covid"],"probabilities":[0.125,0.875],"predicted":"covid","logits":[0,2]})");
  CHECK(std::filesystem::file_size(t / "img/000004-scan-1.png") > 0);

  GstCxrScanMeta fake{};
  fake.path = const_cast<gchar*>("/x/broken.dcm");
  fake.index = 5;
  gst_harness_push_event(h, gst_cxr_event_new_scan_error(&fake, "truncated pixel data", "cxrdecode0"));
  gst_harness_push_event(h, gst_event_new_eos());
  rows = lines(out);
  REQUIRE(rows.size() == 2);
  CHECK(rows[1] == R"({"path":"/x/broken.dcm","index":5,"error":"truncated pixel data","element":"cxrdecode0"})");
  guint64 nrows = 0, nerrors = 0;
  GstElement* sink = gst_bin_get_by_name(GST_BIN(h->element), "sink");
  REQUIRE(sink);
  g_object_get(sink, "rows", &nrows, "errors", &nerrors, NULL);
  gst_object_unref(sink);
  CHECK(nrows == 2);
  CHECK(nerrors == 1);
  gst_harness_teardown(h);
}

TEST_CASE("cxrresultsink fails to start on an unwritable location", "[resultsink]") {
  GstElement* sink = gst_element_factory_make("cxrresultsink", nullptr);
  g_object_set(sink, "location", "/proc/nope/r.jsonl", NULL);
  CHECK(gst_element_set_state(sink, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE);
  gst_element_set_state(sink, GST_STATE_NULL);
  gst_object_unref(sink);
}
