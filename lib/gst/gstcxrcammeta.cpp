// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/gstcxrcammeta.h"

#include <cstring>

GType gst_cxr_cam_meta_api_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    // No tags: a map of the frame's geometry would need scaling support before a resizing
    // element may keep it; copies keep it.
    static const gchar *tags[] = {NULL};
    // This support library is linked into the plugin and into programs that load it: the
    // second copy must reuse the first one's registration.
    GType t = g_type_from_name("GstCxrCamMetaAPI");
    if (!t) t = gst_meta_api_type_register("GstCxrCamMetaAPI", tags);
    g_once_init_leave(&type, t);
  }
  return type;
}

static gboolean cam_meta_init(GstMeta *meta, gpointer, GstBuffer *) {
  auto *m = reinterpret_cast<GstCxrCamMeta *>(meta);
  m->width = m->height = 0;
  m->data = nullptr;
  m->target = -1;
  m->target_name = 0;
  m->model = m->method = m->layer = nullptr;
  m->raw_min = m->raw_max = 0.0f;
  return TRUE;
}

static void cam_meta_free(GstMeta *meta, GstBuffer *) {
  auto *m = reinterpret_cast<GstCxrCamMeta *>(meta);
  g_free(m->data);
  g_free(m->model);
  g_free(m->method);
  g_free(m->layer);
}

static gboolean cam_meta_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark type, gpointer) {
  // Only copies: a transform that changes the pixels' geometry would misplace the map.
  if (!GST_META_TRANSFORM_IS_COPY(type)) return FALSE;
  auto *src = reinterpret_cast<GstCxrCamMeta *>(meta);
  GstCxrCamMeta *dst = gst_buffer_add_cxr_cam_meta(dest, src->width, src->height, src->data);
  if (!dst) return FALSE;
  dst->target = src->target;
  dst->target_name = src->target_name;
  dst->model = g_strdup(src->model);
  dst->method = g_strdup(src->method);
  dst->layer = g_strdup(src->layer);
  dst->raw_min = src->raw_min;
  dst->raw_max = src->raw_max;
  return TRUE;
}

const GstMetaInfo *gst_cxr_cam_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    const GstMetaInfo *mi = gst_meta_get_info("GstCxrCamMeta");
    if (!mi) mi = gst_meta_register(GST_CXR_CAM_META_API_TYPE, "GstCxrCamMeta", sizeof(GstCxrCamMeta), cam_meta_init,
                                    cam_meta_free, cam_meta_transform);
    g_once_init_leave(&info, mi);
  }
  return info;
}

GstCxrCamMeta *gst_buffer_add_cxr_cam_meta(GstBuffer *buffer, guint width, guint height, const gfloat *data) {
  auto *m = reinterpret_cast<GstCxrCamMeta *>(gst_buffer_add_meta(buffer, GST_CXR_CAM_META_INFO, nullptr));
  if (!m) return nullptr;
  const gsize n = static_cast<gsize>(width) * height;
  m->width = width;
  m->height = height;
  m->data = g_new0(gfloat, n ? n : 1);
  if (data && n) std::memcpy(m->data, data, n * sizeof(gfloat));
  return m;
}
