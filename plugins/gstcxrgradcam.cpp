// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrgradcam
 *
 * Grad-CAM / Grad-CAM++ heatmaps of a model card's network for each grey scan, at the scan's
 * full resolution. The network sees a copy scaled to the card's input size (as cxrinfer); the
 * map, taken at the card's `[gradcam] target-layer` (default: the last convolutional block),
 * is upsampled bilinearly to the frame's size.
 *
 * `output=overlay` gives RGB: the map through OpenCV's JET colour map (blue = low, red = high),
 * blended over the grey frame with weight `alpha` (16-bit frames shown as value / 257).
 * `output=heatmap` gives the map itself as GRAY8, 0..255. With `scaling=minmax` every map is
 * stretched to its own range; `scaling=fixed` divides raw Grad-CAM values by `fixed-max`
 * (clipped), so that maps of one model compare across scans.
 *
 * `target` picks the class explained: `predicted` (the top class), `positives` (every class
 * with a positive decision: thresholds of a multilabel card; a frame without one passes with
 * no map, shown grey), a class index or a class name. With several targets the picture shows
 * their per-pixel maximum.
 *
 * Each output buffer carries one GstCxrCamMeta per explained class (the scaled map as floats,
 * target class, model, method, layer) and a GstCxrResultMeta with the probabilities of the same
 * forward pass (unless one is already there, e.g. from a cxrinfer upstream: that one is kept).
 * The model loads when the element starts; a missing or unsuitable model (TorchScript, unknown
 * target layer or class) is an element error then. LibTorch runs on one thread of the
 * element's, "<name>:torch"; `threads` sets its intra-op threads. `memory-format` is NCHW by
 * default; `auto` times channels-last against NCHW for one scan's forward and backward at start
 * (CPU) and keeps the faster.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=scan.png ! pngdec ! videoconvert ! video/x-raw,format=GRAY8 ! cxrgradcam model=covid.toml target=predicted method=gradcam++ output=overlay alpha=0.4 ! videoconvert ! pngenc ! filesink location=cam.png
 * ]|
 */
#include "gstcxrgradcam.h"

#include <gst/video/video.h>

#include <memory>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/explain/gradcam.hpp"
#include "cxr/models/card.hpp"
#include "cxr/runtime/cpu.hpp"
#include "cxr/runtime/threads.hpp"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrcammeta.h"
#include "gst/gstcxrguard.hpp"
#include "gst/gstcxrmeta.h"
#include "gst/gstcxrresult.hpp"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_gradcam_debug);
#define GST_CAT_DEFAULT gst_cxr_gradcam_debug

typedef enum {
  GST_CXR_CAM_METHOD_GRADCAM = 0,
  GST_CXR_CAM_METHOD_GRADCAM_PP = 1,
} GstCxrCamMethod;

typedef enum {
  GST_CXR_CAM_OUTPUT_OVERLAY = 0,
  GST_CXR_CAM_OUTPUT_HEATMAP = 1,
} GstCxrCamOutput;

typedef enum {
  GST_CXR_CAM_SCALING_MINMAX = 0,
  GST_CXR_CAM_SCALING_FIXED = 1,
} GstCxrCamScaling;

typedef enum {
  GST_CXR_CAM_MEMORY_FORMAT_AUTO = 0,
  GST_CXR_CAM_MEMORY_FORMAT_CHANNELS_LAST = 1,
  GST_CXR_CAM_MEMORY_FORMAT_CONTIGUOUS = 2,
} GstCxrCamMemoryFormat;

