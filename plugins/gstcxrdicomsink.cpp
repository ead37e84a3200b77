// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrdicomsink
 *
 * Turns each scan's results into DICOM and sends it back to the PACS: a Comprehensive SR
 * (model name and version, each class's probability and decision, the source image as
 * evidence, a not-for-diagnostic-use statement) and a Secondary Capture of the frame it
 * receives (the RGB Grad-CAM overlay when cxrgradcam ran with `output=overlay`, else the grey
 * frame), both in the source's study, built from the source instance at the scan meta's path.
 *
 * Delivery is durable: both objects are written to the `outbox` folder (synced) before the
 * scan counts as handled; a background C-STORE SCU sends the outbox to `peer`, retrying with
 * exponential back-off (`retry-initial` .. `retry-max`) while the peer is away, and deletes a
 * file only when the peer answered success. Whatever is still in the outbox when the element
 * starts is sent too. Instances the peer refuses move to `outbox/failed` (with a warning).
 * Without `peer`, the objects are written to `output-dir` instead.
 *
 * Once a scan's objects are in the outbox (or output-dir), or it turned out to have no result
 * (a `cxr-scan-error` row upstream, a buffer without GstCxrResultMeta), an upstream custom
 * event `cxr-inbox-done` (field `path`) tells cxrdicomsrc to delete the inbox copy. The outbox,
 * not the inbox, is then responsible for delivery: a crash after that point re-sends, it never
 * re-processes (so no duplicate reports reach the PACS).
 *
 * Logs and bus messages carry UIDs and file names, never patient name, ID or birth date unless
 * `debug-phi=true`. Messages: `cxr-dicom-queued` per scan, `cxr-dicom-sent` per stored or
 * refused object (fields path, status, detail).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e cxrdicomsrc port=11112 inbox=/tmp/cxr/inbox ! cxrdecode ! cxrinfer model=covid.toml ! cxrgradcam model=covid.toml output=overlay ! cxrdicomsink peer=127.0.0.1:4242 peer-ae-title=ORTHANC outbox=/tmp/cxr/outbox
 * ]|
 */
#include "gstcxrdicomsink.h"

#include <gst/video/video.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <opencv2/imgproc.hpp>
#include <string>

#include "cxr/dicom/derived.hpp"
#include "cxr/dicom/durable.hpp"
#include "cxr/dicom/instance.hpp"
#include "cxr/dicom/store_scu.hpp"
#include "cxr/error.hpp"
#include "cxr_config.h"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrevents.h"
#include "gst/gstcxrguard.hpp"
#include "gst/gstcxrmeta.h"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_dicom_sink_debug);
#define GST_CAT_DEFAULT gst_cxr_dicom_sink_debug

/* Upstream custom event understood by cxrdicomsrc: the stream is done with an inbox file. */
#define CXR_EVENT_INBOX_DONE "cxr-inbox-done"

enum {
  PROP_0,
  PROP_PEER,
  PROP_PEER_AE_TITLE,
  PROP_AE_TITLE,
  PROP_OUTBOX,
  PROP_OUTPUT_DIR,
  PROP_RETRY_INITIAL,
  PROP_RETRY_MAX,
  PROP_TIMEOUT,
  PROP_EOS_TIMEOUT,
  PROP_MODEL_VERSION,
  PROP_DEBUG_PHI,
  PROP_QUEUED,
  PROP_SENT,
};
#define DEFAULT_PEER_AE_TITLE "ANY-SCP"
#define DEFAULT_AE_TITLE "GSTCXR"
#define DEFAULT_RETRY_INITIAL 1000
#define DEFAULT_RETRY_MAX 60000
#define DEFAULT_TIMEOUT 30
#define DEFAULT_EOS_TIMEOUT 10000

struct _GstCxrDicomSink {
  GstBaseSink parent;

  gchar *peer, *peer_ae_title, *ae_title, *outbox, *output_dir, *model_version;
  guint retry_initial, retry_max, timeout, eos_timeout;
  gboolean debug_phi;

