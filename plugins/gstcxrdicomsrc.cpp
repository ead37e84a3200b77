// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrdicomsrc
 *
 * A DICOM storage SCP (C-STORE receiver) as a live source: each instance a PACS or modality
 * sends is written durably to the `inbox` folder before the sender gets its success response,
 * then emitted as one buffer (the file's bytes, caps `application/x-cxr-scan`, as cxrscansrc)
 * with a GstCxrScanMeta: path = the inbox file, patient id, study / series / SOP instance UIDs.
 * Accepted: CR, DX and Secondary Capture (incl. multi-frame grayscale byte/word) in the
 * transfer syntaxes cxrdecode reads. Calling AE titles not in `allowed-callers` are refused at
 * association time; more than `max-associations` concurrent associations are rejected; a peer
 * silent for `timeout` seconds is disconnected. While the inbox's file system has less than
 * `min-free-space` bytes free, C-STOREs are answered 0xA700 (out of resources) and nothing is
 * written.
 *
 * The inbox file stays until the stream has finished with it: cxrdicomsink (or any element)
 * sends the upstream custom event `cxr-inbox-done` (field `path`) and this element deletes the
 * file. Files still in the inbox when the element starts (a previous run crashed or stopped
 * first) are emitted again, oldest first, before new ones. The source runs until EOS is sent
 * (`gst-launch-1.0 -e` on Ctrl-C) or the pipeline stops.
 *
 * Patient identity (name, ID, birth date) appears in logs and bus messages only with
 * `debug-phi=true`; the scan meta always carries the patient ID for downstream elements.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e cxrdicomsrc port=11112 ae-title=GSTCXR allowed-callers=MODALITY1,ORTHANC inbox=/var/lib/gst-cxr/inbox ! cxrdecode ! cxrresultsink location=received.jsonl
 * ]|
 */
#include "gstcxrdicomsrc.h"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "cxr/dicom/durable.hpp"
#include "cxr/dicom/store_scp.hpp"
#include "cxr/error.hpp"
#include "cxr/util/text.hpp"
#include "gst/gstcxrevents.h"
#include "gst/gstcxrguard.hpp"
#include "gst/gstcxrmeta.h"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_dicom_src_debug);
#define GST_CAT_DEFAULT gst_cxr_dicom_src_debug

/* Upstream custom event: the stream is done with an inbox file. Field: path (string). */
#define CXR_EVENT_INBOX_DONE "cxr-inbox-done"

enum {
  PROP_0,
  PROP_PORT,
  PROP_AE_TITLE,
  PROP_ALLOWED_CALLERS,
  PROP_MAX_ASSOCIATIONS,
  PROP_INBOX,
  PROP_DEBUG_PHI,
  PROP_RECEIVED,
  PROP_TIMEOUT,
  PROP_MIN_FREE_SPACE,
};
#define DEFAULT_PORT 11112
#define DEFAULT_AE_TITLE "GSTCXR"
#define DEFAULT_MAX_ASSOCIATIONS 4
#define DEFAULT_TIMEOUT 60
#define DEFAULT_MIN_FREE_SPACE (G_GUINT64_CONSTANT(64) << 20)

namespace {

// Instances waiting to be emitted, filled by the SCP's worker threads.
struct Queue {
  std::mutex mutex;
  std::condition_variable cond;
  std::deque<cxr::dicom::InstanceInfo> items;
  bool flushing = false;
};

}  // namespace

struct _GstCxrDicomSrc {
  GstPushSrc parent;

  guint port;
  gchar *ae_title;
  gchar *allowed_callers;
  guint max_associations;
  gchar *inbox;
  gboolean debug_phi;
  guint timeout;
  guint64 min_free_space;

  Queue *queue;                  // created in start(), deleted in stop()
  cxr::dicom::StoreScp *scp;     // idem
  std::string *inbox_dir;        // the inbox in use, for cxr-inbox-done
  guint64 index;
  guint64 received;
};

G_DEFINE_TYPE(GstCxrDicomSrc, gst_cxr_dicom_src, GST_TYPE_PUSH_SRC)
GST_ELEMENT_REGISTER_DEFINE(cxrdicomsrc, "cxrdicomsrc", GST_RANK_NONE, gst_cxr_dicom_src_get_type())

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("application/x-cxr-scan"));