static GType gst_cxr_cam_memory_format_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_CAM_MEMORY_FORMAT_AUTO, "The faster of the two, timed at start on the CPU", "auto"},
      {GST_CXR_CAM_MEMORY_FORMAT_CHANNELS_LAST, "Channels-last (NHWC)", "channels-last"},
      {GST_CXR_CAM_MEMORY_FORMAT_CONTIGUOUS, "Contiguous (NCHW)", "contiguous"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstCxrCamMemoryFormat", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

static GType gst_cxr_cam_method_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_CAM_METHOD_GRADCAM, "Grad-CAM (mean gradient per channel)", "gradcam"},
      {GST_CXR_CAM_METHOD_GRADCAM_PP, "Grad-CAM++ (weighted positive gradients)", "gradcam++"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstCxrCamMethod", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

static GType gst_cxr_cam_output_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_CAM_OUTPUT_OVERLAY, "JET colour map blended over the frame (RGB)", "overlay"},
      {GST_CXR_CAM_OUTPUT_HEATMAP, "The map as GRAY8, 0..255", "heatmap"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstCxrCamOutput", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

static GType gst_cxr_cam_scaling_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_CAM_SCALING_MINMAX, "Each map stretched to 0..1", "minmax"},
      {GST_CXR_CAM_SCALING_FIXED, "Raw values / fixed-max, clipped (comparable across scans)", "fixed"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstCxrCamScaling", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

enum {
  PROP_0,
  PROP_MODEL,
  PROP_DEVICE,
  PROP_TARGET,
  PROP_METHOD,
  PROP_OUTPUT,
  PROP_ALPHA,
  PROP_SCALING,
  PROP_FIXED_MAX,
  PROP_THREADS,
  PROP_MEMORY_FORMAT
};
#define DEFAULT_DEVICE "auto"
#define DEFAULT_TARGET "predicted"
#define DEFAULT_METHOD GST_CXR_CAM_METHOD_GRADCAM
#define DEFAULT_OUTPUT GST_CXR_CAM_OUTPUT_OVERLAY
#define DEFAULT_ALPHA 0.5
#define DEFAULT_SCALING GST_CXR_CAM_SCALING_MINMAX
#define DEFAULT_FIXED_MAX 1.0
#define DEFAULT_THREADS 0
#define DEFAULT_MEMORY_FORMAT GST_CXR_CAM_MEMORY_FORMAT_CONTIGUOUS

#define CXR_GRAY_CAPS GST_VIDEO_CAPS_MAKE("{ GRAY8, GRAY16_LE }")
#define CXR_OUT_CAPS GST_VIDEO_CAPS_MAKE("{ RGB, GRAY8 }")

namespace {

/// Everything C++ of one running element; created in start(), deleted in stop().
struct CamState {
  // Load, layout timing and every scan's forward and backward run on this one thread: see
  // cxr::runtime::ComputeThread for why.
  std::unique_ptr<cxr::runtime::ComputeThread> compute;
  std::unique_ptr<cxr::explain::GradCam> cam;
  cxr::explain::CamParams params;  // target resolved against the card
  GstCxrResultModel model;
};

}  // namespace

struct _GstCxrGradcam {
  GstVideoFilter parent;

  gchar* model;
  gchar* device;
  gchar* target;
  GstCxrCamMethod method;
  GstCxrCamOutput output;
  gdouble alpha;
  GstCxrCamScaling scaling;
  gdouble fixed_max;
  guint threads;
  GstCxrCamMemoryFormat memory_format;

  CamState* state;
};

G_DEFINE_TYPE(GstCxrGradcam, gst_cxr_gradcam, GST_TYPE_VIDEO_FILTER)
GST_ELEMENT_REGISTER_DEFINE(cxrgradcam, "cxrgradcam", GST_RANK_NONE, gst_cxr_gradcam_get_type())

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_OUT_CAPS));

static void gst_cxr_gradcam_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstCxrGradcam* self = GST_CXR_GRADCAM(object);
  bool reconfigure = false;
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free(self->model);
      self->model = g_value_dup_string(value);
      break;
    case PROP_DEVICE:
      g_free(self->device);
      self->device = g_value_dup_string(value);
      break;
    case PROP_TARGET:
      g_free(self->target);
      self->target = g_value_dup_string(value);
      break;
    case PROP_METHOD: self->method = static_cast<GstCxrCamMethod>(g_value_get_enum(value)); break;
    case PROP_OUTPUT:
      self->output = static_cast<GstCxrCamOutput>(g_value_get_enum(value));
      reconfigure = true;
      break;
    case PROP_ALPHA: self->alpha = g_value_get_double(value); break;
    case PROP_SCALING: self->scaling = static_cast<GstCxrCamScaling>(g_value_get_enum(value)); break;
    case PROP_FIXED_MAX: self->fixed_max = g_value_get_double(value); break;
    case PROP_THREADS: self->threads = g_value_get_uint(value); break;
    case PROP_MEMORY_FORMAT: self->memory_format = static_cast<GstCxrCamMemoryFormat>(g_value_get_enum(value)); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
  if (reconfigure) gst_base_transform_reconfigure_src(GST_BASE_TRANSFORM(self));
}

