// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrresultsink
 *
 * Writes one JSON line per scan to `location`, flushed as written: the scan's path, index,
 * split and ground truth, the frame size, and — when a model ran — its classes, probabilities
 * and decision; or `"error"` with the reason when an element upstream could not process the
 * scan (a `cxr-scan-error` event). With `image-dir`, each frame is also saved there as PNG.
 * At EOS a `cxr-summary` element message gives the row and error counts.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 cxrscansrc location=data/samples/covid ! cxrdecode ! cxrequalize ! cxrblur ! cxrresultsink location=out.jsonl image-dir=out/
 * ]|
 */
#include "gstcxrresultsink.h"

#include <cerrno>
#include <cstdio>
#include <gst/video/video.h>
#include <string>
#include <vector>

#include "cxr/report/result_row.hpp"
#include "cxr/util/image_write.hpp"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrevents.h"
#include "gst/gstcxrguard.hpp"
#include "gst/gstcxrmeta.h"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_result_sink_debug);
#define GST_CAT_DEFAULT gst_cxr_result_sink_debug

enum { PROP_0, PROP_LOCATION, PROP_IMAGE_DIR, PROP_LOGITS, PROP_EMBEDDINGS, PROP_ROWS, PROP_ERRORS };
#define DEFAULT_LOCATION "results.jsonl"

struct _GstCxrResultSink {
  GstBaseSink parent;

  gchar *location;
  gchar *image_dir;
  gboolean logits;
  gboolean embeddings;

  FILE *file;
  GstVideoInfo info;
  gboolean have_info;
  std::vector<std::string> *classes;  // from the cxr-dataset event
  guint64 rows, errors;
};

G_DEFINE_TYPE(GstCxrResultSink, gst_cxr_result_sink, GST_TYPE_BASE_SINK)
GST_ELEMENT_REGISTER_DEFINE(cxrresultsink, "cxrresultsink", GST_RANK_NONE, gst_cxr_result_sink_get_type())

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static void gst_cxr_result_sink_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec) {
  GstCxrResultSink *self = GST_CXR_RESULT_SINK(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_LOCATION: gst_cxr_meta_set_string(&self->location, g_value_get_string(value)); break;
    case PROP_IMAGE_DIR: gst_cxr_meta_set_string(&self->image_dir, g_value_get_string(value)); break;
    case PROP_LOGITS: self->logits = g_value_get_boolean(value); break;
    case PROP_EMBEDDINGS: self->embeddings = g_value_get_boolean(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_result_sink_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec) {
  GstCxrResultSink *self = GST_CXR_RESULT_SINK(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_LOCATION: g_value_set_string(value, self->location); break;
    case PROP_IMAGE_DIR: g_value_set_string(value, self->image_dir); break;
    case PROP_LOGITS: g_value_set_boolean(value, self->logits); break;
    case PROP_EMBEDDINGS: g_value_set_boolean(value, self->embeddings); break;
    case PROP_ROWS: g_value_set_uint64(value, self->rows); break;
    case PROP_ERRORS: g_value_set_uint64(value, self->errors); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static gboolean gst_cxr_result_sink_start(GstBaseSink *sink) {
  GstCxrResultSink *self = GST_CXR_RESULT_SINK(sink);
  GST_OBJECT_LOCK(self);
  const std::string location = self->location ? self->location : "";
  const std::string image_dir = self->image_dir ? self->image_dir : "";
  GST_OBJECT_UNLOCK(self);
  if (location.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND, ("No location set"), (nullptr));
    return FALSE;
  }
  if (!image_dir.empty() && g_mkdir_with_parents(image_dir.c_str(), 0755) != 0) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_WRITE, ("Cannot create image-dir %s: %s", image_dir.c_str(), g_strerror(errno)),
                      (nullptr));
    return FALSE;
  }
  gchar *dir = g_path_get_dirname(location.c_str());
  g_mkdir_with_parents(dir, 0755);
  g_free(dir);
  self->file = location == "-" ? stdout : std::fopen(location.c_str(), "w");
  if (!self->file) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_WRITE, ("Cannot open %s: %s", location.c_str(), g_strerror(errno)),
                      (nullptr));
    return FALSE;
  }
  self->classes = new std::vector<std::string>();
  self->have_info = FALSE;
  self->rows = self->errors = 0;
  return TRUE;
}

