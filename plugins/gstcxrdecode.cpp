// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrdecode
 *
 * Decodes encoded chest X-ray scans (PNG, JPEG, DICOM; found from the content, not the file
 * name) into GRAY8 (sources of 8 bits or fewer) or GRAY16_LE frames. 16-bit frames use the
 * whole 0..65535 range: a b-bit source is scaled by bit replication, so `pixel / 65535` is the
 * intensity. DICOM MONOCHROME1 is inverted and the Modality LUT / rescale applied; the VOI LUT
 * or window only with `apply-voi=true`. RGB, RGBA and palette PNGs and colour JPEGs are turned
 * grey exactly as torchvision's `read_image(..., ImageReadMode.GRAY)` does.
 *
 * Input is one whole file per buffer (cxrscansrc, multifilesrc, appsrc). From plain filesrc the
 * blocks are gathered until the size upstream reports (or EOS). A scan that cannot be decoded
 * becomes a warning plus a cxr-scan-error event (`on-error=skip`) or an element error
 * (`on-error=stop`). Caps follow each scan's size and depth.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=scan.dcm ! cxrdecode ! videoconvert ! pngenc ! filesink location=scan.png
 * ]|
 */
#include "gstcxrdecode.h"

#include <gst/base/gstadapter.h>
#include <gst/video/video.h>

#include <string>

#include "cxr/error.hpp"
#include "cxr/io/decode.hpp"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrguard.hpp"
#include "gst/gstcxrmeta.h"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_decode_debug);
#define GST_CAT_DEFAULT gst_cxr_decode_debug

enum { PROP_0, PROP_ON_ERROR, PROP_MAX_PIXELS, PROP_FORCE_8BIT, PROP_APPLY_VOI };
#define DEFAULT_ON_ERROR GST_CXR_ON_ERROR_SKIP
#define DEFAULT_MAX_PIXELS (G_GUINT64_CONSTANT(64) * 1024 * 1024)
#define DEFAULT_FORCE_8BIT FALSE
#define DEFAULT_APPLY_VOI FALSE

struct _GstCxrDecode {
  GstElement parent;
  GstPad* sinkpad;
  GstPad* srcpad;

  GstCxrOnError on_error;
  guint64 max_pixels;
  gboolean force_8bit;
  gboolean apply_voi;

  GstAdapter* adapter;     // blocks of one file from a byte-stream source
  gint64 expected_bytes;   // size of the file being gathered, -1 when not gathering
  GstBuffer* first_block;  // timestamps of the file being gathered
  GstEvent* pending_segment;  // held until the first caps are known
};

G_DEFINE_TYPE(GstCxrDecode, gst_cxr_decode, GST_TYPE_ELEMENT)
GST_ELEMENT_REGISTER_DEFINE(cxrdecode, "cxrdecode", GST_RANK_NONE, gst_cxr_decode_get_type())

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
                                                                    GST_STATIC_CAPS("application/x-cxr-scan; ANY"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS,
                                                                   GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE("{ GRAY8, GRAY16_LE }")));

