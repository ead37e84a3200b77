/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/video/gstvideofilter.h>
G_DECLARE_FINAL_TYPE(GstCxrAugment, gst_cxr_augment, GST, CXR_AUGMENT, GstVideoFilter)
GST_ELEMENT_REGISTER_DECLARE(cxraugment);
