// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrresize
 *
 * Resize grey scans (GRAY8, GRAY16_LE). Properties (also the TOML keys):
 *
 * - `mode`: `shorter-side` (default; the shorter side becomes `size`, the longer
 *   int(size * long / short), as torchvision's `Resize(size)`), `stretch` (exactly
 *   `width` x `height`), `letterbox` (fit inside `width` x `height` keeping the aspect ratio,
 *   centred, padded with `fill`), `center-crop` (cover `width` x `height` keeping the aspect
 *   ratio, then crop the centre, as `Resize` + `CenterCrop`).
 * - `method`: `antialias` (default; Pillow's BILINEAR resample, what torchvision's `Resize`
 *   does to PIL images: bit-exact on 8-bit), `bilinear`, `area`, `nearest` (OpenCV).
 * - `size`, `width`, `height`, `fill`.
 *
 * In shorter-side mode the output size depends on the input's, so the source caps change
 * whenever a scan of another size arrives. A scan that already has the output size passes
 * through untouched.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=data/samples/nih/00000773_001.png ! pngdec ! videoconvert ! video/x-raw,format=GRAY8 ! cxrresize size=255 ! videoconvert ! pngenc ! filesink location=small.png
 * ]|
 */
#include "gstcxrresize.h"

#include <gst/video/video.h>

#include "cxr/error.hpp"
#include "cxr/preprocess/resize.hpp"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrguard.hpp"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_resize_debug);
#define GST_CAT_DEFAULT gst_cxr_resize_debug

enum { PROP_0, PROP_MODE, PROP_METHOD, PROP_SIZE, PROP_WIDTH, PROP_HEIGHT, PROP_FILL };
#define DEFAULT_MODE GST_CXR_RESIZE_MODE_SHORTER_SIDE
#define DEFAULT_METHOD GST_CXR_RESIZE_METHOD_ANTIALIAS
#define DEFAULT_SIZE 256
#define DEFAULT_WIDTH 256
#define DEFAULT_HEIGHT 256
#define DEFAULT_FILL 0

#define CXR_GRAY_CAPS GST_VIDEO_CAPS_MAKE("{ GRAY8, GRAY16_LE }")

typedef enum {
  GST_CXR_RESIZE_MODE_STRETCH = 0,
  GST_CXR_RESIZE_MODE_SHORTER_SIDE = 1,
  GST_CXR_RESIZE_MODE_LETTERBOX = 2,
  GST_CXR_RESIZE_MODE_CENTER_CROP = 3,
} GstCxrResizeMode;

typedef enum {
  GST_CXR_RESIZE_METHOD_ANTIALIAS = 0,
  GST_CXR_RESIZE_METHOD_BILINEAR = 1,
  GST_CXR_RESIZE_METHOD_AREA = 2,
  GST_CXR_RESIZE_METHOD_NEAREST = 3,
} GstCxrResizeMethod;

#define GST_TYPE_CXR_RESIZE_MODE (gst_cxr_resize_mode_get_type())
static GType gst_cxr_resize_mode_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_RESIZE_MODE_STRETCH, "Exactly width x height", "stretch"},
      {GST_CXR_RESIZE_MODE_SHORTER_SIDE, "Shorter side to size, aspect kept (torchvision Resize(size))",
       "shorter-side"},
      {GST_CXR_RESIZE_MODE_LETTERBOX, "Fit inside width x height, padded with fill", "letterbox"},
      {GST_CXR_RESIZE_MODE_CENTER_CROP, "Cover width x height, crop the centre", "center-crop"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstCxrResizeMode", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

#define GST_TYPE_CXR_RESIZE_METHOD (gst_cxr_resize_method_get_type())
static GType gst_cxr_resize_method_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_RESIZE_METHOD_ANTIALIAS, "Pillow's antialiased BILINEAR (torchvision Resize on PIL images)",
       "antialias"},
      {GST_CXR_RESIZE_METHOD_BILINEAR, "Bilinear without antialiasing (OpenCV)", "bilinear"},
      {GST_CXR_RESIZE_METHOD_AREA, "Pixel area relation (OpenCV)", "area"},
      {GST_CXR_RESIZE_METHOD_NEAREST, "Nearest neighbour (OpenCV)", "nearest"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstCxrResizeMethod", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

struct _GstCxrResize {
  GstVideoFilter parent;
  GstCxrResizeMode mode;
  GstCxrResizeMethod method;
  gint size;
  gint width;
  gint height;
  gint fill;
};

G_DEFINE_TYPE(GstCxrResize, gst_cxr_resize, GST_TYPE_VIDEO_FILTER)
GST_ELEMENT_REGISTER_DEFINE(cxrresize, "cxrresize", GST_RANK_NONE, gst_cxr_resize_get_type())

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));

