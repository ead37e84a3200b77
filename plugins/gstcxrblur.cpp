// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrblur
 *
 * Gaussian blur of grey scans, matching torchvision's `F.gaussian_blur` (float kernel, reflect
 * border, rounded back to integers) within one grey level. `sigma=0` uses torchvision's default
 * for the kernel size (0.15 * k + 0.35; 1.1 for 5x5), as the study did.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 cxrscansrc location=scans/ ! cxrdecode ! cxrequalize ! cxrblur kernel-size=5 ! cxrresultsink location=out.jsonl
 * ]|
 */
#include "gstcxrblur.h"

#include <gst/video/video.h>

#include "cxr/preprocess/blur.hpp"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrguard.hpp"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_blur_debug);
#define GST_CAT_DEFAULT gst_cxr_blur_debug

enum { PROP_0, PROP_KERNEL_SIZE, PROP_SIGMA };
#define DEFAULT_KERNEL_SIZE 5
#define DEFAULT_SIGMA 0.0

#define CXR_GRAY_CAPS GST_VIDEO_CAPS_MAKE("{ GRAY8, GRAY16_LE }")

struct _GstCxrBlur {
  GstVideoFilter parent;
  gint kernel_size;
  gdouble sigma;
};

G_DEFINE_TYPE(GstCxrBlur, gst_cxr_blur, GST_TYPE_VIDEO_FILTER)
GST_ELEMENT_REGISTER_DEFINE(cxrblur, "cxrblur", GST_RANK_NONE, gst_cxr_blur_get_type())

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));

static void gst_cxr_blur_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstCxrBlur* self = GST_CXR_BLUR(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_KERNEL_SIZE: self->kernel_size = g_value_get_int(value); break;
    case PROP_SIGMA: self->sigma = g_value_get_double(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_blur_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstCxrBlur* self = GST_CXR_BLUR(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_KERNEL_SIZE: g_value_set_int(value, self->kernel_size); break;
    case PROP_SIGMA: g_value_set_double(value, self->sigma); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static GstFlowReturn gst_cxr_blur_transform_frame(GstVideoFilter* filter, GstVideoFrame* in, GstVideoFrame* out) {
  GstCxrBlur* self = GST_CXR_BLUR(filter);
  cxr::preprocess::BlurParams params;
  GST_OBJECT_LOCK(self);
  params.kernel_size = self->kernel_size;
  params.sigma = self->sigma;
  GST_OBJECT_UNLOCK(self);

  gboolean failed;
  GstFlowReturn ret = gst_cxr_guard_scan(GST_ELEMENT(self), GST_BASE_TRANSFORM_SRC_PAD(self), in->buffer,
                                         GST_CXR_ON_ERROR_SKIP, &failed, [&] {
                                           cv::Mat src = gst_cxr_frame_to_mat(in);
                                           cv::Mat dst = gst_cxr_frame_to_mat(out);
                                           cxr::preprocess::gaussian_blur(src, dst, params);
                                           return GST_FLOW_OK;
                                         });
  return failed && ret == GST_FLOW_OK ? GST_BASE_TRANSFORM_FLOW_DROPPED : ret;
}

static void gst_cxr_blur_class_init(GstCxrBlurClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstVideoFilterClass* vfilter_class = GST_VIDEO_FILTER_CLASS(klass);

  gobject_class->set_property = gst_cxr_blur_set_property;
  gobject_class->get_property = gst_cxr_blur_get_property;

  g_object_class_install_property(
      gobject_class, PROP_KERNEL_SIZE,
      g_param_spec_int("kernel-size", "Kernel size", "Odd kernel size (1 = no blur)", 1, 101, DEFAULT_KERNEL_SIZE,
                       static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property(
      gobject_class, PROP_SIGMA,
      g_param_spec_double("sigma", "Sigma", "Standard deviation in pixels (0 = torchvision's default for the kernel size)",
                          0.0, 100.0, DEFAULT_SIGMA,
                          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));

  gst_element_class_set_static_metadata(element_class, "Chest X-ray Gaussian blur", "Filter/Effect/Video",
                                        "Gaussian blur matching torchvision's gaussian_blur", "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);

  vfilter_class->transform_frame = GST_DEBUG_FUNCPTR(gst_cxr_blur_transform_frame);
  GST_DEBUG_CATEGORY_INIT(gst_cxr_blur_debug, "cxrblur", 0, "Chest X-ray Gaussian blur");
}

static void gst_cxr_blur_init(GstCxrBlur* self) {
  self->kernel_size = DEFAULT_KERNEL_SIZE;
  self->sigma = DEFAULT_SIGMA;
}
