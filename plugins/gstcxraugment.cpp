// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxraugment
 *
 * The study's training augmentation on grey scans, as torchvision applies it to PIL images and
 * in its order: `RandomHorizontalFlip`, `RandomAdjustSharpness(sharpness-factor)`,
 * `RandomAutocontrast`, each drawn with its own probability. 8-bit results are bit-exact with
 * Pillow's operations; 16-bit scans get the same rules over 0..65535.
 *
 * The draws for a scan depend only on (`seed`, epoch, scan index) of its GstCxrScanMeta (a
 * counter-based hash), so a run reproduces whatever the threading or the order of arrival.
 * Only buffers whose scan meta says split=train are augmented, unless `always=true`; a buffer
 * without a scan meta uses its offset (or its arrival count) as index and epoch 0.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=data/samples/covid/006f3a8a.png ! pngdec ! videoconvert ! video/x-raw,format=GRAY8 ! cxraugment always=true seed=42 ! videoconvert ! pngenc ! filesink location=aug.png
 * ]|
 */
#include "gstcxraugment.h"

#include <gst/video/video.h>

#include "cxr/augment/augment.hpp"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrguard.hpp"
#include "gst/gstcxrmeta.h"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_augment_debug);
#define GST_CAT_DEFAULT gst_cxr_augment_debug

enum {
  PROP_0,
  PROP_SEED,
  PROP_FLIP_PROBABILITY,
  PROP_SHARPNESS_PROBABILITY,
  PROP_SHARPNESS_FACTOR,
  PROP_AUTOCONTRAST_PROBABILITY,
  PROP_ALWAYS,
};
#define DEFAULT_SEED 0
#define DEFAULT_FLIP_PROBABILITY 0.5
#define DEFAULT_SHARPNESS_PROBABILITY 0.5
#define DEFAULT_SHARPNESS_FACTOR 2.0
#define DEFAULT_AUTOCONTRAST_PROBABILITY 0.5
#define DEFAULT_ALWAYS FALSE

#define CXR_GRAY_CAPS GST_VIDEO_CAPS_MAKE("{ GRAY8, GRAY16_LE }")

struct _GstCxrAugment {
  GstVideoFilter parent;
  guint64 seed;
  gdouble flip_probability;
  gdouble sharpness_probability;
  gdouble sharpness_factor;
  gdouble autocontrast_probability;
  gboolean always;
  guint64 count;  // buffers seen, the index of buffers without scan meta or offset
};

G_DEFINE_TYPE(GstCxrAugment, gst_cxr_augment, GST_TYPE_VIDEO_FILTER)
GST_ELEMENT_REGISTER_DEFINE(cxraugment, "cxraugment", GST_RANK_NONE, gst_cxr_augment_get_type())

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));