static cxr::preprocess::ResizeMode to_engine_mode(GstCxrResizeMode mode) {
  switch (mode) {
    case GST_CXR_RESIZE_MODE_STRETCH: return cxr::preprocess::ResizeMode::Stretch;
    case GST_CXR_RESIZE_MODE_LETTERBOX: return cxr::preprocess::ResizeMode::Letterbox;
    case GST_CXR_RESIZE_MODE_CENTER_CROP: return cxr::preprocess::ResizeMode::CenterCrop;
    case GST_CXR_RESIZE_MODE_SHORTER_SIDE:
    default: return cxr::preprocess::ResizeMode::ShorterSide;
  }
}

static cxr::preprocess::ResizeMethod to_engine_method(GstCxrResizeMethod method) {
  switch (method) {
    case GST_CXR_RESIZE_METHOD_BILINEAR: return cxr::preprocess::ResizeMethod::Bilinear;
    case GST_CXR_RESIZE_METHOD_AREA: return cxr::preprocess::ResizeMethod::Area;
    case GST_CXR_RESIZE_METHOD_NEAREST: return cxr::preprocess::ResizeMethod::Nearest;
    case GST_CXR_RESIZE_METHOD_ANTIALIAS:
    default: return cxr::preprocess::ResizeMethod::Antialias;
  }
}

static cxr::preprocess::ResizeParams gst_cxr_resize_params(GstCxrResize* self) {
  cxr::preprocess::ResizeParams p;
  GST_OBJECT_LOCK(self);
  p.mode = to_engine_mode(self->mode);
  p.method = to_engine_method(self->method);
  p.size = self->size;
  p.width = self->width;
  p.height = self->height;
  p.fill = self->fill;
  GST_OBJECT_UNLOCK(self);
  return p;
}

static void gst_cxr_resize_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstCxrResize* self = GST_CXR_RESIZE(object);
  gboolean geometry = TRUE;
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODE: self->mode = static_cast<GstCxrResizeMode>(g_value_get_enum(value)); break;
    case PROP_METHOD:
      self->method = static_cast<GstCxrResizeMethod>(g_value_get_enum(value));
      geometry = FALSE;
      break;
    case PROP_SIZE: self->size = g_value_get_int(value); break;
    case PROP_WIDTH: self->width = g_value_get_int(value); break;
    case PROP_HEIGHT: self->height = g_value_get_int(value); break;
    case PROP_FILL:
      self->fill = g_value_get_int(value);
      geometry = FALSE;
      break;
    default:
      geometry = FALSE;
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK(self);
  // The output size may change: renegotiate before the next buffer.
  if (geometry) gst_base_transform_reconfigure_src(GST_BASE_TRANSFORM(self));
}