  cxr::dicom::Outbox *sender;  // created in start() when a peer is set, deleted in stop()
  std::string *target_dir;     // where objects are written: the outbox or output-dir
  GstVideoInfo info;
  gboolean have_info;
  guint64 queued;
  std::atomic<guint64> *sent;
};

G_DEFINE_TYPE(GstCxrDicomSink, gst_cxr_dicom_sink, GST_TYPE_BASE_SINK)
GST_ELEMENT_REGISTER_DEFINE(cxrdicomsink, "cxrdicomsink", GST_RANK_NONE, gst_cxr_dicom_sink_get_type())

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("video/x-raw, format=(string){ GRAY8, GRAY16_LE, RGB, RGBA, RGBx }; application/x-cxr-scan"));

static void gst_cxr_dicom_sink_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec) {
  GstCxrDicomSink *self = GST_CXR_DICOM_SINK(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_PEER: gst_cxr_meta_set_string(&self->peer, g_value_get_string(value)); break;
    case PROP_PEER_AE_TITLE: gst_cxr_meta_set_string(&self->peer_ae_title, g_value_get_string(value)); break;
    case PROP_AE_TITLE: gst_cxr_meta_set_string(&self->ae_title, g_value_get_string(value)); break;
    case PROP_OUTBOX: gst_cxr_meta_set_string(&self->outbox, g_value_get_string(value)); break;
    case PROP_OUTPUT_DIR: gst_cxr_meta_set_string(&self->output_dir, g_value_get_string(value)); break;
    case PROP_MODEL_VERSION: gst_cxr_meta_set_string(&self->model_version, g_value_get_string(value)); break;
    case PROP_RETRY_INITIAL: self->retry_initial = g_value_get_uint(value); break;
    case PROP_RETRY_MAX: self->retry_max = g_value_get_uint(value); break;
    case PROP_TIMEOUT: self->timeout = g_value_get_uint(value); break;
    case PROP_EOS_TIMEOUT: self->eos_timeout = g_value_get_uint(value); break;
    case PROP_DEBUG_PHI: self->debug_phi = g_value_get_boolean(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_dicom_sink_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec) {
  GstCxrDicomSink *self = GST_CXR_DICOM_SINK(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_PEER: g_value_set_string(value, self->peer); break;
    case PROP_PEER_AE_TITLE: g_value_set_string(value, self->peer_ae_title); break;
    case PROP_AE_TITLE: g_value_set_string(value, self->ae_title); break;
    case PROP_OUTBOX: g_value_set_string(value, self->outbox); break;
    case PROP_OUTPUT_DIR: g_value_set_string(value, self->output_dir); break;
    case PROP_MODEL_VERSION: g_value_set_string(value, self->model_version); break;
    case PROP_RETRY_INITIAL: g_value_set_uint(value, self->retry_initial); break;
    case PROP_RETRY_MAX: g_value_set_uint(value, self->retry_max); break;
    case PROP_TIMEOUT: g_value_set_uint(value, self->timeout); break;
    case PROP_EOS_TIMEOUT: g_value_set_uint(value, self->eos_timeout); break;
    case PROP_DEBUG_PHI: g_value_set_boolean(value, self->debug_phi); break;
    case PROP_QUEUED: g_value_set_uint64(value, self->queued); break;
    case PROP_SENT: g_value_set_uint64(value, self->sent ? self->sent->load() : 0); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static const char *status_name(cxr::dicom::SendStatus s) {
  switch (s) {
    case cxr::dicom::SendStatus::Stored: return "stored";
    case cxr::dicom::SendStatus::Rejected: return "rejected";
    default: return "pending";
  }
}

static gboolean gst_cxr_dicom_sink_start(GstBaseSink *sink) {
  GstCxrDicomSink *self = GST_CXR_DICOM_SINK(sink);
  return gst_cxr_guard_bool(GST_ELEMENT(self), [&] {
    cxr::dicom::OutboxParams p;
    GST_OBJECT_LOCK(self);
    const std::string peer = self->peer ? self->peer : "";
    const std::string output_dir = self->output_dir ? self->output_dir : "";
    p.folder = self->outbox ? self->outbox : "";
    p.scu.peer_ae_title = self->peer_ae_title ? self->peer_ae_title : "";
    p.scu.ae_title = self->ae_title ? self->ae_title : "";
    p.scu.timeout_s = static_cast<int>(self->timeout);
    p.retry_initial = std::chrono::milliseconds(self->retry_initial);
    p.retry_max = std::chrono::milliseconds(self->retry_max);
    GST_OBJECT_UNLOCK(self);
    self->sent = new std::atomic<guint64>(0);
    self->queued = 0;
    self->have_info = FALSE;
    if (peer.empty()) {
      if (output_dir.empty()) throw cxr::InvalidArgument("set peer (host:port) and outbox, or output-dir");
      cxr::dicom::make_dirs(output_dir);
      self->target_dir = new std::string(output_dir);
      return TRUE;
    }
    if (p.folder.empty()) throw cxr::InvalidArgument("peer is set but no outbox folder: set outbox");
    cxr::dicom::parse_peer(peer, p.scu.host, p.scu.port);
    GstElement *element = GST_ELEMENT(self);
    std::atomic<guint64> *sent = self->sent;
    self->sender = new cxr::dicom::Outbox(p, [element, sent](const cxr::dicom::SendResult &r) {
      if (r.status == cxr::dicom::SendStatus::Stored) {
        sent->fetch_add(1);
        GST_DEBUG_OBJECT(element, "stored %s (%s)", r.path.c_str(), r.message.c_str());
      } else {
        GST_ELEMENT_WARNING(element, RESOURCE, WRITE, ("The peer refused %s: %s", r.path.c_str(), r.message.c_str()),
                            (nullptr));
      }
      gst_element_post_message(
          element, gst_message_new_element(GST_OBJECT(element),
                                           gst_structure_new("cxr-dicom-sent", "path", G_TYPE_STRING, r.path.c_str(),
                                                             "status", G_TYPE_STRING, status_name(r.status), "detail",
                                                             G_TYPE_STRING, r.message.c_str(), NULL)));
    });
    self->target_dir = new std::string(p.folder);
    GST_INFO_OBJECT(self, "sending to %s@%s, %zu objects waiting in the outbox", p.scu.peer_ae_title.c_str(),
                    peer.c_str(), self->sender->pending());
    return TRUE;
  });
}

static gboolean gst_cxr_dicom_sink_stop(GstBaseSink *sink) {
  GstCxrDicomSink *self = GST_CXR_DICOM_SINK(sink);
  delete self->sender;  // what is unsent stays in the outbox for the next run
  self->sender = nullptr;
  delete self->target_dir;
  self->target_dir = nullptr;
  delete self->sent;
  self->sent = nullptr;
  return TRUE;
}

static gboolean gst_cxr_dicom_sink_set_caps(GstBaseSink *sink, GstCaps *caps) {
  GstCxrDicomSink *self = GST_CXR_DICOM_SINK(sink);
  self->have_info = gst_video_info_from_caps(&self->info, caps);
  return TRUE;
}

// Tells the source the stream is done with this inbox file.
static void release_inbox(GstCxrDicomSink *self, const gchar *path) {
  if (!path || !*path) return;
  GstStructure *s = gst_structure_new(CXR_EVENT_INBOX_DONE, "path", G_TYPE_STRING, path, NULL);
  if (!gst_pad_push_event(GST_BASE_SINK_PAD(self), gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM, s)))
    GST_DEBUG_OBJECT(self, "nobody upstream released %s (not an inbox file)", path);
}

// Places a finished file (written to `tmp` in the target folder) under its final name.
static void place(GstCxrDicomSink *self, const std::string &tmp, const std::string &name) {
  if (self->sender) {
    self->sender->enqueue_move(tmp, name);
  } else {
    cxr::dicom::sync_file(tmp);
    cxr::dicom::publish(tmp, *self->target_dir + "/" + name);
  }
}

static gboolean gst_cxr_dicom_sink_event(GstBaseSink *sink, GstEvent *event) {
  GstCxrDicomSink *self = GST_CXR_DICOM_SINK(sink);
  if (const GstStructure *s = gst_cxr_event_get(event, GST_CXR_EVENT_SCAN_ERROR)) {
    // No result will come for this scan: release it so it is not re-emitted forever.
    const gchar *path = gst_structure_get_string(s, "path");
    const gchar *reason = gst_structure_get_string(s, "reason");
    GST_WARNING_OBJECT(self, "no report for %s: %s", path ? path : "?", reason ? reason : "?");
    release_inbox(self, path);
  }
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    GST_OBJECT_LOCK(self);
    const guint eos_timeout = self->eos_timeout;
    GST_OBJECT_UNLOCK(self);
    size_t pending = 0;
    if (self->sender && !self->sender->wait_empty(std::chrono::milliseconds(eos_timeout)))
      pending = self->sender->pending();
    if (pending)
      GST_ELEMENT_WARNING(self, RESOURCE, WRITE,
                          ("%zu objects not yet delivered stay in the outbox for the next run", pending), (nullptr));
    gst_element_post_message(
        GST_ELEMENT(self),
        gst_message_new_element(GST_OBJECT(self),
                                gst_structure_new("cxr-dicom-summary", "queued", G_TYPE_UINT64, self->queued, "sent",
                                                  G_TYPE_UINT64, self->sent ? self->sent->load() : 0, "pending",
                                                  G_TYPE_UINT64, static_cast<guint64>(pending), NULL)));
  }
  return GST_BASE_SINK_CLASS(gst_cxr_dicom_sink_parent_class)->event(sink, event);
}

// The frame as grey 8/16-bit or RGB, the layouts a Secondary Capture holds.
static cv::Mat frame_for_capture(GstVideoFrame *frame) {
  cv::Mat m = gst_cxr_frame_to_mat(frame);
  if (m.type() == CV_8UC4) {
    cv::Mat rgb;
    cv::cvtColor(m, rgb, cv::COLOR_RGBA2RGB);
    return rgb;
  }
  return m;
}

static GstFlowReturn gst_cxr_dicom_sink_render(GstBaseSink *sink, GstBuffer *buffer) {
  GstCxrDicomSink *self = GST_CXR_DICOM_SINK(sink);
  const GstCxrScanMeta *sm = gst_buffer_get_cxr_scan_meta(buffer);
  if (!sm || !sm->path) {
    GST_ELEMENT_WARNING(self, STREAM, FORMAT, ("A buffer without a scan path: no source instance to report on"),
                        (nullptr));
    return GST_FLOW_OK;
  }
  const std::string source = sm->path;
  const GstCxrResultMeta *rm = gst_buffer_get_cxr_result_meta(buffer);
  if (!rm) {
    GST_ELEMENT_WARNING(self, STREAM, FORMAT, ("No result for %s: nothing sent", source.c_str()), (nullptr));
    release_inbox(self, source.c_str());
    return GST_FLOW_OK;
  }
  GST_OBJECT_LOCK(self);
  cxr::dicom::ReportSpec spec;
  spec.model_version = self->model_version ? self->model_version : "";
  const bool phi = self->debug_phi;
  GST_OBJECT_UNLOCK(self);
  spec.model = rm->model ? rm->model : "";
  spec.software_version = std::string("gst-cxr ") + CXR_VERSION;
  spec.multilabel = rm->multilabel;
  for (guint i = 0; i < rm->n_classes; ++i)
    spec.findings.push_back({g_quark_to_string(rm->class_quarks[i]), rm->probabilities[i], rm->decisions[i] != 0});

  GstVideoFrame vframe;
  const gboolean mapped = self->have_info && gst_video_frame_map(&vframe, &self->info, buffer, GST_MAP_READ);
  gchar *base = g_path_get_basename(source.c_str());
  const std::string stem = cxr::dicom::safe_name(sm->sop_uid ? sm->sop_uid : base);
  g_free(base);
  GstFlowReturn ret = GST_FLOW_OK;
  try {
    const std::string &dir = *self->target_dir;
    // Temp names in the target folder itself, so the final rename stays on one filesystem.
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(self->queued);
    const std::string sr_tmp = dir + "/." + stem + "-sr-" + tag + cxr::dicom::kPartialSuffix;
    const auto sr = cxr::dicom::write_sr(source, spec, sr_tmp);
    std::string sc_name;
    if (mapped) {
      const std::string sc_tmp = dir + "/." + stem + "-sc-" + tag + cxr::dicom::kPartialSuffix;
      const bool overlay = GST_VIDEO_INFO_IS_RGB(&self->info);
      const auto sc = cxr::dicom::write_sc(source, frame_for_capture(&vframe),
                                           overlay ? "AI heatmap overlay (not for diagnostic use)"
                                                   : "AI input image (not for diagnostic use)",
                                           sc_tmp);
      sc_name = cxr::dicom::safe_name(sc.sop_instance_uid) + ".dcm";
      place(self, sc_tmp, sc_name);
    }
    place(self, sr_tmp, cxr::dicom::safe_name(sr.sop_instance_uid) + ".dcm");
    self->queued++;
    if (phi) {
      try {
        GST_INFO_OBJECT(self, "%s: %s", source.c_str(),
                        cxr::dicom::describe_patient(cxr::dicom::read_instance_info(source), true).c_str());
      } catch (...) {
      }
    }
    gst_element_post_message(
        GST_ELEMENT(self),
        gst_message_new_element(GST_OBJECT(self),
                                gst_structure_new("cxr-dicom-queued", "path", G_TYPE_STRING, source.c_str(),
                                                  "study-uid", G_TYPE_STRING, sr.study_uid.c_str(), "sr-uid",
                                                  G_TYPE_STRING, sr.sop_instance_uid.c_str(), "sc", G_TYPE_STRING,
                                                  sc_name.c_str(), NULL)));
    release_inbox(self, source.c_str());
  } catch (const cxr::IoError &e) {
    // Our own storage failed: stop, and keep the inbox copy for the next run.
    ret = gst_cxr_post_error(GST_ELEMENT(self), e.what());
  } catch (const std::exception &e) {
    // This scan cannot be reported on (unreadable source, odd frame): release it, go on.
    GST_ELEMENT_WARNING(self, STREAM, FAILED, ("No report for %s: %s", source.c_str(), e.what()), (nullptr));
    release_inbox(self, source.c_str());
  }
  if (mapped) gst_video_frame_unmap(&vframe);
  return ret;
}

static void gst_cxr_dicom_sink_finalize(GObject *object) {
  GstCxrDicomSink *self = GST_CXR_DICOM_SINK(object);
  g_free(self->peer);
  g_free(self->peer_ae_title);
  g_free(self->ae_title);
  g_free(self->outbox);
  g_free(self->output_dir);
  g_free(self->model_version);
  delete self->sender;
  delete self->target_dir;
  delete self->sent;
  G_OBJECT_CLASS(gst_cxr_dicom_sink_parent_class)->finalize(object);
}

static void gst_cxr_dicom_sink_class_init(GstCxrDicomSinkClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSinkClass *basesink_class = GST_BASE_SINK_CLASS(klass);

  gobject_class->set_property = gst_cxr_dicom_sink_set_property;
  gobject_class->get_property = gst_cxr_dicom_sink_get_property;
  gobject_class->finalize = gst_cxr_dicom_sink_finalize;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property(gobject_class, PROP_PEER,
                                  g_param_spec_string("peer", "Peer", "host:port of the storage SCP to send to",
                                                      nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_PEER_AE_TITLE,
                                  g_param_spec_string("peer-ae-title", "Peer AE title", "AE title of the peer",
                                                      DEFAULT_PEER_AE_TITLE, rw));
  g_object_class_install_property(gobject_class, PROP_AE_TITLE,
                                  g_param_spec_string("ae-title", "AE title", "Our (calling) AE title",
                                                      DEFAULT_AE_TITLE, rw));
  g_object_class_install_property(gobject_class, PROP_OUTBOX,
                                  g_param_spec_string("outbox", "Outbox",
                                                      "Folder objects wait in until the peer stored them (with peer)",
                                                      nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_OUTPUT_DIR,
                                  g_param_spec_string("output-dir", "Output folder",
                                                      "Without peer: write the objects here instead of sending",
                                                      nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_RETRY_INITIAL,
                                  g_param_spec_uint("retry-initial", "Initial back-off",
                                                    "Wait after the first failed send (ms); doubles on each failure", 1,
                                                    G_MAXUINT, DEFAULT_RETRY_INITIAL, rw));
  g_object_class_install_property(gobject_class, PROP_RETRY_MAX,
                                  g_param_spec_uint("retry-max", "Maximum back-off", "Longest wait between sends (ms)",
                                                    1, G_MAXUINT, DEFAULT_RETRY_MAX, rw));
  g_object_class_install_property(gobject_class, PROP_TIMEOUT,
                                  g_param_spec_uint("timeout", "Timeout",
                                                    "Connect / association / DIMSE timeout (s)", 1, 3600,
                                                    DEFAULT_TIMEOUT, rw));
  g_object_class_install_property(gobject_class, PROP_EOS_TIMEOUT,
                                  g_param_spec_uint("eos-timeout", "EOS timeout",
                                                    "At EOS, wait this long for the outbox to drain (ms)", 0,
                                                    G_MAXUINT, DEFAULT_EOS_TIMEOUT, rw));
  g_object_class_install_property(gobject_class, PROP_MODEL_VERSION,
                                  g_param_spec_string("model-version", "Model version",
                                                      "Algorithm version written into the SR", nullptr, rw));
  g_object_class_install_property(
      gobject_class, PROP_DEBUG_PHI,
      g_param_spec_boolean("debug-phi", "Debug PHI", "Allow patient name, ID and birth date in logs and messages",
                           FALSE, rw));
  g_object_class_install_property(gobject_class, PROP_QUEUED,
                                  g_param_spec_uint64("queued", "Queued", "Scans whose objects were queued", 0,
                                                      G_MAXUINT64, 0, ro));
  g_object_class_install_property(gobject_class, PROP_SENT,
                                  g_param_spec_uint64("sent", "Sent", "Objects the peer stored", 0, G_MAXUINT64, 0, ro));

  gst_element_class_set_static_metadata(element_class, "DICOM SR / Secondary Capture sink", "Sink/Network",
                                        "Sends each scan's results to a PACS as DICOM SR and Secondary Capture",
                                        "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);

  basesink_class->start = GST_DEBUG_FUNCPTR(gst_cxr_dicom_sink_start);
  basesink_class->stop = GST_DEBUG_FUNCPTR(gst_cxr_dicom_sink_stop);
  basesink_class->set_caps = GST_DEBUG_FUNCPTR(gst_cxr_dicom_sink_set_caps);
  basesink_class->event = GST_DEBUG_FUNCPTR(gst_cxr_dicom_sink_event);
  basesink_class->render = GST_DEBUG_FUNCPTR(gst_cxr_dicom_sink_render);
  GST_DEBUG_CATEGORY_INIT(gst_cxr_dicom_sink_debug, "cxrdicomsink", 0, "DICOM SR / Secondary Capture sink");
}

static void gst_cxr_dicom_sink_init(GstCxrDicomSink *self) {
  self->peer_ae_title = g_strdup(DEFAULT_PEER_AE_TITLE);
  self->ae_title = g_strdup(DEFAULT_AE_TITLE);
  self->retry_initial = DEFAULT_RETRY_INITIAL;
  self->retry_max = DEFAULT_RETRY_MAX;
  self->timeout = DEFAULT_TIMEOUT;
  self->eos_timeout = DEFAULT_EOS_TIMEOUT;
  gst_base_sink_set_sync(GST_BASE_SINK(self), FALSE);
}
