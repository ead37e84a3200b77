/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/base/gstpushsrc.h>
G_DECLARE_FINAL_TYPE(GstCxrDicomSrc, gst_cxr_dicom_src, GST, CXR_DICOM_SRC, GstPushSrc)
GST_ELEMENT_REGISTER_DECLARE(cxrdicomsrc);
