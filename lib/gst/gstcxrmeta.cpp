// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/gstcxrmeta.h"

#include <cstring>

#include "cxr/data/dataset.hpp"

// Elements pass splits between the meta and lib/cxr by value.
static_assert(GST_CXR_SPLIT_NONE == static_cast<int>(cxr::data::Split::None) &&
                  GST_CXR_SPLIT_TRAIN == static_cast<int>(cxr::data::Split::Train) &&
                  GST_CXR_SPLIT_VAL == static_cast<int>(cxr::data::Split::Val) &&
                  GST_CXR_SPLIT_TEST == static_cast<int>(cxr::data::Split::Test),
              "GstCxrSplit mirrors cxr::data::Split");

const gchar *gst_cxr_split_to_string(GstCxrSplit split) {
  switch (split) {
    case GST_CXR_SPLIT_TRAIN: return "train";
    case GST_CXR_SPLIT_VAL: return "val";
    case GST_CXR_SPLIT_TEST: return "test";
    default: return "none";
  }
}

GstCxrSplit gst_cxr_split_from_string(const gchar *s) {
  if (!s) return GST_CXR_SPLIT_NONE;
  if (!g_ascii_strcasecmp(s, "train")) return GST_CXR_SPLIT_TRAIN;
  if (!g_ascii_strcasecmp(s, "val") || !g_ascii_strcasecmp(s, "valid") || !g_ascii_strcasecmp(s, "validation"))
    return GST_CXR_SPLIT_VAL;
  if (!g_ascii_strcasecmp(s, "test")) return GST_CXR_SPLIT_TEST;
  return GST_CXR_SPLIT_NONE;
}

void gst_cxr_meta_set_string(gchar **field, const gchar *value) {
  g_free(*field);
  *field = g_strdup(value);
}

/* ---- scan meta ---------------------------------------------------------------------------- */

GType gst_cxr_scan_meta_api_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    // No tags: the meta describes the scan, not its pixels, so every transform keeps it.
    static const gchar *tags[] = {NULL};
    // This support library is linked into the plugin and into programs that load it: the
    // second copy must reuse the first one's registration.
    GType t = g_type_from_name("GstCxrScanMetaAPI");
    if (!t) t = gst_meta_api_type_register("GstCxrScanMetaAPI", tags);
    g_once_init_leave(&type, t);
  }
  return type;
}

static gboolean scan_meta_init(GstMeta *meta, gpointer, GstBuffer *) {
  auto *m = reinterpret_cast<GstCxrScanMeta *>(meta);
  m->path = nullptr;
  m->index = 0;
  m->epoch = 0;
  m->split = GST_CXR_SPLIT_NONE;
  m->label = -1;
  m->n_labels = 0;
  m->labels = nullptr;
  m->patient_id = m->study_uid = m->series_uid = m->sop_uid = nullptr;
  m->bits_stored = 0;
  m->photometric = nullptr;
  return TRUE;
}

static void scan_meta_free(GstMeta *meta, GstBuffer *) {
  auto *m = reinterpret_cast<GstCxrScanMeta *>(meta);
  g_free(m->path);
  g_free(m->labels);
  g_free(m->patient_id);
  g_free(m->study_uid);
  g_free(m->series_uid);
  g_free(m->sop_uid);
  g_free(m->photometric);
}

void gst_cxr_scan_meta_set_labels(GstCxrScanMeta *meta, const guint8 *labels, guint n) {
  g_free(meta->labels);
  meta->labels = n ? static_cast<guint8 *>(g_memdup2(labels, n)) : nullptr;
  meta->n_labels = n;
}

void gst_cxr_scan_meta_copy_into(GstCxrScanMeta *dst, const GstCxrScanMeta *src) {
  gst_cxr_meta_set_string(&dst->path, src->path);
  dst->index = src->index;
  dst->epoch = src->epoch;
  dst->split = src->split;
  dst->label = src->label;
  gst_cxr_scan_meta_set_labels(dst, src->labels, src->n_labels);
  gst_cxr_meta_set_string(&dst->patient_id, src->patient_id);
  gst_cxr_meta_set_string(&dst->study_uid, src->study_uid);
  gst_cxr_meta_set_string(&dst->series_uid, src->series_uid);
  gst_cxr_meta_set_string(&dst->sop_uid, src->sop_uid);
  dst->bits_stored = src->bits_stored;
  gst_cxr_meta_set_string(&dst->photometric, src->photometric);
}

static gboolean scan_meta_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark, gpointer) {
  // Valid for copies and for any pixel transform (scaling, blurring): the scan is the same.
  auto *src = reinterpret_cast<GstCxrScanMeta *>(meta);
  GstCxrScanMeta *dst = gst_buffer_get_cxr_scan_meta(dest);
  if (!dst) dst = gst_buffer_add_cxr_scan_meta(dest);
  if (!dst) return FALSE;
  gst_cxr_scan_meta_copy_into(dst, src);
  return TRUE;
}