static void gst_cxr_resize_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstCxrResize* self = GST_CXR_RESIZE(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODE: g_value_set_enum(value, self->mode); break;
    case PROP_METHOD: g_value_set_enum(value, self->method); break;
    case PROP_SIZE: g_value_set_int(value, self->size); break;
    case PROP_WIDTH: g_value_set_int(value, self->width); break;
    case PROP_HEIGHT: g_value_set_int(value, self->height); break;
    case PROP_FILL: g_value_set_int(value, self->fill); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

// The output size for a fixed input size, or FALSE when the input size is not fixed.
static gboolean gst_cxr_resize_output_size(const cxr::preprocess::ResizeParams& p, const GstStructure* s, gint* w,
                                           gint* h) {
  gint in_w, in_h;
  if (p.mode != cxr::preprocess::ResizeMode::ShorterSide) {
    *w = p.width;
    *h = p.height;
    return TRUE;
  }
  if (!gst_structure_get_int(s, "width", &in_w) || !gst_structure_get_int(s, "height", &in_h)) return FALSE;
  const cv::Size out = cxr::preprocess::resized_size(cv::Size(in_w, in_h), p);
  *w = out.width;
  *h = out.height;
  return TRUE;
}

static GstCaps* gst_cxr_resize_transform_caps(GstBaseTransform* trans, GstPadDirection direction, GstCaps* caps,
                                              GstCaps* filter) {
  GstCxrResize* self = GST_CXR_RESIZE(trans);
  const cxr::preprocess::ResizeParams p = gst_cxr_resize_params(self);
  GstCaps* ret = gst_caps_new_empty();
  for (guint i = 0; i < gst_caps_get_size(caps); ++i) {
    GstStructure* s = gst_structure_copy(gst_caps_get_structure(caps, i));
    gint w = 0, h = 0;
    gboolean fixed = FALSE;
    if (direction == GST_PAD_SINK) {
      fixed = gst_cxr_guard_bool(GST_ELEMENT(self), [&] { return gst_cxr_resize_output_size(p, s, &w, &h); });
    }
    // Scans are square-pixel; the aspect ratio is the resize's business, not the caps'.
    gst_structure_remove_field(s, "pixel-aspect-ratio");
    if (fixed)
      gst_structure_set(s, "width", G_TYPE_INT, w, "height", G_TYPE_INT, h, nullptr);
    else
      gst_structure_set(s, "width", GST_TYPE_INT_RANGE, 1, G_MAXINT, "height", GST_TYPE_INT_RANGE, 1, G_MAXINT,
                        nullptr);
    ret = gst_caps_merge_structure(ret, s);
  }
  if (filter) {
    GstCaps* tmp = gst_caps_intersect_full(filter, ret, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(ret);
    ret = tmp;
  }
  GST_DEBUG_OBJECT(self, "%s %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT,
                   direction == GST_PAD_SINK ? "sink" : "src", caps, ret);
  return ret;
}

static GstCaps* gst_cxr_resize_fixate_caps(GstBaseTransform* trans, GstPadDirection direction, GstCaps* caps,
                                           GstCaps* othercaps) {
  GstCxrResize* self = GST_CXR_RESIZE(trans);
  othercaps = gst_caps_truncate(othercaps);
  othercaps = gst_caps_make_writable(othercaps);
  GstStructure* out = gst_caps_get_structure(othercaps, 0);
  if (direction == GST_PAD_SINK) {
    const cxr::preprocess::ResizeParams p = gst_cxr_resize_params(self);
    gint w = 0, h = 0;
    if (gst_cxr_guard_bool(GST_ELEMENT(self),
                           [&] { return gst_cxr_resize_output_size(p, gst_caps_get_structure(caps, 0), &w, &h); })) {
      gst_structure_fixate_field_nearest_int(out, "width", w);
      gst_structure_fixate_field_nearest_int(out, "height", h);
    }
  }
  return gst_caps_fixate(othercaps);
}

static gboolean gst_cxr_resize_set_info(GstVideoFilter* filter, GstCaps* incaps, GstVideoInfo* in_info,
                                        GstCaps* outcaps, GstVideoInfo* out_info) {
  GstCxrResize* self = GST_CXR_RESIZE(filter);
  if (GST_VIDEO_INFO_FORMAT(in_info) != GST_VIDEO_INFO_FORMAT(out_info)) {
    GST_ERROR_OBJECT(self, "input and output formats differ: %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT, incaps,
                     outcaps);
    return FALSE;
  }
  // Same size in and out is a copy for every mode: hand the buffer through.
  const gboolean same = GST_VIDEO_INFO_WIDTH(in_info) == GST_VIDEO_INFO_WIDTH(out_info) &&
                        GST_VIDEO_INFO_HEIGHT(in_info) == GST_VIDEO_INFO_HEIGHT(out_info);
  gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(filter), same);
  GST_DEBUG_OBJECT(self, "%dx%d -> %dx%d%s", GST_VIDEO_INFO_WIDTH(in_info), GST_VIDEO_INFO_HEIGHT(in_info),
                   GST_VIDEO_INFO_WIDTH(out_info), GST_VIDEO_INFO_HEIGHT(out_info), same ? " (passthrough)" : "");
  return TRUE;
}

static GstFlowReturn gst_cxr_resize_transform_frame(GstVideoFilter* filter, GstVideoFrame* in, GstVideoFrame* out) {
  GstCxrResize* self = GST_CXR_RESIZE(filter);
  cxr::preprocess::ResizeParams params = gst_cxr_resize_params(self);
  // The negotiated output size rules: shorter-side becomes a stretch to it (the same result).
  if (params.mode == cxr::preprocess::ResizeMode::ShorterSide) params.mode = cxr::preprocess::ResizeMode::Stretch;
  params.width = GST_VIDEO_FRAME_WIDTH(out);
  params.height = GST_VIDEO_FRAME_HEIGHT(out);

  gboolean failed;
  GstFlowReturn ret = gst_cxr_guard_scan(GST_ELEMENT(self), GST_BASE_TRANSFORM_SRC_PAD(self), in->buffer,
                                         GST_CXR_ON_ERROR_SKIP, &failed, [&] {
                                           cv::Mat src = gst_cxr_frame_to_mat(in);
                                           cv::Mat dst = gst_cxr_frame_to_mat(out);
                                           uchar* const data = dst.data;
                                           cxr::preprocess::resize(src, dst, params);
                                           if (dst.data != data)
                                             throw cxr::InvalidArgument("resize: output does not match the caps");
                                           return GST_FLOW_OK;
                                         });
  return failed && ret == GST_FLOW_OK ? GST_BASE_TRANSFORM_FLOW_DROPPED : ret;
}

static void gst_cxr_resize_class_init(GstCxrResizeClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);
  GstVideoFilterClass* vfilter_class = GST_VIDEO_FILTER_CLASS(klass);

  gobject_class->set_property = gst_cxr_resize_set_property;
  gobject_class->get_property = gst_cxr_resize_get_property;

  const auto flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(
      gobject_class, PROP_MODE,
      g_param_spec_enum("mode", "Mode", "How the output size follows from the input", GST_TYPE_CXR_RESIZE_MODE,
                        DEFAULT_MODE, flags));
  g_object_class_install_property(
      gobject_class, PROP_METHOD,
      g_param_spec_enum("method", "Method", "Interpolation", GST_TYPE_CXR_RESIZE_METHOD, DEFAULT_METHOD, flags));
  g_object_class_install_property(
      gobject_class, PROP_SIZE,
      g_param_spec_int("size", "Size", "Shorter side of the output (mode=shorter-side)", 1, 65535, DEFAULT_SIZE,
                       flags));
  g_object_class_install_property(
      gobject_class, PROP_WIDTH,
      g_param_spec_int("width", "Width", "Output width (stretch, letterbox, center-crop)", 1, 65535, DEFAULT_WIDTH,
                       flags));
  g_object_class_install_property(
      gobject_class, PROP_HEIGHT,
      g_param_spec_int("height", "Height", "Output height (stretch, letterbox, center-crop)", 1, 65535,
                       DEFAULT_HEIGHT, flags));
  g_object_class_install_property(
      gobject_class, PROP_FILL,
      g_param_spec_int("fill", "Fill", "Padding grey level (mode=letterbox; 0..255 or 0..65535)", 0, 65535,
                       DEFAULT_FILL, flags));

  gst_element_class_set_static_metadata(element_class, "Chest X-ray resize", "Filter/Converter/Video/Scaler",
                                        "Resize matching torchvision's Resize on PIL images", "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);

  trans_class->transform_caps = GST_DEBUG_FUNCPTR(gst_cxr_resize_transform_caps);
  trans_class->fixate_caps = GST_DEBUG_FUNCPTR(gst_cxr_resize_fixate_caps);
  vfilter_class->set_info = GST_DEBUG_FUNCPTR(gst_cxr_resize_set_info);
  vfilter_class->transform_frame = GST_DEBUG_FUNCPTR(gst_cxr_resize_transform_frame);
  GST_DEBUG_CATEGORY_INIT(gst_cxr_resize_debug, "cxrresize", 0, "Chest X-ray resize");
  gst_type_mark_as_plugin_api(GST_TYPE_CXR_RESIZE_MODE, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_CXR_RESIZE_METHOD, static_cast<GstPluginAPIFlags>(0));
}

static void gst_cxr_resize_init(GstCxrResize* self) {
  self->mode = DEFAULT_MODE;
  self->method = DEFAULT_METHOD;
  self->size = DEFAULT_SIZE;
  self->width = DEFAULT_WIDTH;
  self->height = DEFAULT_HEIGHT;
  self->fill = DEFAULT_FILL;
}
