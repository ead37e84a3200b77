// SPDX-License-Identifier: LGPL-2.1-or-later
// Runs a gst-launch style pipeline until SIGINT/SIGTERM (then EOS, as gst-launch-1.0 -e) or an
// error. An element named `fakeresults` (an identity) gets a probe that attaches a
// deterministic GstCxrResultMeta to each buffer, so the PACS tests exercise the whole
// receive -> report -> send path in builds without a model runtime. Element messages are
// printed one per line (name + structure) for the test scripts.
#include <gst/gst.h>
#include <glib-unix.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "gst/gstcxrmeta.h"

namespace {

const char* const kClasses[] = {"normal", "pneumonia", "covid"};

// Probabilities from the SOP Instance UID: stable across runs, different between scans.
GstPadProbeReturn add_results(GstPad*, GstPadProbeInfo* info, gpointer) {
  GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
  if (!buf) return GST_PAD_PROBE_OK;
  buf = gst_buffer_make_writable(buf);
  GST_PAD_PROBE_INFO_DATA(info) = buf;
  const GstCxrScanMeta* sm = gst_buffer_get_cxr_scan_meta(buf);
  guint h = g_str_hash(sm && sm->sop_uid ? sm->sop_uid : "none");
  GstCxrResultMeta* rm = gst_buffer_add_cxr_result_meta(buf, 3);
  gst_cxr_meta_set_string(&rm->model, "fake-model");
  float w[3], sum = 0;
  for (int i = 0; i < 3; ++i) {
    w[i] = 1.0f + static_cast<float>((h >> (8 * i)) & 0xff);
    sum += w[i];
  }
  int top = 0;
  for (int i = 0; i < 3; ++i) {
    rm->class_quarks[i] = g_quark_from_static_string(kClasses[i]);
    rm->probabilities[i] = w[i] / sum;
    rm->logits[i] = w[i];
    if (w[i] > w[top]) top = i;
  }
  for (int i = 0; i < 3; ++i) rm->decisions[i] = i == top;
  return GST_PAD_PROBE_OK;
}

struct App {
  GMainLoop* loop;
  GstElement* pipeline;
  int rc = 0;
};

gboolean on_signal(gpointer data) {
  App* app = static_cast<App*>(data);
  std::fprintf(stderr, "pacs-run: sending EOS\n");
  gst_element_send_event(app->pipeline, gst_event_new_eos());
  return G_SOURCE_CONTINUE;
}

gboolean on_message(GstBus*, GstMessage* msg, gpointer data) {
  App* app = static_cast<App*>(data);
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_EOS: g_main_loop_quit(app->loop); break;
    case GST_MESSAGE_ERROR: {
      GError* err = nullptr;
      gchar* dbg = nullptr;
      gst_message_parse_error(msg, &err, &dbg);
      std::fprintf(stderr, "pacs-run: ERROR from %s: %s (%s)\n", GST_OBJECT_NAME(msg->src), err->message,
                   dbg ? dbg : "");
      g_error_free(err);
      g_free(dbg);
      app->rc = 1;
      g_main_loop_quit(app->loop);
      break;
    }
    case GST_MESSAGE_WARNING: {
      GError* err = nullptr;
      gst_message_parse_warning(msg, &err, nullptr);
      std::fprintf(stderr, "pacs-run: WARNING from %s: %s\n", GST_OBJECT_NAME(msg->src), err->message);
      g_error_free(err);
      break;
    }
    case GST_MESSAGE_ELEMENT: {
      gchar* s = gst_structure_to_string(gst_message_get_structure(msg));
      std::printf("%s\n", s);
      std::fflush(stdout);
      g_free(s);
      break;
    }
    default: break;
  }
  return TRUE;
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: pacs-run 'PIPELINE'\n");
    return 2;
  }
  gst_cxr_scan_meta_get_info();
  gst_cxr_result_meta_get_info();
  GError* err = nullptr;
  App app;
  app.pipeline = gst_parse_launch(argv[1], &err);
  if (!app.pipeline || err) {
    std::fprintf(stderr, "pacs-run: %s\n", err ? err->message : "cannot parse the pipeline");
    return 2;
  }
  if (GstElement* fake = gst_bin_get_by_name(GST_BIN(app.pipeline), "fakeresults")) {
    GstPad* pad = gst_element_get_static_pad(fake, "src");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, add_results, nullptr, nullptr);
    gst_object_unref(pad);
    gst_object_unref(fake);
  }
  app.loop = g_main_loop_new(nullptr, FALSE);
  GstBus* bus = gst_element_get_bus(app.pipeline);
  gst_bus_add_watch(bus, on_message, &app);
  g_unix_signal_add(SIGINT, on_signal, &app);
  g_unix_signal_add(SIGTERM, on_signal, &app);
  if (gst_element_set_state(app.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    // The error message on the bus says why.
    app.rc = 1;
    GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    if (m) {
      on_message(bus, m, &app);
      gst_message_unref(m);
    }
  } else {
    std::fprintf(stderr, "pacs-run: running\n");
    g_main_loop_run(app.loop);
  }
  gst_element_set_state(app.pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(app.pipeline);
  g_main_loop_unref(app.loop);
  return app.rc;
}