static gboolean gst_cxr_result_sink_stop(GstBaseSink *sink) {
  GstCxrResultSink *self = GST_CXR_RESULT_SINK(sink);
  if (self->file && self->file != stdout) std::fclose(self->file);
  self->file = nullptr;
  delete self->classes;
  self->classes = nullptr;
  return TRUE;
}

static gboolean write_line(GstCxrResultSink *self, const std::string &line) {
  // One line per scan, flushed at once: a crash loses no finished row.
  if (std::fputs(line.c_str(), self->file) < 0 || std::fputc('\n', self->file) == EOF || std::fflush(self->file) != 0) {
    GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("Cannot write results: %s", g_strerror(errno)), (nullptr));
    return FALSE;
  }
  self->rows++;
  return TRUE;
}

static gboolean gst_cxr_result_sink_set_caps(GstBaseSink *sink, GstCaps *caps) {
  GstCxrResultSink *self = GST_CXR_RESULT_SINK(sink);
  self->have_info = gst_video_info_from_caps(&self->info, caps);
  return TRUE;
}

static gboolean gst_cxr_result_sink_event(GstBaseSink *sink, GstEvent *event) {
  GstCxrResultSink *self = GST_CXR_RESULT_SINK(sink);
  if (const GstStructure *s = gst_cxr_event_get(event, GST_CXR_EVENT_SCAN_ERROR)) {
    guint64 index = 0;
    gst_structure_get_uint64(s, "index", &index);
    const gchar *path = gst_structure_get_string(s, "path");
    const gchar *split = gst_structure_get_string(s, "split");
    const gchar *reason = gst_structure_get_string(s, "reason");
    const gchar *element = gst_structure_get_string(s, "element");
    self->errors++;
    const gboolean ok = write_line(self, cxr::report::error_row(path ? path : "unknown", index, split ? split : "",
                                                                reason ? reason : "unknown error", element ? element : ""));
    gst_event_unref(event);
    return ok;
  }
  if (const GstStructure *s = gst_cxr_event_get(event, GST_CXR_EVENT_DATASET)) {
    self->classes->clear();
    if (const GValue *arr = gst_structure_get_value(s, "classes"))
      for (guint i = 0; i < gst_value_array_get_size(arr); ++i)
        self->classes->push_back(g_value_get_string(gst_value_array_get_value(arr, i)));
  }
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    gst_element_post_message(GST_ELEMENT(self),
                             gst_message_new_element(GST_OBJECT(self),
                                                     gst_structure_new("cxr-summary", "rows", G_TYPE_UINT64, self->rows,
                                                                       "errors", G_TYPE_UINT64, self->errors, NULL)));
  }
  return GST_BASE_SINK_CLASS(gst_cxr_result_sink_parent_class)->event(sink, event);
}

static GstFlowReturn gst_cxr_result_sink_render(GstBaseSink *sink, GstBuffer *buffer) {
  GstCxrResultSink *self = GST_CXR_RESULT_SINK(sink);
  GST_OBJECT_LOCK(self);
  const std::string image_dir = self->image_dir ? self->image_dir : "";
  cxr::report::RowOptions opts;
  opts.logits = self->logits;
  opts.embedding = self->embeddings;
  GST_OBJECT_UNLOCK(self);

  cxr::report::ScanRecord scan;
  const GstCxrScanMeta *sm = gst_buffer_get_cxr_scan_meta(buffer);
  if (sm) {
    scan.path = sm->path ? sm->path : "";
    scan.index = sm->index;
    scan.split = gst_cxr_split_to_string(sm->split);
    scan.epoch = sm->epoch;
    scan.label = sm->label;
    scan.labels.assign(sm->labels, sm->labels + sm->n_labels);
  } else {
    scan.index = self->rows;
  }
  scan.classes = *self->classes;

  cv::Mat frame;
  GstVideoFrame vframe;
  const gboolean mapped = self->have_info && gst_video_frame_map(&vframe, &self->info, buffer, GST_MAP_READ);
  if (mapped) {
    scan.width = GST_VIDEO_INFO_WIDTH(&self->info);
    scan.height = GST_VIDEO_INFO_HEIGHT(&self->info);
    scan.format = gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&self->info));
  }
  GstFlowReturn ret = GST_FLOW_OK;
  try {
    if (mapped && !image_dir.empty()) {
      char name[32];
      g_snprintf(name, sizeof name, "%06" G_GUINT64_FORMAT "-", scan.index);
      scan.image = image_dir + "/" + name + (scan.path.empty() ? "scan" : cxr::util::file_stem(scan.path)) + ".png";
      cxr::util::write_png(scan.image, gst_cxr_frame_to_mat(&vframe));
    }
    cxr::report::ResultRecord result;
    const GstCxrResultMeta *rm = gst_buffer_get_cxr_result_meta(buffer);
    if (rm) {
      result.model = rm->model ? rm->model : "";
      result.multilabel = rm->multilabel;
      for (guint i = 0; i < rm->n_classes; ++i) result.classes.emplace_back(g_quark_to_string(rm->class_quarks[i]));
      result.logits.assign(rm->logits, rm->logits + rm->n_classes);
      result.probabilities.assign(rm->probabilities, rm->probabilities + rm->n_classes);
      result.decisions.assign(rm->decisions, rm->decisions + rm->n_classes);
      result.embedding.assign(rm->embedding, rm->embedding + rm->n_embedding);
    }
    if (!write_line(self, cxr::report::result_row(scan, rm ? &result : nullptr, opts))) ret = GST_FLOW_ERROR;
  } catch (const std::exception &e) {
    // Writing the image failed: the scan still gets its row, as an error.
    self->errors++;
    if (!write_line(self, cxr::report::error_row(scan.path, scan.index, scan.split, e.what(), GST_ELEMENT_NAME(self))))
      ret = GST_FLOW_ERROR;
    GST_ELEMENT_WARNING(self, RESOURCE, WRITE, ("%s: %s", scan.path.c_str(), e.what()), (nullptr));
  }
  if (mapped) gst_video_frame_unmap(&vframe);
  return ret;
}

