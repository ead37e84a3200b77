// SPDX-License-Identifier: LGPL-2.1-or-later
/* The gst-cxr plugin: chest X-ray scans as GStreamer streams. */
#include <gst/gst.h>

#include "cxr_config.h"
#include "gst/gstcxrmeta.h"

#define CXR_ELEMENT(name) GST_ELEMENT_REGISTER_DECLARE(name);
#include "gstcxr-elements.h"
#undef CXR_ELEMENT

GST_DEBUG_CATEGORY_STATIC(gst_cxr_plugin_debug);
#define GST_CAT_DEFAULT gst_cxr_plugin_debug

static gboolean plugin_init(GstPlugin* plugin) {
  gboolean ok = FALSE;
  GST_DEBUG_CATEGORY_INIT(gst_cxr_plugin_debug, "cxr", 0, "gst-cxr plugin");
  // Nothing process-wide here: the CPU runtime choices (OpenBLAS kernels, allocator) are made
  // when the first element that computes starts (cxr/runtime/cpu.hpp).
  // Register the metas up front so they exist before any element runs.
  gst_cxr_scan_meta_get_info();
  gst_cxr_result_meta_get_info();
#define CXR_ELEMENT(name) ok |= GST_ELEMENT_REGISTER(name, plugin);
#include "gstcxr-elements.h"
#undef CXR_ELEMENT
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, cxr, "Chest X-ray AI: scan streams, preprocessing, inference",
                  plugin_init, CXR_VERSION, "LGPL", "gst-cxr", "https://example.invalid/gst-cxr")
