/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/base/gstbasesink.h>
G_DECLARE_FINAL_TYPE(GstCxrDicomSink, gst_cxr_dicom_sink, GST, CXR_DICOM_SINK, GstBaseSink)
GST_ELEMENT_REGISTER_DECLARE(cxrdicomsink);