static void gst_cxr_decode_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstCxrDecode* self = GST_CXR_DECODE(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_ON_ERROR: self->on_error = static_cast<GstCxrOnError>(g_value_get_enum(value)); break;
    case PROP_MAX_PIXELS: self->max_pixels = g_value_get_uint64(value); break;
    case PROP_FORCE_8BIT: self->force_8bit = g_value_get_boolean(value); break;
    case PROP_APPLY_VOI: self->apply_voi = g_value_get_boolean(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_decode_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstCxrDecode* self = GST_CXR_DECODE(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_ON_ERROR: g_value_set_enum(value, self->on_error); break;
    case PROP_MAX_PIXELS: g_value_set_uint64(value, self->max_pixels); break;
    case PROP_FORCE_8BIT: g_value_set_boolean(value, self->force_8bit); break;
    case PROP_APPLY_VOI: g_value_set_boolean(value, self->apply_voi); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_decode_reset(GstCxrDecode* self) {
  gst_adapter_clear(self->adapter);
  self->expected_bytes = -1;
  gst_clear_buffer(&self->first_block);
  gst_clear_event(&self->pending_segment);
}

// The file name upstream reports (filesrc answers a URI query), or NULL.
static gchar* gst_cxr_decode_upstream_path(GstCxrDecode* self) {
  GstQuery* query = gst_query_new_uri();
  gchar* path = nullptr;
  if (gst_pad_peer_query(self->sinkpad, query)) {
    gchar* uri = nullptr;
    gst_query_parse_uri(query, &uri);
    if (uri) {
      path = g_str_has_prefix(uri, "file:") ? g_filename_from_uri(uri, nullptr, nullptr) : nullptr;
      if (!path) path = g_strdup(uri);
      g_free(uri);
    }
  }
  gst_query_unref(query);
  return path;
}

static void gst_cxr_decode_fill_meta(GstCxrScanMeta* meta, const cxr::io::Image& image) {
  meta->bits_stored = static_cast<guint>(image.bits_stored);
  gst_cxr_meta_set_string(&meta->photometric, image.photometric.c_str());
  const cxr::io::DicomInfo& d = image.dicom;
  if (!d.patient_id.empty()) gst_cxr_meta_set_string(&meta->patient_id, d.patient_id.c_str());
  if (!d.study_uid.empty()) gst_cxr_meta_set_string(&meta->study_uid, d.study_uid.c_str());
  if (!d.series_uid.empty()) gst_cxr_meta_set_string(&meta->series_uid, d.series_uid.c_str());
  if (!d.sop_uid.empty()) gst_cxr_meta_set_string(&meta->sop_uid, d.sop_uid.c_str());
}

// Decodes one whole file (taking ownership) and pushes the frame; `stamps` (not owned) gives
// timestamps and offsets: the file itself, or the first block of a gathered file.
static GstFlowReturn gst_cxr_decode_scan(GstCxrDecode* self, GstBuffer* file, GstBuffer* stamps) {
  const gboolean whole = stamps == file;
  const GstClockTime pts = GST_BUFFER_PTS(stamps), dts = GST_BUFFER_DTS(stamps);
  const GstClockTime duration = GST_BUFFER_DURATION(stamps);
  const guint64 offset = GST_BUFFER_OFFSET(stamps), offset_end = GST_BUFFER_OFFSET_END(stamps);

  cxr::io::DecodeParams params;
  GstCxrOnError mode;
  GST_OBJECT_LOCK(self);
  params.max_pixels = self->max_pixels;
  params.force_8bit = self->force_8bit;
  params.apply_voi = self->apply_voi;
  mode = self->on_error;
  GST_OBJECT_UNLOCK(self);

  // Every scan carries a scan meta, so errors and results name their file.
  if (!gst_buffer_get_cxr_scan_meta(file)) {
    file = gst_buffer_make_writable(file);
    GstCxrScanMeta* meta = gst_buffer_add_cxr_scan_meta(file);
    gchar* path = gst_cxr_decode_upstream_path(self);
    gst_cxr_meta_set_string(&meta->path, path);
    g_free(path);
    // multifilesrc numbers its files in the offset.
    if (whole && offset != GST_BUFFER_OFFSET_NONE) meta->index = offset;
  }

  gboolean failed;
  GstFlowReturn ret = gst_cxr_guard_scan(GST_ELEMENT(self), self->srcpad, file, mode, &failed, [&] {
    GstMapInfo map;
    if (!gst_buffer_map(file, &map, GST_MAP_READ)) throw cxr::DecodeError("cannot map the input buffer");
    cxr::io::Image image;
    try {
      image = cxr::io::decode(map.data, map.size, params);
    } catch (...) {
      gst_buffer_unmap(file, &map);
      throw;
    }
    gst_buffer_unmap(file, &map);

    GstBuffer* out = gst_cxr_buffer_wrap_mat(image.pixels);
    GST_BUFFER_PTS(out) = pts;
    GST_BUFFER_DTS(out) = dts;
    GST_BUFFER_DURATION(out) = duration;
    GST_BUFFER_OFFSET(out) = offset;
    GST_BUFFER_OFFSET_END(out) = offset_end;
    GstCxrScanMeta* meta = gst_buffer_add_cxr_scan_meta(out);
    gst_cxr_scan_meta_copy_into(meta, gst_buffer_get_cxr_scan_meta(file));
    gst_cxr_decode_fill_meta(meta, image);

    // Caps follow the scan: push new ones only when size or depth changed.
    GstCaps* caps = gst_cxr_caps_for_mat(image.pixels);
    GstCaps* current = gst_pad_get_current_caps(self->srcpad);
    if (!current || !gst_caps_is_equal(caps, current)) {
      GST_DEBUG_OBJECT(self, "new caps %" GST_PTR_FORMAT, caps);
      gst_pad_push_event(self->srcpad, gst_event_new_caps(caps));
    }
    if (current) gst_caps_unref(current);
    gst_caps_unref(caps);
    if (self->pending_segment) {
      gst_pad_push_event(self->srcpad, self->pending_segment);
      self->pending_segment = nullptr;
    }
    return gst_pad_push(self->srcpad, out);
  });
  gst_buffer_unref(file);
  return failed && ret == GST_FLOW_OK ? GST_FLOW_OK : ret;
}

// Gathered blocks of one file, as one buffer stamped like its first block.
static GstFlowReturn gst_cxr_decode_flush_gathered(GstCxrDecode* self) {
  const gsize avail = gst_adapter_available(self->adapter);
  GstBuffer* stamps = self->first_block;
  self->first_block = nullptr;
  self->expected_bytes = -1;
  if (avail == 0) {
    gst_clear_buffer(&stamps);
    return GST_FLOW_OK;
  }
  GstBuffer* file = gst_adapter_take_buffer(self->adapter, avail);
  GstFlowReturn ret = gst_cxr_decode_scan(self, file, stamps ? stamps : file);
  gst_clear_buffer(&stamps);
  return ret;
}

static GstFlowReturn gst_cxr_decode_chain(GstPad* pad, GstObject* parent, GstBuffer* buf) {
  GstCxrDecode* self = GST_CXR_DECODE(parent);
  if (self->expected_bytes < 0) {
    gint64 total = -1;
    // A buffer without scan meta may be the first block of a file from a byte-stream source.
    if (!gst_buffer_get_cxr_scan_meta(buf) && gst_pad_peer_query_duration(pad, GST_FORMAT_BYTES, &total) &&
        total > static_cast<gint64>(gst_buffer_get_size(buf))) {
      self->expected_bytes = total;
      self->first_block = gst_buffer_copy_region(buf, GST_BUFFER_COPY_METADATA, 0, 0);
    } else {
      return gst_cxr_decode_scan(self, buf, buf);
    }
  }
  gst_adapter_push(self->adapter, buf);
  if (static_cast<gint64>(gst_adapter_available(self->adapter)) >= self->expected_bytes)
    return gst_cxr_decode_flush_gathered(self);
  return GST_FLOW_OK;
}

static gboolean gst_cxr_decode_sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  GstCxrDecode* self = GST_CXR_DECODE(parent);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_CAPS:
      // Output caps come from each decoded scan.
      gst_event_unref(event);
      return TRUE;
    case GST_EVENT_SEGMENT: {
      const GstSegment* in;
      gst_event_parse_segment(event, &in);
      if (in->format != GST_FORMAT_TIME) {
        // Byte segments of a file source mean nothing to raw video downstream.
        GstSegment seg;
        gst_segment_init(&seg, GST_FORMAT_TIME);
        GstEvent* time_event = gst_event_new_segment(&seg);
        gst_event_set_seqnum(time_event, gst_event_get_seqnum(event));
        gst_event_unref(event);
        event = time_event;
      }
      if (!gst_pad_has_current_caps(self->srcpad)) {
        gst_clear_event(&self->pending_segment);
        self->pending_segment = event;
        return TRUE;
      }
      return gst_pad_push_event(self->srcpad, event);
    }
    case GST_EVENT_EOS:
      if (gst_adapter_available(self->adapter) > 0) gst_cxr_decode_flush_gathered(self);
      break;
    case GST_EVENT_FLUSH_STOP:
      gst_adapter_clear(self->adapter);
      self->expected_bytes = -1;
      gst_clear_buffer(&self->first_block);
      break;
    default: break;
  }
  return gst_pad_event_default(pad, parent, event);
}

static GstStateChangeReturn gst_cxr_decode_change_state(GstElement* element, GstStateChange transition) {
  GstCxrDecode* self = GST_CXR_DECODE(element);
  GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_cxr_decode_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) gst_cxr_decode_reset(self);
  return ret;
}