const GstMetaInfo *gst_cxr_scan_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    const GstMetaInfo *mi = gst_meta_get_info("GstCxrScanMeta");
    if (!mi) mi = gst_meta_register(GST_CXR_SCAN_META_API_TYPE, "GstCxrScanMeta", sizeof(GstCxrScanMeta),
                                              scan_meta_init, scan_meta_free, scan_meta_transform);
    g_once_init_leave(&info, mi);
  }
  return info;
}

GstCxrScanMeta *gst_buffer_add_cxr_scan_meta(GstBuffer *buffer) {
  return reinterpret_cast<GstCxrScanMeta *>(gst_buffer_add_meta(buffer, GST_CXR_SCAN_META_INFO, nullptr));
}

/* ---- result meta -------------------------------------------------------------------------- */

GType gst_cxr_result_meta_api_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    static const gchar *tags[] = {NULL};
    // This support library is linked into the plugin and into programs that load it: the
    // second copy must reuse the first one's registration.
    GType t = g_type_from_name("GstCxrResultMetaAPI");
    if (!t) t = gst_meta_api_type_register("GstCxrResultMetaAPI", tags);
    g_once_init_leave(&type, t);
  }
  return type;
}

static gboolean result_meta_init(GstMeta *meta, gpointer, GstBuffer *) {
  auto *m = reinterpret_cast<GstCxrResultMeta *>(meta);
  m->model = nullptr;
  m->multilabel = FALSE;
  m->n_classes = 0;
  m->class_quarks = nullptr;
  m->logits = m->probabilities = nullptr;
  m->decisions = nullptr;
  m->n_embedding = 0;
  m->embedding = nullptr;
  return TRUE;
}

static void result_meta_free(GstMeta *meta, GstBuffer *) {
  auto *m = reinterpret_cast<GstCxrResultMeta *>(meta);
  g_free(m->model);
  g_free(m->class_quarks);
  g_free(m->logits);
  g_free(m->probabilities);
  g_free(m->decisions);
  g_free(m->embedding);
}

static void result_meta_alloc(GstCxrResultMeta *m, guint n) {
  g_free(m->class_quarks);
  g_free(m->logits);
  g_free(m->probabilities);
  g_free(m->decisions);
  m->n_classes = n;
  m->class_quarks = g_new0(GQuark, n ? n : 1);
  m->logits = g_new0(gfloat, n ? n : 1);
  m->probabilities = g_new0(gfloat, n ? n : 1);
  m->decisions = g_new0(guint8, n ? n : 1);
}

void gst_cxr_result_meta_set_embedding(GstCxrResultMeta *meta, const gfloat *values, guint n) {
  g_free(meta->embedding);
  meta->embedding = n ? static_cast<gfloat *>(g_memdup2(values, n * sizeof(gfloat))) : nullptr;
  meta->n_embedding = n;
}

static gboolean result_meta_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark, gpointer) {
  auto *src = reinterpret_cast<GstCxrResultMeta *>(meta);
  GstCxrResultMeta *dst = gst_buffer_add_cxr_result_meta(dest, src->n_classes);
  if (!dst) return FALSE;
  gst_cxr_meta_set_string(&dst->model, src->model);
  dst->multilabel = src->multilabel;
  const gsize n = src->n_classes;
  std::memcpy(dst->class_quarks, src->class_quarks, n * sizeof(GQuark));
  std::memcpy(dst->logits, src->logits, n * sizeof(gfloat));
  std::memcpy(dst->probabilities, src->probabilities, n * sizeof(gfloat));
  std::memcpy(dst->decisions, src->decisions, n);
  gst_cxr_result_meta_set_embedding(dst, src->embedding, src->n_embedding);
  return TRUE;
}

const GstMetaInfo *gst_cxr_result_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    const GstMetaInfo *mi = gst_meta_get_info("GstCxrResultMeta");
    if (!mi) mi = gst_meta_register(GST_CXR_RESULT_META_API_TYPE, "GstCxrResultMeta",
                                              sizeof(GstCxrResultMeta), result_meta_init, result_meta_free,
                                              result_meta_transform);
    g_once_init_leave(&info, mi);
  }
  return info;
}

GstCxrResultMeta *gst_buffer_add_cxr_result_meta(GstBuffer *buffer, guint n_classes) {
  auto *m = reinterpret_cast<GstCxrResultMeta *>(gst_buffer_add_meta(buffer, GST_CXR_RESULT_META_INFO, nullptr));
  if (m) result_meta_alloc(m, n_classes);
  return m;
}