static void gst_cxr_gradcam_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstCxrGradcam* self = GST_CXR_GRADCAM(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODEL: g_value_set_string(value, self->model); break;
    case PROP_DEVICE: g_value_set_string(value, self->device); break;
    case PROP_TARGET: g_value_set_string(value, self->target); break;
    case PROP_METHOD: g_value_set_enum(value, self->method); break;
    case PROP_OUTPUT: g_value_set_enum(value, self->output); break;
    case PROP_ALPHA: g_value_set_double(value, self->alpha); break;
    case PROP_SCALING: g_value_set_enum(value, self->scaling); break;
    case PROP_FIXED_MAX: g_value_set_double(value, self->fixed_max); break;
    case PROP_THREADS: g_value_set_uint(value, self->threads); break;
    case PROP_MEMORY_FORMAT: g_value_set_enum(value, self->memory_format); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

/// Same caps with the format of the other side: RGB / GRAY8 out for GRAY8 / GRAY16_LE in.
static GstCaps* gst_cxr_gradcam_transform_caps(GstBaseTransform* trans, GstPadDirection direction, GstCaps* caps,
                                               GstCaps* filter) {
  GstCxrGradcam* self = GST_CXR_GRADCAM(trans);
  GST_OBJECT_LOCK(self);
  const GstCxrCamOutput output = self->output;
  GST_OBJECT_UNLOCK(self);
  GstCaps* res = gst_caps_new_empty();
  for (guint i = 0; i < gst_caps_get_size(caps); ++i) {
    GstStructure* s = gst_structure_copy(gst_caps_get_structure(caps, i));
    if (direction == GST_PAD_SINK) {
      gst_structure_set(s, "format", G_TYPE_STRING, output == GST_CXR_CAM_OUTPUT_OVERLAY ? "RGB" : "GRAY8", nullptr);
    } else {
      GValue list = G_VALUE_INIT, v = G_VALUE_INIT;
      gst_value_list_init(&list, 2);
      g_value_init(&v, G_TYPE_STRING);
      g_value_set_static_string(&v, "GRAY8");
      gst_value_list_append_value(&list, &v);
      g_value_set_static_string(&v, "GRAY16_LE");
      gst_value_list_append_value(&list, &v);
      g_value_unset(&v);
      gst_structure_take_value(s, "format", &list);
    }
    res = gst_caps_merge_structure(res, s);
  }
  if (filter) {
    GstCaps* tmp = gst_caps_intersect_full(filter, res, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(res);
    res = tmp;
  }
  return res;
}

static gboolean gst_cxr_gradcam_start(GstBaseTransform* trans) {
  GstCxrGradcam* self = GST_CXR_GRADCAM(trans);
  for (const auto& note : cxr::runtime::prepare_cpu_runtime()) GST_INFO_OBJECT(self, "%s", note.c_str());
  std::string model, target;
  cxr::explain::CamParams params;
  cxr::explain::GradCamOptions options;
  GST_OBJECT_LOCK(self);
  model = self->model ? self->model : "";
  options.device = self->device ? self->device : DEFAULT_DEVICE;
  options.threads = static_cast<int>(self->threads);
  options.layout = self->memory_format == GST_CXR_CAM_MEMORY_FORMAT_CHANNELS_LAST ? cxr::models::Layout::ChannelsLast
                   : self->memory_format == GST_CXR_CAM_MEMORY_FORMAT_CONTIGUOUS  ? cxr::models::Layout::Contiguous
                                                                                  : cxr::models::Layout::Auto;
  target = self->target ? self->target : DEFAULT_TARGET;
  params.method = self->method == GST_CXR_CAM_METHOD_GRADCAM_PP ? cxr::explain::CamMethod::gradcam_pp
                                                                : cxr::explain::CamMethod::gradcam;
  params.scaling = self->scaling == GST_CXR_CAM_SCALING_FIXED ? cxr::explain::CamScaling::fixed
                                                               : cxr::explain::CamScaling::minmax;
  params.fixed_max = static_cast<float>(self->fixed_max);
  GST_OBJECT_UNLOCK(self);

  return gst_cxr_guard_bool(GST_ELEMENT(self), [&]() -> gboolean {
    if (model.empty()) throw cxr::ConfigError("no model card: set the 'model' property");
    auto st = std::make_unique<CamState>();
    auto card = cxr::models::load_card(model);
    cxr::explain::resolve_target(target, card, params);
    st->compute =
        std::make_unique<cxr::runtime::ComputeThread>(cxr::runtime::compute_thread_name(GST_OBJECT_NAME(self)));
    st->compute->call([&] { st->cam = std::make_unique<cxr::explain::GradCam>(card, options); });
    st->params = params;
    for (const auto& c : card.classes) st->model.classes.push_back(g_quark_from_string(c.c_str()));
    st->model.id = card.name;
    st->model.multilabel = card.task == cxr::models::Task::Multilabel;
    GST_INFO_OBJECT(self, "model %s (%s), layer %s, %s on %s, %s", card.name.c_str(), card.architecture.c_str(),
                    st->cam->layer().c_str(), cxr::explain::to_string(params.method), st->cam->device().c_str(),
                    cxr::models::to_string(st->cam->layout()));
    self->state = st.release();
    return TRUE;
  });
}

static gboolean gst_cxr_gradcam_stop(GstBaseTransform* trans) {
  GstCxrGradcam* self = GST_CXR_GRADCAM(trans);
  delete self->state;
  self->state = nullptr;
  return TRUE;
}

static void attach_results(CamState* st, GstBuffer* buf, const cxr::explain::CamResult& r) {
  for (const auto& cam : r.cams) {
    GstCxrCamMeta* m = gst_buffer_add_cxr_cam_meta(buf, static_cast<guint>(cam.heatmap.cols),
                                                   static_cast<guint>(cam.heatmap.rows), cam.heatmap.ptr<float>());
    m->target = cam.target;
    m->target_name = st->model.classes[static_cast<size_t>(cam.target)];
    m->model = g_strdup(st->model.id.c_str());
    m->method = g_strdup(cxr::explain::to_string(st->params.method));
    m->layer = g_strdup(st->cam->layer().c_str());
    m->raw_min = cam.raw_min;
    m->raw_max = cam.raw_max;
  }
  if (gst_buffer_get_cxr_result_meta(buf)) return;
  gst_cxr_buffer_add_prediction(buf, st->model, r.prediction);
}

static GstFlowReturn gst_cxr_gradcam_transform_frame(GstVideoFilter* filter, GstVideoFrame* in, GstVideoFrame* out) {
  GstCxrGradcam* self = GST_CXR_GRADCAM(filter);
  CamState* st = self->state;
  if (!st) return gst_cxr_post_error(GST_ELEMENT(self), "no model loaded");
  GST_OBJECT_LOCK(self);
  const double alpha = self->alpha;
  GST_OBJECT_UNLOCK(self);

  gboolean failed;
  GstFlowReturn ret = gst_cxr_guard_scan(
      GST_ELEMENT(self), GST_BASE_TRANSFORM_SRC_PAD(self), in->buffer, GST_CXR_ON_ERROR_SKIP, &failed, [&] {
        cv::Mat scan = gst_cxr_frame_to_mat(in);
        cv::Mat dst = gst_cxr_frame_to_mat(out);
        cxr::explain::CamResult r = st->compute->call([&] { return st->cam->explain(scan, st->params); });
        cxr::explain::render_cams(scan, r.cams, alpha, dst);
        attach_results(st, out->buffer, r);
        return GST_FLOW_OK;
      });
  return failed && ret == GST_FLOW_OK ? GST_BASE_TRANSFORM_FLOW_DROPPED : ret;
}

static void gst_cxr_gradcam_finalize(GObject* object) {
  GstCxrGradcam* self = GST_CXR_GRADCAM(object);
  delete self->state;
  self->state = nullptr;
  g_free(self->model);
  g_free(self->device);
  g_free(self->target);
  G_OBJECT_CLASS(gst_cxr_gradcam_parent_class)->finalize(object);
}

static void gst_cxr_gradcam_class_init(GstCxrGradcamClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);
  GstVideoFilterClass* vfilter_class = GST_VIDEO_FILTER_CLASS(klass);

  gobject_class->set_property = gst_cxr_gradcam_set_property;
  gobject_class->get_property = gst_cxr_gradcam_get_property;
  gobject_class->finalize = gst_cxr_gradcam_finalize;

  const auto ready_only =
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto playing =
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(gobject_class, PROP_MODEL,
                                  g_param_spec_string("model", "Model card", "Path of the model card (TOML)", nullptr,
                                                      ready_only));
  g_object_class_install_property(gobject_class, PROP_DEVICE,
                                  g_param_spec_string("device", "Device",
                                                      "auto (CUDA when available, else CPU), cpu, cuda or cuda:N",
                                                      DEFAULT_DEVICE, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_TARGET,
      g_param_spec_string("target", "Target class",
                          "Class explained: predicted, positives (every positive decision), a class index or a class "
                          "name",
                          DEFAULT_TARGET, ready_only));
  g_object_class_install_property(gobject_class, PROP_METHOD,
                                  g_param_spec_enum("method", "Method", "How channels are weighted",
                                                    gst_cxr_cam_method_get_type(), DEFAULT_METHOD, ready_only));
  g_object_class_install_property(gobject_class, PROP_OUTPUT,
                                  g_param_spec_enum("output", "Output", "What the source pad carries",
                                                    gst_cxr_cam_output_get_type(), DEFAULT_OUTPUT, ready_only));
  g_object_class_install_property(gobject_class, PROP_ALPHA,
                                  g_param_spec_double("alpha", "Alpha", "Weight of the colour map in the overlay", 0.0,
                                                      1.0, DEFAULT_ALPHA, playing));
  g_object_class_install_property(gobject_class, PROP_SCALING,
                                  g_param_spec_enum("scaling", "Scaling", "How map values become 0..1",
                                                    gst_cxr_cam_scaling_get_type(), DEFAULT_SCALING, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_FIXED_MAX,
      g_param_spec_double("fixed-max", "Fixed maximum", "Raw Grad-CAM value shown as 1 with scaling=fixed", 1e-12,
                          G_MAXDOUBLE, DEFAULT_FIXED_MAX, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_THREADS,
      g_param_spec_uint("threads", "Threads",
                        "LibTorch intra-op threads (and OpenBLAS's, process-wide), set on the element's compute thread (0: leave both)", 0, 1024,
                        DEFAULT_THREADS, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_MEMORY_FORMAT,
      g_param_spec_enum("memory-format", "Memory format",
                        "Layout of activations and weights; which is faster depends on the network and the CPU",
                        gst_cxr_cam_memory_format_get_type(), DEFAULT_MEMORY_FORMAT, ready_only));

  gst_element_class_set_static_metadata(element_class, "Chest X-ray Grad-CAM", "Filter/Analyzer/Video",
                                        "Grad-CAM heatmaps of a model card's network over the full-resolution scan",
                                        "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);

  trans_class->start = GST_DEBUG_FUNCPTR(gst_cxr_gradcam_start);
  trans_class->stop = GST_DEBUG_FUNCPTR(gst_cxr_gradcam_stop);
  trans_class->transform_caps = GST_DEBUG_FUNCPTR(gst_cxr_gradcam_transform_caps);
  vfilter_class->transform_frame = GST_DEBUG_FUNCPTR(gst_cxr_gradcam_transform_frame);
  gst_type_mark_as_plugin_api(gst_cxr_cam_method_get_type(), static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(gst_cxr_cam_output_get_type(), static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(gst_cxr_cam_scaling_get_type(), static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(gst_cxr_cam_memory_format_get_type(), static_cast<GstPluginAPIFlags>(0));
  GST_DEBUG_CATEGORY_INIT(gst_cxr_gradcam_debug, "cxrgradcam", 0, "Chest X-ray Grad-CAM");
}

static void gst_cxr_gradcam_init(GstCxrGradcam* self) {
  self->model = nullptr;
  self->device = g_strdup(DEFAULT_DEVICE);
  self->target = g_strdup(DEFAULT_TARGET);
  self->method = DEFAULT_METHOD;
  self->output = DEFAULT_OUTPUT;
  self->alpha = DEFAULT_ALPHA;
  self->scaling = DEFAULT_SCALING;
  self->fixed_max = DEFAULT_FIXED_MAX;
  self->threads = DEFAULT_THREADS;
  self->memory_format = DEFAULT_MEMORY_FORMAT;
  self->state = nullptr;
}
