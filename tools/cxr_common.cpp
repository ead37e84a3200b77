// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr_common.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace cxrtool {

void init_gstreamer(int* argc, char*** argv) {
  // Prefer the plugin built beside this binary, so `build/tools/cxr` works without installing.
  const char* build_dir = CXR_PLUGIN_BUILD_DIR;
  std::string dir;
  gchar* exe = g_file_read_link("/proc/self/exe", nullptr);
  if (exe) {
    gchar* d = g_path_get_dirname(exe);
    gchar* candidate = g_build_filename(d, "..", "plugins", "libgstcxr.so", nullptr);
    if (g_file_test(candidate, G_FILE_TEST_EXISTS)) dir = std::string(d) + "/../plugins";
    g_free(candidate);
    g_free(d);
    g_free(exe);
  }
  if (dir.empty() && g_file_test(build_dir, G_FILE_TEST_IS_DIR)) dir = build_dir;
  if (dir.empty()) dir = CXR_PLUGIN_INSTALL_DIR;
  const char* old = g_getenv("GST_PLUGIN_PATH_1_0");
  const std::string path = old && *old ? dir + ":" + old : dir;
  g_setenv("GST_PLUGIN_PATH_1_0", path.c_str(), TRUE);
  gst_init(argc, argv);
}

namespace {
// Buffers reaching any sink: the scans the pipeline finished.
GstPadProbeReturn count_buffer(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* n = static_cast<std::atomic<uint64_t>*>(data);
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) n->fetch_add(1);
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    n->fetch_add(gst_buffer_list_length(GST_PAD_PROBE_INFO_BUFFER_LIST(info)));
  return GST_PAD_PROBE_OK;
}

void probe_sinks(GstElement* pipeline, std::atomic<uint64_t>* counter) {
  GstIterator* it = gst_bin_iterate_sinks(GST_BIN(pipeline));
  GValue v = G_VALUE_INIT;
  while (gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
    GstElement* e = GST_ELEMENT(g_value_get_object(&v));
    if (GstPad* pad = gst_element_get_static_pad(e, "sink")) {
      gst_pad_add_probe(pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                        count_buffer, counter, nullptr);
      gst_object_unref(pad);
    }
    g_value_reset(&v);
  }
  g_value_unset(&v);
  gst_iterator_free(it);
}
}  // namespace

RunStats run_pipeline(GstElement* pipeline, bool progress) {
  RunStats st;
  std::atomic<uint64_t> done_buffers{0};
  probe_sinks(pipeline, &done_buffers);
  GstBus* bus = gst_element_get_bus(pipeline);
  uint64_t total = 0;
  const auto t0 = std::chrono::steady_clock::now();
  gst_element_set_state(pipeline, GST_STATE_PAUSED);  // a failure is explained on the bus
  bool started = false;
  auto last_print = t0;
  for (;;) {
    GstMessage* msg = gst_bus_timed_pop(bus, 100 * GST_MSECOND);
    if (!started) {
      gst_element_set_state(pipeline, GST_STATE_PLAYING);
      started = true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (progress && total && now - last_print > std::chrono::milliseconds(500)) {
      last_print = now;
      const double s = std::chrono::duration<double>(now - t0).count();
      const uint64_t n = done_buffers.load();
      const double rate = s > 0 ? n / s : 0;
      const double eta = rate > 0 ? (total - std::min(total, n)) / rate : 0;
      const int width = 30;
      const int filled = static_cast<int>(width * std::min(n, total) / total);
      const long e = static_cast<long>(eta + 0.5);
      std::fprintf(stderr, "\r[%.*s%*s] %llu/%llu scans  %.1f scans/s  ETA %ld:%02ld   ", filled,
                   "##############################", width - filled, "", (unsigned long long)n,
                   (unsigned long long)total, rate, e / 60, e % 60);
    }
    if (!msg) continue;
    bool done = false;
    switch (GST_MESSAGE_TYPE(msg)) {
      case GST_MESSAGE_ERROR: {
        GError* err = nullptr;
        gchar* dbg = nullptr;
        gst_message_parse_error(msg, &err, &dbg);
        st.error = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))) + ": " + err->message;
        g_error_free(err);
        g_free(dbg);
        done = true;
        break;
      }
      case GST_MESSAGE_WARNING: {
        st.warnings++;
        if (progress) {
          GError* err = nullptr;
          gst_message_parse_warning(msg, &err, nullptr);
          std::fprintf(stderr, "\rwarning: %s\n", err->message);
          g_error_free(err);
        }
        break;
      }
      case GST_MESSAGE_ELEMENT: {
        const GstStructure* s = gst_message_get_structure(msg);
        if (gst_structure_has_name(s, "cxr-dataset")) {
          guint64 t = 0;
          if (gst_structure_get_uint64(s, "total", &t)) total = t;
        } else if (gst_structure_has_name(s, "cxr-epoch") || gst_structure_has_name(s, "cxr-train-done")) {
          // cxrtrain's lines: one per epoch, and the test pass.
          // In a data-parallel job every rank has the same lines: rank 0 prints them.
          const gchar* rank = std::getenv("RANK");
          const gchar* line = gst_structure_get_string(s, "line");
          if (line && !(rank && *rank && std::strcmp(rank, "0") != 0)) {
            if (progress) std::fprintf(stderr, "\r%80s\r", "");
            std::fprintf(stderr, "%s\n", line);
          }
        } else if (gst_structure_has_name(s, "cxr-summary")) {
          guint64 v = 0;
          if (gst_structure_get_uint64(s, "rows", &v)) st.rows = v;
          if (gst_structure_get_uint64(s, "errors", &v)) st.errors = v;
        }
        break;
      }
      case GST_MESSAGE_EOS:
        st.ok = true;
        done = true;
        break;
      default:
        break;
    }
    gst_message_unref(msg);
    if (done) break;
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.buffers = done_buffers.load();
  if (progress) std::fprintf(stderr, "\r%80s\r", "");
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  return st;
}

}  // namespace cxrtool
