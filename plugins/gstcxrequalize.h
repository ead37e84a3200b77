/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/video/gstvideofilter.h>
G_DECLARE_FINAL_TYPE(GstCxrEqualize, gst_cxr_equalize, GST, CXR_EQUALIZE, GstVideoFilter)
GST_ELEMENT_REGISTER_DECLARE(cxrequalize);
