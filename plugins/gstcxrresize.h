/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/video/gstvideofilter.h>
G_DECLARE_FINAL_TYPE(GstCxrResize, gst_cxr_resize, GST, CXR_RESIZE, GstVideoFilter)
GST_ELEMENT_REGISTER_DECLARE(cxrresize);
