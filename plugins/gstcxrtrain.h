/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <gst/base/gstbasesink.h>
G_DECLARE_FINAL_TYPE(GstCxrTrain, gst_cxr_train, GST, CXR_TRAIN, GstBaseSink)
GST_ELEMENT_REGISTER_DECLARE(cxrtrain);