static void gst_cxr_dicom_src_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec) {
  GstCxrDicomSrc *self = GST_CXR_DICOM_SRC(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_PORT: self->port = g_value_get_uint(value); break;
    case PROP_AE_TITLE: gst_cxr_meta_set_string(&self->ae_title, g_value_get_string(value)); break;
    case PROP_ALLOWED_CALLERS: gst_cxr_meta_set_string(&self->allowed_callers, g_value_get_string(value)); break;
    case PROP_MAX_ASSOCIATIONS: self->max_associations = g_value_get_uint(value); break;
    case PROP_INBOX: gst_cxr_meta_set_string(&self->inbox, g_value_get_string(value)); break;
    case PROP_DEBUG_PHI: self->debug_phi = g_value_get_boolean(value); break;
    case PROP_TIMEOUT: self->timeout = g_value_get_uint(value); break;
    case PROP_MIN_FREE_SPACE: self->min_free_space = g_value_get_uint64(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_dicom_src_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec) {
  GstCxrDicomSrc *self = GST_CXR_DICOM_SRC(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_PORT: g_value_set_uint(value, self->port); break;
    case PROP_AE_TITLE: g_value_set_string(value, self->ae_title); break;
    case PROP_ALLOWED_CALLERS: g_value_set_string(value, self->allowed_callers); break;
    case PROP_MAX_ASSOCIATIONS: g_value_set_uint(value, self->max_associations); break;
    case PROP_INBOX: g_value_set_string(value, self->inbox); break;
    case PROP_DEBUG_PHI: g_value_set_boolean(value, self->debug_phi); break;
    case PROP_RECEIVED: g_value_set_uint64(value, self->received); break;
    case PROP_TIMEOUT: g_value_set_uint(value, self->timeout); break;
    case PROP_MIN_FREE_SPACE: g_value_set_uint64(value, self->min_free_space); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void enqueue(Queue *q, const cxr::dicom::InstanceInfo &info) {
  {
    std::lock_guard<std::mutex> lock(q->mutex);
    q->items.push_back(info);
  }
  q->cond.notify_one();
}

static gboolean gst_cxr_dicom_src_start(GstBaseSrc *src) {
  GstCxrDicomSrc *self = GST_CXR_DICOM_SRC(src);
  return gst_cxr_guard_bool(GST_ELEMENT(self), [&] {
    cxr::dicom::ScpParams p;
    GST_OBJECT_LOCK(self);
    p.port = static_cast<int>(self->port);
    p.ae_title = self->ae_title ? self->ae_title : "";
    p.allowed_callers = cxr::util::split_commas(self->allowed_callers);
    p.max_associations = static_cast<int>(self->max_associations);
    p.inbox = self->inbox ? self->inbox : "";
    const bool phi = self->debug_phi;
    p.dimse_timeout_s = static_cast<int>(self->timeout);
    p.acse_timeout_s = std::min(p.acse_timeout_s, p.dimse_timeout_s);
    p.min_free_bytes = self->min_free_space;
    GST_OBJECT_UNLOCK(self);
    while (p.inbox.size() > 1 && p.inbox.back() == '/') p.inbox.pop_back();
    if (p.inbox.empty()) throw cxr::InvalidArgument("no inbox folder set");

    auto *queue = new Queue();
    // Leftovers first: a previous run received them and never finished them.
    cxr::dicom::make_dirs(p.inbox);
    const auto leftovers = cxr::dicom::StoreScp::leftovers(p.inbox);
    for (const auto &path : leftovers) {
      cxr::dicom::InstanceInfo info;
      try {
        info = cxr::dicom::read_instance_info(path);
      } catch (const std::exception &) {
        info.path = path;  // emitted anyway: cxrdecode turns it into an error row, which releases it
      }
      queue->items.push_back(info);
    }
    if (!leftovers.empty())
      GST_ELEMENT_INFO(self, RESOURCE, READ, ("%zu instances left in the inbox by a previous run are emitted again",
                                              leftovers.size()),
                       (nullptr));
    GstElement *element = GST_ELEMENT(self);
    auto *scp = new cxr::dicom::StoreScp(
        p,
        [queue, element, phi](const cxr::dicom::InstanceInfo &info) {
          GST_DEBUG_OBJECT(element, "received %s (%s)", info.sop_instance_uid.c_str(),
                           cxr::dicom::describe_patient(info, phi).c_str());
          enqueue(queue, info);
        },
        [element](const std::string &why) {
          GST_ELEMENT_ERROR(element, RESOURCE, OPEN_READ, ("%s", why.c_str()), (nullptr));
        });
    try {
      scp->start();
    } catch (...) {
      delete scp;
      delete queue;
      throw;
    }
    self->queue = queue;
    self->scp = scp;
    self->inbox_dir = new std::string(p.inbox);
    self->index = 0;
    GST_INFO_OBJECT(self, "listening on port %d as %s", p.port, p.ae_title.c_str());
    return TRUE;
  });
}

static gboolean gst_cxr_dicom_src_stop(GstBaseSrc *src) {
  GstCxrDicomSrc *self = GST_CXR_DICOM_SRC(src);
  if (self->scp) self->scp->stop();  // joins the workers: nothing enqueues after this
  delete self->scp;
  self->scp = nullptr;
  delete self->queue;
  self->queue = nullptr;
  delete self->inbox_dir;
  self->inbox_dir = nullptr;
  return TRUE;
}

static gboolean gst_cxr_dicom_src_unlock(GstBaseSrc *src) {
  GstCxrDicomSrc *self = GST_CXR_DICOM_SRC(src);
  if (Queue *q = self->queue) {
    std::lock_guard<std::mutex> lock(q->mutex);
    q->flushing = true;
    q->cond.notify_all();
  }
  return TRUE;
}

static gboolean gst_cxr_dicom_src_unlock_stop(GstBaseSrc *src) {
  GstCxrDicomSrc *self = GST_CXR_DICOM_SRC(src);
  if (Queue *q = self->queue) {
    std::lock_guard<std::mutex> lock(q->mutex);
    q->flushing = false;
  }
  return TRUE;
}

// The stream is done with an inbox file: delete it (only files of our own inbox).
static gboolean gst_cxr_dicom_src_event(GstBaseSrc *src, GstEvent *event) {
  GstCxrDicomSrc *self = GST_CXR_DICOM_SRC(src);
  if (GST_EVENT_TYPE(event) == GST_EVENT_CUSTOM_UPSTREAM) {
    const GstStructure *s = gst_event_get_structure(event);
    if (s && gst_structure_has_name(s, CXR_EVENT_INBOX_DONE)) {
      const gchar *path = gst_structure_get_string(s, "path");
      if (!path || !self->inbox_dir) return FALSE;
      gchar *dir = g_path_get_dirname(path);
      const bool ours = *self->inbox_dir == dir;
      g_free(dir);
      if (!ours) return FALSE;
      try {
        cxr::dicom::remove_durably(path);
        GST_DEBUG_OBJECT(self, "inbox: %s done", path);
      } catch (const std::exception &e) {
        GST_ELEMENT_WARNING(self, RESOURCE, WRITE, ("%s", e.what()), (nullptr));
      }
      return TRUE;
    }
  }
  return GST_BASE_SRC_CLASS(gst_cxr_dicom_src_parent_class)->event(src, event);
}

// Reads a whole file into a new buffer; nullptr and reason on failure.
static GstBuffer *read_file(const std::string &path, std::string &reason) {
  gchar *data = nullptr;
  gsize size = 0;
  GError *err = nullptr;
  if (!g_file_get_contents(path.c_str(), &data, &size, &err)) {
    reason = err->message;
    g_error_free(err);
    return nullptr;
  }
  return gst_buffer_new_wrapped(data, size);
}

static void fill_meta(GstCxrScanMeta *meta, const cxr::dicom::InstanceInfo &info, guint64 index) {
  gst_cxr_meta_set_string(&meta->path, info.path.c_str());
  meta->index = index;
  if (!info.patient_id.empty()) gst_cxr_meta_set_string(&meta->patient_id, info.patient_id.c_str());
  if (!info.study_uid.empty()) gst_cxr_meta_set_string(&meta->study_uid, info.study_uid.c_str());
  if (!info.series_uid.empty()) gst_cxr_meta_set_string(&meta->series_uid, info.series_uid.c_str());
  if (!info.sop_instance_uid.empty()) gst_cxr_meta_set_string(&meta->sop_uid, info.sop_instance_uid.c_str());
}

static GstFlowReturn gst_cxr_dicom_src_create(GstPushSrc *psrc, GstBuffer **outbuf) {
  GstCxrDicomSrc *self = GST_CXR_DICOM_SRC(psrc);
  Queue *q = self->queue;
  if (!q) return GST_FLOW_ERROR;
  for (;;) {
    cxr::dicom::InstanceInfo info;
    {
      std::unique_lock<std::mutex> lock(q->mutex);
      q->cond.wait(lock, [q] { return q->flushing || !q->items.empty(); });
      if (q->flushing) return GST_FLOW_FLUSHING;
      info = std::move(q->items.front());
      q->items.pop_front();
    }
    const guint64 index = self->index++;
    std::string reason;
    GstBuffer *buf = read_file(info.path, reason);
    if (!buf) {
      // Gone (e.g. deleted by hand): nothing to release, the stream goes on.
      GST_ELEMENT_WARNING(self, RESOURCE, READ, ("Cannot read inbox file %s: %s", info.path.c_str(), reason.c_str()),
                          (nullptr));
      continue;
    }
    fill_meta(gst_buffer_add_cxr_scan_meta(buf), info, index);
    GST_BUFFER_OFFSET(buf) = index;
    GST_BUFFER_OFFSET_END(buf) = index + 1;
    GST_OBJECT_LOCK(self);
    self->received++;
    GST_OBJECT_UNLOCK(self);
    *outbuf = buf;
    return GST_FLOW_OK;
  }
}

static void gst_cxr_dicom_src_finalize(GObject *object) {
  GstCxrDicomSrc *self = GST_CXR_DICOM_SRC(object);
  g_free(self->ae_title);
  g_free(self->allowed_callers);
  g_free(self->inbox);
  delete self->scp;
  delete self->queue;
  delete self->inbox_dir;
  G_OBJECT_CLASS(gst_cxr_dicom_src_parent_class)->finalize(object);
}

static void gst_cxr_dicom_src_class_init(GstCxrDicomSrcClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSrcClass *basesrc_class = GST_BASE_SRC_CLASS(klass);
  GstPushSrcClass *pushsrc_class = GST_PUSH_SRC_CLASS(klass);

  gobject_class->set_property = gst_cxr_dicom_src_set_property;
  gobject_class->get_property = gst_cxr_dicom_src_get_property;
  gobject_class->finalize = gst_cxr_dicom_src_finalize;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(gobject_class, PROP_PORT,
                                  g_param_spec_uint("port", "Port", "TCP port of the storage SCP", 1, 65535,
                                                    DEFAULT_PORT, rw));
  g_object_class_install_property(gobject_class, PROP_AE_TITLE,
                                  g_param_spec_string("ae-title", "AE title",
                                                      "Our AE title; associations calling another one are refused",
                                                      DEFAULT_AE_TITLE, rw));
  g_object_class_install_property(
      gobject_class, PROP_ALLOWED_CALLERS,
      g_param_spec_string("allowed-callers", "Allowed callers",
                          "Comma-separated calling AE titles accepted (unset: any); others are refused", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_MAX_ASSOCIATIONS,
                                  g_param_spec_uint("max-associations", "Max associations",
                                                    "Concurrent associations served; more are rejected", 1, 1000,
                                                    DEFAULT_MAX_ASSOCIATIONS, rw));
  g_object_class_install_property(
      gobject_class, PROP_INBOX,
      g_param_spec_string("inbox", "Inbox", "Folder received instances are kept in until processed (required)",
                          nullptr, rw));
  g_object_class_install_property(
      gobject_class, PROP_DEBUG_PHI,
      g_param_spec_boolean("debug-phi", "Debug PHI", "Allow patient name, ID and birth date in logs and messages",
                           FALSE, rw));
  g_object_class_install_property(
      gobject_class, PROP_TIMEOUT,
      g_param_spec_uint("timeout", "Timeout",
                        "Seconds an association may stay silent (between and within messages) before it is "
                        "disconnected; a new connection has at most 5 s to send its association request",
                        1, 3600, DEFAULT_TIMEOUT, rw));
  g_object_class_install_property(
      gobject_class, PROP_MIN_FREE_SPACE,
      g_param_spec_uint64("min-free-space", "Min free space",
                          "Bytes the inbox's file system must keep free; below it C-STOREs are answered 0xA700 "
                          "(out of resources) and nothing is written (0: no check)",
                          0, G_MAXUINT64, DEFAULT_MIN_FREE_SPACE, rw));
  g_object_class_install_property(gobject_class, PROP_RECEIVED,
                                  g_param_spec_uint64("received", "Received", "Instances emitted so far", 0,
                                                      G_MAXUINT64, 0,
                                                      static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_set_static_metadata(element_class, "DICOM storage SCP source", "Source/Network",
                                        "Receives scans by DICOM C-STORE into a durable inbox, one buffer per instance",
                                        "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &src_template);

  basesrc_class->start = GST_DEBUG_FUNCPTR(gst_cxr_dicom_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR(gst_cxr_dicom_src_stop);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR(gst_cxr_dicom_src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR(gst_cxr_dicom_src_unlock_stop);
  basesrc_class->event = GST_DEBUG_FUNCPTR(gst_cxr_dicom_src_event);
  pushsrc_class->create = GST_DEBUG_FUNCPTR(gst_cxr_dicom_src_create);
  GST_DEBUG_CATEGORY_INIT(gst_cxr_dicom_src_debug, "cxrdicomsrc", 0, "DICOM storage SCP source");
}

static void gst_cxr_dicom_src_init(GstCxrDicomSrc *self) {
  self->port = DEFAULT_PORT;
  self->ae_title = g_strdup(DEFAULT_AE_TITLE);
  self->max_associations = DEFAULT_MAX_ASSOCIATIONS;
  self->timeout = DEFAULT_TIMEOUT;
  self->min_free_space = DEFAULT_MIN_FREE_SPACE;
  gst_base_src_set_live(GST_BASE_SRC(self), TRUE);
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
  gst_base_src_set_do_timestamp(GST_BASE_SRC(self), TRUE);
}
