// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/gstcxrevents.h"

GstEvent *gst_cxr_event_new_dataset(const gchar *task, const gchar *const *classes, const guint64 *counts,
                                    guint n_classes, guint64 total) {
  GValue names = G_VALUE_INIT, nums = G_VALUE_INIT;
  g_value_init(&names, GST_TYPE_ARRAY);
  g_value_init(&nums, GST_TYPE_ARRAY);
  for (guint i = 0; i < n_classes; ++i) {
    GValue v = G_VALUE_INIT;
    g_value_init(&v, G_TYPE_STRING);
    g_value_set_string(&v, classes[i]);
    gst_value_array_append_and_take_value(&names, &v);
    GValue c = G_VALUE_INIT;
    g_value_init(&c, G_TYPE_UINT64);
    g_value_set_uint64(&c, counts ? counts[i] : 0);
    gst_value_array_append_and_take_value(&nums, &c);
  }
  GstStructure *s = gst_structure_new(GST_CXR_EVENT_DATASET, "task", G_TYPE_STRING, task, "total", G_TYPE_UINT64,
                                      total, NULL);
  gst_structure_take_value(s, "classes", &names);
  gst_structure_take_value(s, "counts", &nums);
  return gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM_STICKY, s);
}

GstEvent *gst_cxr_event_new_phase(guint epoch, GstCxrSplit split, gboolean start, guint64 count) {
  GstStructure *s = gst_structure_new(GST_CXR_EVENT_PHASE, "epoch", G_TYPE_UINT, epoch, "split", G_TYPE_STRING,
                                      gst_cxr_split_to_string(split), "state", G_TYPE_STRING,
                                      start ? "start" : "end", "count", G_TYPE_UINT64, count, NULL);
  return gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM, s);
}

GstEvent *gst_cxr_event_new_scan_error(const GstCxrScanMeta *meta, const gchar *reason, const gchar *element) {
  GstStructure *s = gst_structure_new(
      GST_CXR_EVENT_SCAN_ERROR, "path", G_TYPE_STRING, meta && meta->path ? meta->path : "unknown", "index",
      G_TYPE_UINT64, meta ? meta->index : G_GUINT64_CONSTANT(0), "split", G_TYPE_STRING,
      gst_cxr_split_to_string(meta ? meta->split : GST_CXR_SPLIT_NONE), "epoch", G_TYPE_UINT, meta ? meta->epoch : 0u,
      "reason", G_TYPE_STRING, reason ? reason : "unknown error", "element", G_TYPE_STRING, element ? element : "",
      NULL);
  return gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM, s);
}

const GstStructure *gst_cxr_event_get(GstEvent *event, const gchar *name) {
  const GstEventType t = GST_EVENT_TYPE(event);
  if (t != GST_EVENT_CUSTOM_DOWNSTREAM && t != GST_EVENT_CUSTOM_DOWNSTREAM_STICKY) return nullptr;
  const GstStructure *s = gst_event_get_structure(event);
  return s && gst_structure_has_name(s, name) ? s : nullptr;
}
