/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/base/gstpushsrc.h>
G_DECLARE_FINAL_TYPE(GstCxrScanSrc, gst_cxr_scan_src, GST, CXR_SCAN_SRC, GstPushSrc)
GST_ELEMENT_REGISTER_DECLARE(cxrscansrc);