static void gst_cxr_decode_finalize(GObject* object) {
  GstCxrDecode* self = GST_CXR_DECODE(object);
  gst_cxr_decode_reset(self);
  g_object_unref(self->adapter);
  G_OBJECT_CLASS(gst_cxr_decode_parent_class)->finalize(object);
}

static void gst_cxr_decode_class_init(GstCxrDecodeClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);

  gobject_class->set_property = gst_cxr_decode_set_property;
  gobject_class->get_property = gst_cxr_decode_get_property;
  gobject_class->finalize = gst_cxr_decode_finalize;
  const GParamFlags flags =
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);

  g_object_class_install_property(
      gobject_class, PROP_ON_ERROR,
      g_param_spec_enum("on-error", "On error", "What to do with a scan that cannot be decoded", GST_TYPE_CXR_ON_ERROR,
                        DEFAULT_ON_ERROR, flags));
  g_object_class_install_property(
      gobject_class, PROP_MAX_PIXELS,
      g_param_spec_uint64("max-pixels", "Max pixels",
                          "Largest width x height accepted, checked from the header before decoding", 1, G_MAXUINT64,
                          DEFAULT_MAX_PIXELS, flags));
  g_object_class_install_property(
      gobject_class, PROP_FORCE_8BIT,
      g_param_spec_boolean("force-8bit", "Force 8-bit", "Output GRAY8 also for deeper scans (top 8 bits)",
                           DEFAULT_FORCE_8BIT, flags));
  g_object_class_install_property(
      gobject_class, PROP_APPLY_VOI,
      g_param_spec_boolean("apply-voi", "Apply VOI", "DICOM: apply the VOI LUT or window the file carries",
                           DEFAULT_APPLY_VOI, flags));

  gst_element_class_set_static_metadata(element_class, "Chest X-ray scan decoder", "Codec/Decoder/Image",
                                        "Decodes PNG, JPEG and DICOM scans to GRAY8 / GRAY16_LE",
                                        "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_cxr_decode_change_state);
  GST_DEBUG_CATEGORY_INIT(gst_cxr_decode_debug, "cxrdecode", 0, "Chest X-ray scan decoder");
}

static void gst_cxr_decode_init(GstCxrDecode* self) {
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_cxr_decode_chain));
  gst_pad_set_event_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_cxr_decode_sink_event));
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_use_fixed_caps(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);

  self->on_error = DEFAULT_ON_ERROR;
  self->max_pixels = DEFAULT_MAX_PIXELS;
  self->force_8bit = DEFAULT_FORCE_8BIT;
  self->apply_voi = DEFAULT_APPLY_VOI;
  self->adapter = gst_adapter_new();
  self->expected_bytes = -1;
  self->first_block = nullptr;
  self->pending_segment = nullptr;
}
