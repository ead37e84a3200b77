// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// A Prediction as a GstCxrResultMeta: the one place that fills the meta (cxrinfer, cxrgradcam).
#include <gst/gst.h>

#include <string>
#include <vector>

#include "cxr/models/predictor.hpp"
#include "gst/gstcxrmeta.h"

/// The model a result comes from: its name, task and class names (as quarks, made once).
struct GstCxrResultModel {
  std::string id;
  bool multilabel = false;
  std::vector<GQuark> classes;
};

/// Adds a GstCxrResultMeta holding `p` (logits, probabilities, decisions and the embedding when
/// it has one) to the writable buffer `buf`.
GstCxrResultMeta* gst_cxr_buffer_add_prediction(GstBuffer* buf, const GstCxrResultModel& model,
                                                const cxr::models::Prediction& p);
