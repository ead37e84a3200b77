/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/gst.h>
G_DECLARE_FINAL_TYPE(GstCxrInfer, gst_cxr_infer, GST, CXR_INFER, GstElement)
GST_ELEMENT_REGISTER_DECLARE(cxrinfer);
