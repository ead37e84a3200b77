/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/video/gstvideofilter.h>
G_DECLARE_FINAL_TYPE(GstCxrGradcam, gst_cxr_gradcam, GST, CXR_GRADCAM, GstVideoFilter)
GST_ELEMENT_REGISTER_DECLARE(cxrgradcam);