static void gst_cxr_augment_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstCxrAugment* self = GST_CXR_AUGMENT(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_SEED: self->seed = g_value_get_uint64(value); break;
    case PROP_FLIP_PROBABILITY: self->flip_probability = g_value_get_double(value); break;
    case PROP_SHARPNESS_PROBABILITY: self->sharpness_probability = g_value_get_double(value); break;
    case PROP_SHARPNESS_FACTOR: self->sharpness_factor = g_value_get_double(value); break;
    case PROP_AUTOCONTRAST_PROBABILITY: self->autocontrast_probability = g_value_get_double(value); break;
    case PROP_ALWAYS: self->always = g_value_get_boolean(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_augment_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstCxrAugment* self = GST_CXR_AUGMENT(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_SEED: g_value_set_uint64(value, self->seed); break;
    case PROP_FLIP_PROBABILITY: g_value_set_double(value, self->flip_probability); break;
    case PROP_SHARPNESS_PROBABILITY: g_value_set_double(value, self->sharpness_probability); break;
    case PROP_SHARPNESS_FACTOR: g_value_set_double(value, self->sharpness_factor); break;
    case PROP_AUTOCONTRAST_PROBABILITY: g_value_set_double(value, self->autocontrast_probability); break;
    case PROP_ALWAYS: g_value_set_boolean(value, self->always); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static gboolean gst_cxr_augment_start(GstBaseTransform* trans) {
  GstCxrAugment* self = GST_CXR_AUGMENT(trans);
  GST_OBJECT_LOCK(self);
  self->count = 0;
  GST_OBJECT_UNLOCK(self);
  return TRUE;
}

static GstFlowReturn gst_cxr_augment_transform_frame(GstVideoFilter* filter, GstVideoFrame* in, GstVideoFrame* out) {
  GstCxrAugment* self = GST_CXR_AUGMENT(filter);
  cxr::augment::AugmentParams params;
  gboolean always;
  guint64 count;
  GST_OBJECT_LOCK(self);
  params.seed = self->seed;
  params.flip_probability = self->flip_probability;
  params.sharpness_probability = self->sharpness_probability;
  params.sharpness_factor = self->sharpness_factor;
  params.autocontrast_probability = self->autocontrast_probability;
  always = self->always;
  count = self->count++;
  GST_OBJECT_UNLOCK(self);

  const GstCxrScanMeta* meta = gst_buffer_get_cxr_scan_meta(in->buffer);
  const gboolean train = meta && meta->split == GST_CXR_SPLIT_TRAIN;
  guint64 epoch = 0, index = count;
  if (meta) {
    epoch = meta->epoch;
    index = meta->index;
  } else if (GST_BUFFER_OFFSET_IS_VALID(in->buffer)) {
    index = GST_BUFFER_OFFSET(in->buffer);
  }
  cxr::augment::AugmentDraw ops;
  if (train || always) ops = cxr::augment::draw(params, epoch, index);
  GST_LOG_OBJECT(self, "scan %" G_GUINT64_FORMAT " epoch %" G_GUINT64_FORMAT "%s: flip %d sharpness %d autocontrast %d",
                 index, epoch, train || always ? "" : " (not augmented)", ops.flip, ops.sharpness, ops.autocontrast);

  gboolean failed;
  GstFlowReturn ret = gst_cxr_guard_scan(GST_ELEMENT(self), GST_BASE_TRANSFORM_SRC_PAD(self), in->buffer,
                                         GST_CXR_ON_ERROR_SKIP, &failed, [&] {
                                           cv::Mat src = gst_cxr_frame_to_mat(in);
                                           cv::Mat dst = gst_cxr_frame_to_mat(out);
                                           cxr::augment::apply(src, dst, params, ops);
                                           return GST_FLOW_OK;
                                         });
  return failed && ret == GST_FLOW_OK ? GST_BASE_TRANSFORM_FLOW_DROPPED : ret;
}

static void gst_cxr_augment_class_init(GstCxrAugmentClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);
  GstVideoFilterClass* vfilter_class = GST_VIDEO_FILTER_CLASS(klass);

  gobject_class->set_property = gst_cxr_augment_set_property;
  gobject_class->get_property = gst_cxr_augment_get_property;

  const auto flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(
      gobject_class, PROP_SEED,
      g_param_spec_uint64("seed", "Seed", "Seed of the per-scan draws (with epoch and scan index)", 0, G_MAXUINT64,
                          DEFAULT_SEED, flags));
  g_object_class_install_property(
      gobject_class, PROP_FLIP_PROBABILITY,
      g_param_spec_double("flip-probability", "Flip probability", "Probability of a horizontal flip", 0.0, 1.0,
                          DEFAULT_FLIP_PROBABILITY, flags));
  g_object_class_install_property(
      gobject_class, PROP_SHARPNESS_PROBABILITY,
      g_param_spec_double("sharpness-probability", "Sharpness probability",
                          "Probability of adjusting the sharpness", 0.0, 1.0, DEFAULT_SHARPNESS_PROBABILITY, flags));
  g_object_class_install_property(
      gobject_class, PROP_SHARPNESS_FACTOR,
      g_param_spec_double("sharpness-factor", "Sharpness factor",
                          "ImageEnhance.Sharpness factor (0 = smoothed, 1 = unchanged, 2 = sharpened)", 0.0, 100.0,
                          DEFAULT_SHARPNESS_FACTOR, flags));
  g_object_class_install_property(
      gobject_class, PROP_AUTOCONTRAST_PROBABILITY,
      g_param_spec_double("autocontrast-probability", "Autocontrast probability", "Probability of autocontrast", 0.0,
                          1.0, DEFAULT_AUTOCONTRAST_PROBABILITY, flags));
  g_object_class_install_property(
      gobject_class, PROP_ALWAYS,
      g_param_spec_boolean("always", "Always", "Augment every buffer, not only those of the train split",
                           DEFAULT_ALWAYS, flags));

  gst_element_class_set_static_metadata(element_class, "Chest X-ray augmentation", "Filter/Effect/Video",
                                        "Seeded random flip, sharpness and autocontrast of training scans",
                                        "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);

  trans_class->start = GST_DEBUG_FUNCPTR(gst_cxr_augment_start);
  vfilter_class->transform_frame = GST_DEBUG_FUNCPTR(gst_cxr_augment_transform_frame);
  GST_DEBUG_CATEGORY_INIT(gst_cxr_augment_debug, "cxraugment", 0, "Chest X-ray augmentation");
}

static void gst_cxr_augment_init(GstCxrAugment* self) {
  self->seed = DEFAULT_SEED;
  self->flip_probability = DEFAULT_FLIP_PROBABILITY;
  self->sharpness_probability = DEFAULT_SHARPNESS_PROBABILITY;
  self->sharpness_factor = DEFAULT_SHARPNESS_FACTOR;
  self->autocontrast_probability = DEFAULT_AUTOCONTRAST_PROBABILITY;
  self->always = DEFAULT_ALWAYS;
  self->count = 0;
}