static void gst_cxr_result_sink_finalize(GObject *object) {
  GstCxrResultSink *self = GST_CXR_RESULT_SINK(object);
  g_free(self->location);
  g_free(self->image_dir);
  G_OBJECT_CLASS(gst_cxr_result_sink_parent_class)->finalize(object);
}

static void gst_cxr_result_sink_class_init(GstCxrResultSinkClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSinkClass *basesink_class = GST_BASE_SINK_CLASS(klass);

  gobject_class->set_property = gst_cxr_result_sink_set_property;
  gobject_class->get_property = gst_cxr_result_sink_get_property;
  gobject_class->finalize = gst_cxr_result_sink_finalize;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property(gobject_class, PROP_LOCATION,
                                  g_param_spec_string("location", "Location", "JSON-lines results file ('-' = stdout)",
                                                      DEFAULT_LOCATION, rw));
  g_object_class_install_property(gobject_class, PROP_IMAGE_DIR,
                                  g_param_spec_string("image-dir", "Image folder",
                                                      "Also save each frame there as PNG (unset: no images)", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_LOGITS,
                                  g_param_spec_boolean("logits", "Logits", "Also write the raw logits", FALSE, rw));
  g_object_class_install_property(gobject_class, PROP_EMBEDDINGS,
                                  g_param_spec_boolean("embeddings", "Embeddings",
                                                       "Also write the embedding a model attached", FALSE, rw));
  g_object_class_install_property(gobject_class, PROP_ROWS,
                                  g_param_spec_uint64("rows", "Rows", "Rows written so far", 0, G_MAXUINT64, 0, ro));
  g_object_class_install_property(gobject_class, PROP_ERRORS,
                                  g_param_spec_uint64("errors", "Errors", "Error rows written so far", 0, G_MAXUINT64, 0,
                                                      ro));

  gst_element_class_set_static_metadata(element_class, "Chest X-ray results sink", "Sink/File",
                                        "Writes one JSON line per scan: its results or the error that stopped it",
                                        "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);

  basesink_class->start = GST_DEBUG_FUNCPTR(gst_cxr_result_sink_start);
  basesink_class->stop = GST_DEBUG_FUNCPTR(gst_cxr_result_sink_stop);
  basesink_class->set_caps = GST_DEBUG_FUNCPTR(gst_cxr_result_sink_set_caps);
  basesink_class->event = GST_DEBUG_FUNCPTR(gst_cxr_result_sink_event);
  basesink_class->render = GST_DEBUG_FUNCPTR(gst_cxr_result_sink_render);
  GST_DEBUG_CATEGORY_INIT(gst_cxr_result_sink_debug, "cxrresultsink", 0, "Chest X-ray results sink");
}

static void gst_cxr_result_sink_init(GstCxrResultSink *self) {
  self->location = g_strdup(DEFAULT_LOCATION);
  gst_base_sink_set_sync(GST_BASE_SINK(self), FALSE);
}
