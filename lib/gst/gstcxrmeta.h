/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Buffer metas of gst-cxr: where a scan came from (GstCxrScanMeta) and what a model said about it
 * (GstCxrResultMeta, shaped like GStreamer 1.24's GstAnalyticsClsMtd: N confidences + N names). */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

typedef enum {
  GST_CXR_SPLIT_NONE = 0,
  GST_CXR_SPLIT_TRAIN = 1,
  GST_CXR_SPLIT_VAL = 2,
  GST_CXR_SPLIT_TEST = 3,
} GstCxrSplit;

const gchar *gst_cxr_split_to_string (GstCxrSplit split);
GstCxrSplit gst_cxr_split_from_string (const gchar * s);

typedef struct {
  GstMeta meta;

  gchar *path;          /* source path or URI */
  guint64 index;        /* position in the source's scan list, stable across epochs */
  guint epoch;          /* 0-based epoch of a training stream, 0 otherwise */
  GstCxrSplit split;
  gint label;           /* class index, -1 when none (unlabelled or multi-label) */
  guint n_labels;       /* length of the multi-hot vector, 0 for single-label */
  guint8 *labels;       /* multi-hot vector (0/1) */
  gchar *patient_id;
  gchar *study_uid;
  gchar *series_uid;
  gchar *sop_uid;
  guint bits_stored;    /* original bit depth, 0 when unknown */
  gchar *photometric;   /* original photometric interpretation / colour type, e.g. MONOCHROME1, RGB */
} GstCxrScanMeta;

GType gst_cxr_scan_meta_api_get_type (void);
const GstMetaInfo *gst_cxr_scan_meta_get_info (void);
#define GST_CXR_SCAN_META_API_TYPE (gst_cxr_scan_meta_api_get_type ())
#define GST_CXR_SCAN_META_INFO (gst_cxr_scan_meta_get_info ())
#define gst_buffer_get_cxr_scan_meta(b) \
  ((GstCxrScanMeta *) gst_buffer_get_meta ((b), GST_CXR_SCAN_META_API_TYPE))

/* Adds an empty scan meta (label -1, split NONE). */
GstCxrScanMeta *gst_buffer_add_cxr_scan_meta (GstBuffer * buffer);
/* Replaces *field (a gchar* of the meta) by a copy of value (NULL allowed). */
void gst_cxr_meta_set_string (gchar ** field, const gchar * value);
void gst_cxr_scan_meta_set_labels (GstCxrScanMeta * meta, const guint8 * labels, guint n);
/* Copies every field of src into dst (dst's old strings are freed). */
void gst_cxr_scan_meta_copy_into (GstCxrScanMeta * dst, const GstCxrScanMeta * src);

typedef struct {
  GstMeta meta;

  gchar *model;         /* model id (card name / architecture) */
  gboolean multilabel;
  guint n_classes;
  GQuark *class_quarks; /* class names */
  gfloat *logits;
  gfloat *probabilities;
  guint8 *decisions;    /* multi-class: one-hot argmax; multi-label: thresholded */
  guint n_embedding;
  gfloat *embedding;    /* penultimate features, optional */
} GstCxrResultMeta;

GType gst_cxr_result_meta_api_get_type (void);
const GstMetaInfo *gst_cxr_result_meta_get_info (void);
#define GST_CXR_RESULT_META_API_TYPE (gst_cxr_result_meta_api_get_type ())
#define GST_CXR_RESULT_META_INFO (gst_cxr_result_meta_get_info ())
#define gst_buffer_get_cxr_result_meta(b) \
  ((GstCxrResultMeta *) gst_buffer_get_meta ((b), GST_CXR_RESULT_META_API_TYPE))

/* Adds a result meta with n_classes zeroed entries (names unset). */
GstCxrResultMeta *gst_buffer_add_cxr_result_meta (GstBuffer * buffer, guint n_classes);
void gst_cxr_result_meta_set_embedding (GstCxrResultMeta * meta, const gfloat * values, guint n);

G_END_DECLS
