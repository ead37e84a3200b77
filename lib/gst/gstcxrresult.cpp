// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/gstcxrresult.hpp"

GstCxrResultMeta* gst_cxr_buffer_add_prediction(GstBuffer* buf, const GstCxrResultModel& model,
                                                const cxr::models::Prediction& p) {
  const guint n = static_cast<guint>(p.probabilities.size());
  GstCxrResultMeta* meta = gst_buffer_add_cxr_result_meta(buf, n);
  gst_cxr_meta_set_string(&meta->model, model.id.c_str());
  meta->multilabel = model.multilabel;
  for (guint c = 0; c < n; ++c) {
    meta->class_quarks[c] = model.classes[c];
    meta->logits[c] = p.logits[c];
    meta->probabilities[c] = p.probabilities[c];
    meta->decisions[c] = p.decisions[c];
  }
  if (!p.embedding.empty()) {
    gst_cxr_result_meta_set_embedding(meta, p.embedding.data(), static_cast<guint>(p.embedding.size()));
  }
  return meta;
}
