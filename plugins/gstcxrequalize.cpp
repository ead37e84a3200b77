// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrequalize
 *
 * Histogram equalization of grey scans.
 *
 * - `mode=torchvision` (default): bit-exact with torchvision's `F.equalize` on 8-bit scans, as
 *   the study did; 16-bit scans get the same rule over 65536 levels.
 * - `mode=opencv`: OpenCV's `equalizeHist` (its rule over 65536 levels for 16-bit).
 * - `mode=clahe`: contrast-limited adaptive equalization (`clip-limit`, `tile-grid` tiles per
 *   side), 8- and 16-bit.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=data/samples/covid/006f3a8a.png ! pngdec ! videoconvert ! video/x-raw,format=GRAY8 ! cxrequalize mode=clahe clip-limit=2.0 tile-grid=8 ! videoconvert ! pngenc ! filesink location=eq.png
 * ]|
 */
#include "gstcxrequalize.h"

#include <gst/video/video.h>

#include "cxr/preprocess/equalize.hpp"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrguard.hpp"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_equalize_debug);
#define GST_CAT_DEFAULT gst_cxr_equalize_debug

enum { PROP_0, PROP_MODE, PROP_CLIP_LIMIT, PROP_TILE_GRID };
#define DEFAULT_MODE GST_CXR_EQUALIZE_MODE_TORCHVISION
#define DEFAULT_CLIP_LIMIT 2.0
#define DEFAULT_TILE_GRID 8

#define CXR_GRAY_CAPS GST_VIDEO_CAPS_MAKE("{ GRAY8, GRAY16_LE }")

typedef enum {
  GST_CXR_EQUALIZE_MODE_TORCHVISION = 0,
  GST_CXR_EQUALIZE_MODE_OPENCV = 1,
  GST_CXR_EQUALIZE_MODE_CLAHE = 2,
} GstCxrEqualizeMode;

#define GST_TYPE_CXR_EQUALIZE_MODE (gst_cxr_equalize_mode_get_type())
static GType gst_cxr_equalize_mode_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_EQUALIZE_MODE_TORCHVISION, "torchvision's F.equalize (bit-exact on 8-bit)", "torchvision"},
      {GST_CXR_EQUALIZE_MODE_OPENCV, "OpenCV's equalizeHist", "opencv"},
      {GST_CXR_EQUALIZE_MODE_CLAHE, "Contrast-limited adaptive histogram equalization", "clahe"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstCxrEqualizeMode", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

struct _GstCxrEqualize {
  GstVideoFilter parent;
  GstCxrEqualizeMode mode;
  gdouble clip_limit;
  gint tile_grid;
};

G_DEFINE_TYPE(GstCxrEqualize, gst_cxr_equalize, GST_TYPE_VIDEO_FILTER)
GST_ELEMENT_REGISTER_DEFINE(cxrequalize, "cxrequalize", GST_RANK_NONE, gst_cxr_equalize_get_type())

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));

static void gst_cxr_equalize_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstCxrEqualize* self = GST_CXR_EQUALIZE(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODE: self->mode = static_cast<GstCxrEqualizeMode>(g_value_get_enum(value)); break;
    case PROP_CLIP_LIMIT: self->clip_limit = g_value_get_double(value); break;
    case PROP_TILE_GRID: self->tile_grid = g_value_get_int(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_equalize_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstCxrEqualize* self = GST_CXR_EQUALIZE(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODE: g_value_set_enum(value, self->mode); break;
    case PROP_CLIP_LIMIT: g_value_set_double(value, self->clip_limit); break;
    case PROP_TILE_GRID: g_value_set_int(value, self->tile_grid); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static cxr::preprocess::EqualizeMode to_engine_mode(GstCxrEqualizeMode mode) {
  switch (mode) {
    case GST_CXR_EQUALIZE_MODE_OPENCV: return cxr::preprocess::EqualizeMode::OpenCV;
    case GST_CXR_EQUALIZE_MODE_CLAHE: return cxr::preprocess::EqualizeMode::Clahe;
    case GST_CXR_EQUALIZE_MODE_TORCHVISION:
    default: return cxr::preprocess::EqualizeMode::Torchvision;
  }
}

// In place: equalization is a per-pixel table lookup, so the frame needs no second buffer.
static GstFlowReturn gst_cxr_equalize_transform_frame_ip(GstVideoFilter* filter, GstVideoFrame* frame) {
  GstCxrEqualize* self = GST_CXR_EQUALIZE(filter);
  cxr::preprocess::EqualizeParams params;
  GST_OBJECT_LOCK(self);
  params.mode = to_engine_mode(self->mode);
  params.clip_limit = self->clip_limit;
  params.tile_grid = self->tile_grid;
  GST_OBJECT_UNLOCK(self);

  gboolean failed;
  GstFlowReturn ret = gst_cxr_guard_scan(GST_ELEMENT(self), GST_BASE_TRANSFORM_SRC_PAD(self), frame->buffer,
                                         GST_CXR_ON_ERROR_SKIP, &failed, [&] {
                                           cv::Mat mat = gst_cxr_frame_to_mat(frame);
                                           cxr::preprocess::equalize(mat, mat, params);
                                           return GST_FLOW_OK;
                                         });
  return failed && ret == GST_FLOW_OK ? GST_BASE_TRANSFORM_FLOW_DROPPED : ret;
}

static void gst_cxr_equalize_class_init(GstCxrEqualizeClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstVideoFilterClass* vfilter_class = GST_VIDEO_FILTER_CLASS(klass);

  gobject_class->set_property = gst_cxr_equalize_set_property;
  gobject_class->get_property = gst_cxr_equalize_get_property;

  const auto flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(
      gobject_class, PROP_MODE,
      g_param_spec_enum("mode", "Mode", "Equalization method", GST_TYPE_CXR_EQUALIZE_MODE, DEFAULT_MODE, flags));
  g_object_class_install_property(
      gobject_class, PROP_CLIP_LIMIT,
      g_param_spec_double("clip-limit", "Clip limit", "CLAHE contrast limit (mode=clahe)", 0.01, 1000.0,
                          DEFAULT_CLIP_LIMIT, flags));
  g_object_class_install_property(
      gobject_class, PROP_TILE_GRID,
      g_param_spec_int("tile-grid", "Tile grid", "CLAHE tiles per side (mode=clahe)", 1, 256, DEFAULT_TILE_GRID,
                       flags));

  gst_element_class_set_static_metadata(element_class, "Chest X-ray histogram equalization", "Filter/Effect/Video",
                                        "Histogram equalization (torchvision, OpenCV, CLAHE)", "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);

  vfilter_class->transform_frame_ip = GST_DEBUG_FUNCPTR(gst_cxr_equalize_transform_frame_ip);
  GST_DEBUG_CATEGORY_INIT(gst_cxr_equalize_debug, "cxrequalize", 0, "Chest X-ray histogram equalization");
  gst_type_mark_as_plugin_api(GST_TYPE_CXR_EQUALIZE_MODE, static_cast<GstPluginAPIFlags>(0));
}

static void gst_cxr_equalize_init(GstCxrEqualize* self) {
  self->mode = DEFAULT_MODE;
  self->clip_limit = DEFAULT_CLIP_LIMIT;
  self->tile_grid = DEFAULT_TILE_GRID;
}
