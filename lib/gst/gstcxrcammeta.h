/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GstCxrCamMeta: a class activation map (Grad-CAM heatmap) of the frame it rides on, for sinks
 * that store or send it (DICOM Secondary Capture, files). A buffer carries one per explained class. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

typedef struct {
  GstMeta meta;

  guint width;          /* of the map: the frame's size when attached */
  guint height;
  gfloat *data;         /* width * height values, row-major, 0..1 after the element's scaling */
  gint target;          /* explained class index */
  GQuark target_name;   /* its name (0 when unknown) */
  gchar *model;         /* model id */
  gchar *method;        /* "gradcam" or "gradcam++" */
  gchar *layer;         /* target layer the map was taken at */
  gfloat raw_min;       /* range of the unscaled map (Grad-CAM units) */
  gfloat raw_max;
} GstCxrCamMeta;

GType gst_cxr_cam_meta_api_get_type (void);
const GstMetaInfo *gst_cxr_cam_meta_get_info (void);
#define GST_CXR_CAM_META_API_TYPE (gst_cxr_cam_meta_api_get_type ())
#define GST_CXR_CAM_META_INFO (gst_cxr_cam_meta_get_info ())
/* The first CAM meta; iterate with gst_buffer_iterate_meta_filtered for all of them. */
#define gst_buffer_get_cxr_cam_meta(b) \
  ((GstCxrCamMeta *) gst_buffer_get_meta ((b), GST_CXR_CAM_META_API_TYPE))

/* Adds a CAM meta holding a copy of width * height floats (data may be NULL: zeros). */
GstCxrCamMeta *gst_buffer_add_cxr_cam_meta (GstBuffer * buffer, guint width, guint height, const gfloat * data);

G_END_DECLS
