/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/base/gstbasesink.h>
G_DECLARE_FINAL_TYPE(GstCxrResultSink, gst_cxr_result_sink, GST, CXR_RESULT_SINK, GstBaseSink)
GST_ELEMENT_REGISTER_DECLARE(cxrresultsink);
