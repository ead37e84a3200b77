/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/video/gstvideofilter.h>
G_DECLARE_FINAL_TYPE(GstCxrBlur, gst_cxr_blur, GST, CXR_BLUR, GstVideoFilter)
GST_ELEMENT_REGISTER_DECLARE(cxrblur);
