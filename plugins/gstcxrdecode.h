/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/gst.h>
G_DECLARE_FINAL_TYPE(GstCxrDecode, gst_cxr_decode, GST, CXR_DECODE, GstElement)
GST_ELEMENT_REGISTER_DECLARE(cxrdecode);
