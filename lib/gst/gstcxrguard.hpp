// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Exception guard: no C++ exception may escape a GStreamer vfunc.
#include <gst/gst.h>

#include <exception>
#include <string>

#include "gst/gstcxrmeta.h"

/// What an element does when one scan cannot be processed.
typedef enum {
  GST_CXR_ON_ERROR_SKIP = 0,  ///< error row downstream + warning on the bus; next scan
  GST_CXR_ON_ERROR_STOP = 1,  ///< element error: the stream ends
} GstCxrOnError;

GType gst_cxr_on_error_get_type(void);
#define GST_TYPE_CXR_ON_ERROR (gst_cxr_on_error_get_type())

/// Posts an element error with the exception's message; returns GST_FLOW_ERROR.
GstFlowReturn gst_cxr_post_error(GstElement* element, const std::string& what);

/// One scan failed: with SKIP, posts a warning naming the file and pushes a cxr-scan-error event
/// out of srcpad (if any) so sinks write an error row, and returns GST_FLOW_OK (the caller drops
/// the buffer); with STOP, posts an element error and returns GST_FLOW_ERROR.
GstFlowReturn gst_cxr_scan_failed(GstElement* element, GstPad* srcpad, GstBuffer* buffer, const std::string& reason,
                                  GstCxrOnError mode);

/// Runs fn() and turns any exception into an element error (for start(), set_caps(), ...).
/// fn returns gboolean; the guard returns FALSE on exception.
template <typename Fn>
gboolean gst_cxr_guard_bool(GstElement* element, Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const std::exception& e) {
    gst_cxr_post_error(element, e.what());
  } catch (...) {
    gst_cxr_post_error(element, "unknown exception");
  }
  return FALSE;
}

/// Runs fn() (returning GstFlowReturn) for one scan; an exception becomes gst_cxr_scan_failed().
/// *failed is set when the scan failed and the caller should drop it.
template <typename Fn>
GstFlowReturn gst_cxr_guard_scan(GstElement* element, GstPad* srcpad, GstBuffer* buffer, GstCxrOnError mode,
                                 gboolean* failed, Fn&& fn) noexcept {
  *failed = FALSE;
  std::string reason;
  try {
    return fn();
  } catch (const std::exception& e) {
    reason = e.what();
  } catch (...) {
    reason = "unknown exception";
  }
  *failed = TRUE;
  try {
    return gst_cxr_scan_failed(element, srcpad, buffer, reason, mode);
  } catch (...) {
    return GST_FLOW_ERROR;
  }
}
