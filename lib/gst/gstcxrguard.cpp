// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/gstcxrguard.hpp"

#include "gst/gstcxrevents.h"

GType gst_cxr_on_error_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_ON_ERROR_SKIP, "Write an error row, warn, and go on with the next scan", "skip"},
      {GST_CXR_ON_ERROR_STOP, "Post an element error and end the stream", "stop"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_type_from_name("GstCxrOnError");
    if (!t) t = g_enum_register_static("GstCxrOnError", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

GstFlowReturn gst_cxr_post_error(GstElement* element, const std::string& what) {
  GST_ELEMENT_ERROR(element, LIBRARY, FAILED, ("%s", what.c_str()), (nullptr));
  return GST_FLOW_ERROR;
}

GstFlowReturn gst_cxr_scan_failed(GstElement* element, GstPad* srcpad, GstBuffer* buffer, const std::string& reason,
                                  GstCxrOnError mode) {
  const GstCxrScanMeta* meta = buffer ? gst_buffer_get_cxr_scan_meta(buffer) : nullptr;
  const char* path = meta && meta->path ? meta->path : "unknown";
  if (mode == GST_CXR_ON_ERROR_STOP) {
    GST_ELEMENT_ERROR(element, STREAM, DECODE, ("%s: %s", path, reason.c_str()), (nullptr));
    return GST_FLOW_ERROR;
  }
  GST_ELEMENT_WARNING(element, STREAM, DECODE, ("%s: %s", path, reason.c_str()), (nullptr));
  if (srcpad) {
    gchar* name = gst_element_get_name(element);
    gst_pad_push_event(srcpad, gst_cxr_event_new_scan_error(meta, reason.c_str(), name));
    g_free(name);
  }
  return GST_FLOW_OK;
}
