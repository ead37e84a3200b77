// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrinfer
 *
 * Classifies grey scans with a model card (architecture, classes, input size, normalisation,
 * weights; see docs/model-card.md). Each frame passes through unchanged, carrying a
 * GstCxrResultMeta (logits, probabilities, decisions, optionally the penultimate embedding); a
 * `cxr-result` element message (timestamp, running-time, stream-time, path, model, classes,
 * logits, probabilities, predicted, top-class) is posted for each scan. The network sees a
 * copy scaled to the card's input size.
 *
 * Frames are batched: `batch-size` scans go through the network together; a partial batch
 * runs when `batch-timeout` expires, on EOS and before a drain. Serialized events keep their
 * place between the frames. The model loads when the element starts (READY -> PAUSED); a
 * missing or inconsistent model is an element error then.
 *
 * The network runs on the element's own thread, which then pushes the batch's frames
 * downstream (a downstream element runs on that thread: put a `queue` after cxrinfer to give
 * it its own). With `overlap` (the default), the streaming thread meanwhile prepares the next
 * batch (upstream work, then scaling and normalising each scan into a second input buffer) and
 * queues it, so that the network runs back to back; at most one batch per stream is in flight
 * while the next fills. Without it, the streaming thread waits for each batch.
 *
 * `engine` picks what runs the network. With `engine=auto` (the default) MobileNetV3-Large and
 * EfficientNet-B1 run on the CPU in fp32 on XNNPACK (cxr/engine/xnn_network.hpp): every BatchNorm
 * folded into its convolution, ReLU and Hardsigmoid fused into the convolution's output clamp,
 * NHWC activations in a few reused buffers, residual adds, Hardswish and SiLU in place, and the
 * weights packed once when the element starts (once more for each stream that runs at the same
 * time). LibTorch runs everything else (CUDA, fp16/bf16, TorchScript cards, and ResNet-34, whose
 * Winograd and oneDNN layouts measured faster) and whatever sets `memory-format` to other than
 * auto; `engine=libtorch` asks for it, `engine=xnnpack` runs ResNet-34 on XNNPACK too and refuses
 * to start where XNNPACK cannot run. Both give the same probabilities within float rounding
 * (tests/parity). The element's INFO log names the engine.
 *
 * With LibTorch on the CPU, `memory-format=auto` (the default) runs the layout remembered for this machine,
 * model, input size, batch size, threads and streams in `layout-cache` (by default
 * `$XDG_CACHE_HOME/gst-cxr/layouts.tsv`). Without one, it times the layouts the network has
 * (channels-last, and NCHW or, for ResNet-34, oneDNN's blocked tensors with convolution weights
 * packed once and channels-last with the 3x3 convolutions by Winograd F(2x2,3x3)) on the first
 * full batches of the stream itself: every candidate runs a warm-up batch and a timed one,
 * every scan gets its result (the layouts differ only by float rounding), and the fastest is
 * kept and remembered. The element's INFO log names the choice and how it was made.
 * `layout-cache=""` (or `CXR_LAYOUT_CACHE=off`) remembers nothing.
 * All LibTorch work (load, timing, every batch, whether the streaming thread or the
 * batch-timeout fills it) runs on one thread of the element's, "<name>:torch" (the name cut to
 * fit Linux's 15 characters), so that LibTorch keeps one OpenMP pool; `threads` sets its
 * intra-op threads.
 *
 * `streams` runs that many batches side by side, each on its own compute thread ("<name>:torch",
 * "<name>:torch1", ...) with `threads` intra-op threads (0: the cores shared out), one network
 * in memory for all; frames still leave in arrival order. A batch that finishes before one
 * handed over earlier waits for it, and the thread that finishes the earlier one pushes both, so
 * no compute thread idles on another's batch. On the CPU this is the throughput
 * setting: small networks (MobileNetV3, EfficientNet) keep one core busier on a batch of their
 * own than two cores on a shared one, where every layer ends in a wait for the slower thread.
 * Each scan then takes longer from arrival to result. With `overlap=false` the batches run one
 * at a time whatever `streams` says.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -m multifilesrc location=scan%03d.png caps=image/png ! pngdec ! videoconvert ! video/x-raw,format=GRAY8 ! cxrinfer model=covid.toml batch-size=8 batch-timeout=100000000 ! fakesink
 * ]|
 */
#include "gstcxrinfer.h"

#include <gst/video/video.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/models/batch_runner.hpp"
#include "cxr/models/card.hpp"
#include "cxr/models/input.hpp"
#include "cxr/models/layout_cache.hpp"
#include "cxr/models/predictor.hpp"
#include "cxr/runtime/blas.hpp"
#include "cxr/runtime/cpu.hpp"
#include "cxr/runtime/threads.hpp"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrguard.hpp"
#include "gst/gstcxrmeta.h"
#include "gst/gstcxrresult.hpp"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_infer_debug);
#define GST_CAT_DEFAULT gst_cxr_infer_debug

typedef enum {
  GST_CXR_PRECISION_FP32 = 0,
  GST_CXR_PRECISION_FP16 = 1,
  GST_CXR_PRECISION_BF16 = 2,
} GstCxrPrecision;

typedef enum {
  GST_CXR_MEMORY_FORMAT_AUTO = 0,
  GST_CXR_MEMORY_FORMAT_CHANNELS_LAST = 1,
  GST_CXR_MEMORY_FORMAT_CONTIGUOUS = 2,
  GST_CXR_MEMORY_FORMAT_ONEDNN = 3,
  GST_CXR_MEMORY_FORMAT_WINOGRAD = 4,
} GstCxrMemoryFormat;

typedef enum {
  GST_CXR_ENGINE_AUTO = 0,
  GST_CXR_ENGINE_LIBTORCH = 1,
  GST_CXR_ENGINE_XNNPACK = 2,
} GstCxrEngine;

static GType gst_cxr_engine_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_ENGINE_AUTO,
       "XNNPACK for mobilenet_v3_large and efficientnet_b1 on the CPU in fp32 with memory-format auto, else LibTorch",
       "auto"},
      {GST_CXR_ENGINE_LIBTORCH, "LibTorch (any device, precision, TorchScript cards)", "libtorch"},
      {GST_CXR_ENGINE_XNNPACK, "XNNPACK: BatchNorm folded, activations fused, weights packed at start (CPU, fp32, "
       "resnet34, mobilenet_v3_large, efficientnet_b1)", "xnnpack"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstCxrEngine", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

static GType gst_cxr_memory_format_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_MEMORY_FORMAT_AUTO, "The fastest, timed at start on the CPU", "auto"},
      {GST_CXR_MEMORY_FORMAT_CHANNELS_LAST, "Channels-last (NHWC)", "channels-last"},
      {GST_CXR_MEMORY_FORMAT_CONTIGUOUS, "Contiguous (NCHW)", "contiguous"},
      {GST_CXR_MEMORY_FORMAT_ONEDNN, "oneDNN blocked tensors, weights packed at start (CPU, fp32, resnet34)",
       "onednn"},
      {GST_CXR_MEMORY_FORMAT_WINOGRAD,
       "Channels-last, 3x3 convolutions by Winograd F(2x2,3x3), weights transformed at start (CPU, fp32, resnet34)",
       "winograd"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstCxrMemoryFormat", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

static GType gst_cxr_precision_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_CXR_PRECISION_FP32, "32-bit float", "fp32"},
      {GST_CXR_PRECISION_FP16, "16-bit float (CUDA only)", "fp16"},
      {GST_CXR_PRECISION_BF16, "bfloat16 (CUDA only)", "bf16"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstCxrPrecision", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

enum { PROP_0, PROP_MODEL, PROP_DEVICE, PROP_BATCH_SIZE, PROP_BATCH_TIMEOUT, PROP_PRECISION, PROP_EMBEDDINGS, PROP_THREADS, PROP_MEMORY_FORMAT, PROP_OVERLAP, PROP_STREAMS, PROP_LAYOUT_CACHE, PROP_ENGINE };
#define DEFAULT_DEVICE "auto"
#define DEFAULT_BATCH_SIZE 1
#define DEFAULT_BATCH_TIMEOUT 0
#define DEFAULT_PRECISION GST_CXR_PRECISION_FP32
#define DEFAULT_EMBEDDINGS FALSE
#define DEFAULT_THREADS 0
#define DEFAULT_MEMORY_FORMAT GST_CXR_MEMORY_FORMAT_AUTO
#define DEFAULT_ENGINE GST_CXR_ENGINE_AUTO
#define DEFAULT_OVERLAP TRUE
#define DEFAULT_STREAMS 1

#define CXR_GRAY_CAPS GST_VIDEO_CAPS_MAKE("{ GRAY8, GRAY16_LE }")

namespace {

/// A frame waiting for its batch to run: the BatchRunner's token for it.
struct Frame {
  GstBuffer* buffer = nullptr;
  GstStructure* message = nullptr;  // message fields known at arrival (times, path)
};

/// Everything C++ of one running element; created in start, deleted in stop.
struct InferState {
  std::unique_ptr<cxr::models::Predictor> predictor;
  // Batches, compute threads (one per stream: every LibTorch call of a stream, for the first
  // also the load and the layout timing, runs on its thread, which also pushes its batches'
  // frames downstream; see cxr::runtime::ComputeThread for why) and in-order delivery.
  // Declared after the predictor: its threads end before the predictor goes.
  std::unique_ptr<cxr::models::BatchRunner> runner;
  GstCxrResultModel model;

  // Stream state; guarded by the sink pad's stream lock.
  GstVideoInfo info;
  bool have_info = false;
  GstSegment segment;
};

static_assert(GST_FLOW_OK == cxr::models::BatchRunner::kOk, "the runner's flow is a GstFlowReturn");

}  // namespace

struct _GstCxrInfer {
  GstElement parent;
  GstPad* sinkpad;
  GstPad* srcpad;

  gchar* model;
  gchar* device;
  guint batch_size;
  guint64 batch_timeout;
  GstCxrPrecision precision;
  gboolean embeddings;
  guint threads;
  GstCxrMemoryFormat memory_format;
  GstCxrEngine engine;
  gboolean overlap;
  guint streams;
  gchar* layout_cache;  // NULL: cxr::models::default_layout_cache()

  InferState* state;
};

G_DEFINE_TYPE(GstCxrInfer, gst_cxr_infer, GST_TYPE_ELEMENT)
GST_ELEMENT_REGISTER_DEFINE(cxrinfer, "cxrinfer", GST_RANK_NONE, gst_cxr_infer_get_type())

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));

static void gst_cxr_infer_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstCxrInfer* self = GST_CXR_INFER(object);
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
    case PROP_BATCH_SIZE: self->batch_size = g_value_get_uint(value); break;
    case PROP_BATCH_TIMEOUT: self->batch_timeout = g_value_get_uint64(value); break;
    case PROP_PRECISION: self->precision = static_cast<GstCxrPrecision>(g_value_get_enum(value)); break;
    case PROP_EMBEDDINGS: self->embeddings = g_value_get_boolean(value); break;
    case PROP_THREADS: self->threads = g_value_get_uint(value); break;
    case PROP_MEMORY_FORMAT: self->memory_format = static_cast<GstCxrMemoryFormat>(g_value_get_enum(value)); break;
    case PROP_ENGINE: self->engine = static_cast<GstCxrEngine>(g_value_get_enum(value)); break;
    case PROP_OVERLAP: self->overlap = g_value_get_boolean(value); break;
    case PROP_STREAMS: self->streams = g_value_get_uint(value); break;
    case PROP_LAYOUT_CACHE:
      g_free(self->layout_cache);
      self->layout_cache = g_value_dup_string(value);
      break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_infer_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstCxrInfer* self = GST_CXR_INFER(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODEL: g_value_set_string(value, self->model); break;
    case PROP_DEVICE: g_value_set_string(value, self->device); break;
    case PROP_BATCH_SIZE: g_value_set_uint(value, self->batch_size); break;
    case PROP_BATCH_TIMEOUT: g_value_set_uint64(value, self->batch_timeout); break;
    case PROP_PRECISION: g_value_set_enum(value, self->precision); break;
    case PROP_EMBEDDINGS: g_value_set_boolean(value, self->embeddings); break;
    case PROP_THREADS: g_value_set_uint(value, self->threads); break;
    case PROP_MEMORY_FORMAT: g_value_set_enum(value, self->memory_format); break;
    case PROP_ENGINE: g_value_set_enum(value, self->engine); break;
    case PROP_OVERLAP: g_value_set_boolean(value, self->overlap); break;
    case PROP_STREAMS: g_value_set_uint(value, self->streams); break;
    case PROP_LAYOUT_CACHE: g_value_set_string(value, self->layout_cache); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

/* ---- results ------------------------------------------------------------------------------ */

static void set_double_array(GstStructure* s, const char* field, const std::vector<float>& values) {
  GValue arr = G_VALUE_INIT;
  gst_value_array_init(&arr, static_cast<guint>(values.size()));
  for (float v : values) {
    GValue d = G_VALUE_INIT;
    g_value_init(&d, G_TYPE_DOUBLE);
    g_value_set_double(&d, v);
    gst_value_array_append_and_take_value(&arr, &d);
  }
  gst_structure_take_value(s, field, &arr);
}

static void set_string_array(GstStructure* s, const char* field, const std::vector<const char*>& values) {
  GValue arr = G_VALUE_INIT;
  gst_value_array_init(&arr, static_cast<guint>(values.size()));
  for (const char* v : values) {
    GValue str = G_VALUE_INIT;
    g_value_init(&str, G_TYPE_STRING);
    g_value_set_string(&str, v);
    gst_value_array_append_and_take_value(&arr, &str);
  }
  gst_structure_take_value(s, field, &arr);
}

/// The message fields known when the frame arrives (its times against the current segment).
static GstStructure* arrival_fields(InferState* st, GstBuffer* buf) {
  const GstClockTime ts = GST_BUFFER_PTS_IS_VALID(buf) ? GST_BUFFER_PTS(buf) : GST_BUFFER_DTS(buf);
  GstStructure* s = gst_structure_new("cxr-result", "timestamp", G_TYPE_UINT64, ts, "stream-time", G_TYPE_UINT64,
                                      gst_segment_to_stream_time(&st->segment, GST_FORMAT_TIME, ts), "running-time",
                                      G_TYPE_UINT64, gst_segment_to_running_time(&st->segment, GST_FORMAT_TIME, ts),
                                      "duration", G_TYPE_UINT64, GST_BUFFER_DURATION(buf), nullptr);
  const GstCxrScanMeta* scan = gst_buffer_get_cxr_scan_meta(buf);
  gst_structure_set(s, "path", G_TYPE_STRING, scan && scan->path ? scan->path : "", nullptr);
  return s;
}

/// Attaches the meta, posts the message and pushes the frame.
static GstFlowReturn finish_frame(GstCxrInfer* self, InferState* st, Frame& frame, const cxr::models::Prediction& p) {
  GstBuffer* buf = gst_buffer_make_writable(frame.buffer);
  frame.buffer = nullptr;
  gst_cxr_buffer_add_prediction(buf, st->model, p);
  std::vector<const char*> classes, predicted;
  for (size_t c = 0; c < p.probabilities.size(); ++c) {
    classes.push_back(g_quark_to_string(st->model.classes[c]));
    if (p.decisions[c]) predicted.push_back(classes.back());
  }

  GstStructure* s = frame.message;
  frame.message = nullptr;
  gst_structure_set(s, "model", G_TYPE_STRING, st->model.id.c_str(), "multilabel", G_TYPE_BOOLEAN,
                    st->model.multilabel ? TRUE : FALSE, "top-class", G_TYPE_STRING, classes[static_cast<size_t>(p.top)],
                    nullptr);
  set_string_array(s, "classes", classes);
  set_double_array(s, "logits", p.logits);
  set_double_array(s, "probabilities", p.probabilities);
  set_string_array(s, "predicted", predicted);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
  return gst_pad_push(self->srcpad, buf);
}

/// The runner's hooks: its tokens are Frames and serialized GstEvents; its flow a GstFlowReturn.
static cxr::models::BatchRunner::Hooks runner_hooks(GstCxrInfer* self, InferState* st) {
  using Token = cxr::models::BatchRunner::Token;
  cxr::models::BatchRunner::Hooks hooks;
  hooks.run = [st](size_t n, size_t bank) { return st->predictor->run(n, bank); };
  hooks.deliver = [self, st](Token token, const cxr::models::Prediction& p) {
    std::unique_ptr<Frame> frame(static_cast<Frame*>(token));
    return static_cast<int>(finish_frame(self, st, *frame, p));
  };
  hooks.pass = [self](Token event) { gst_pad_push_event(self->srcpad, static_cast<GstEvent*>(event)); };
  hooks.drop = [](Token token, bool is_frame) {
    if (!is_frame) {
      gst_event_unref(static_cast<GstEvent*>(token));
      return;
    }
    std::unique_ptr<Frame> frame(static_cast<Frame*>(token));
    if (frame->buffer) gst_buffer_unref(frame->buffer);
    if (frame->message) gst_structure_free(frame->message);
  };
  hooks.failed = [self](const std::string& what) {
    return static_cast<int>(gst_cxr_post_error(GST_ELEMENT(self), "inference failed: " + what));
  };
  hooks.due = [self, st]() {
    // The stream lock orders this hand-over against chain() and serialized events.
    GST_PAD_STREAM_LOCK(self->sinkpad);
    GST_DEBUG_OBJECT(self, "batch-timeout: %zu frame(s) waiting", st->runner->pending());
    st->runner->submit_due();
    GST_PAD_STREAM_UNLOCK(self->sinkpad);
  };
  return hooks;
}

static GstFlowReturn gst_cxr_infer_chain(GstPad* pad, GstObject* parent, GstBuffer* buf) {
  GstCxrInfer* self = GST_CXR_INFER(parent);
  InferState* st = self->state;
  if (!st || !st->predictor) {
    gst_buffer_unref(buf);
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("no model loaded"), (nullptr));
    return GST_FLOW_ERROR;
  }
  const cxr::models::BatchRunner::Slot slot = st->runner->next_slot();
  const auto flow = static_cast<GstFlowReturn>(st->runner->flow());
  if (flow != GST_FLOW_OK) {
    gst_buffer_unref(buf);
    return flow;
  }
  if (!st->have_info) {
    gst_buffer_unref(buf);
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("frame before caps"), (nullptr));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  // Prepare the network's input now, into the frame's batch slot: the frame itself is not kept
  // mapped, and caps may change before the batch runs.
  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, &st->info, buf, GST_MAP_READ)) {
    gst_buffer_unref(buf);
    GST_ELEMENT_ERROR(self, STREAM, FAILED, ("cannot map frame"), (nullptr));
    return GST_FLOW_ERROR;
  }
  std::string failure;
  try {
    cv::Mat scan = gst_cxr_frame_to_mat(&frame);
    cxr::models::prepare_input_into(scan, st->predictor->card().input, st->predictor->slot(slot.index, slot.bank));
  } catch (const std::exception& e) {
    failure = e.what();
  }
  gst_video_frame_unmap(&frame);
  if (!failure.empty()) {
    // Keep the order of what is already queued, then report this scan.
    GstFlowReturn ret = static_cast<GstFlowReturn>(st->runner->drain());
    if (ret != GST_FLOW_OK) {
      gst_buffer_unref(buf);
      return ret;
    }
    ret = gst_cxr_scan_failed(GST_ELEMENT(self), self->srcpad, buf, failure, GST_CXR_ON_ERROR_SKIP);
    gst_buffer_unref(buf);
    return ret;
  }
  return static_cast<GstFlowReturn>(st->runner->add_frame(new Frame{buf, arrival_fields(st, buf)}));
}

static gboolean gst_cxr_infer_sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  GstCxrInfer* self = GST_CXR_INFER(parent);
  InferState* st = self->state;
  if (!st) return gst_pad_event_default(pad, parent, event);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_CAPS: {
      GstCaps* caps;
      gst_event_parse_caps(event, &caps);
      GstVideoInfo info;
      if (!gst_video_info_from_caps(&info, caps)) {
        gst_event_unref(event);
        return FALSE;
      }
      st->info = info;
      st->have_info = true;
      break;
    }
    case GST_EVENT_SEGMENT: {
      const GstSegment* seg;
      gst_event_parse_segment(event, &seg);
      gst_segment_copy_into(seg, &st->segment);
      break;
    }
    case GST_EVENT_EOS:
      st->runner->drain();
      return gst_pad_push_event(self->srcpad, event);
    case GST_EVENT_FLUSH_START:
      // Batches not yet run are dropped; chain() returns FLUSHING until the flush stops.
      st->runner->stop(GST_FLOW_FLUSHING);
      return gst_pad_event_default(pad, parent, event);
    case GST_EVENT_FLUSH_STOP:
      st->runner->flush();
      gst_segment_init(&st->segment, GST_FORMAT_TIME);
      return gst_pad_event_default(pad, parent, event);
    default:
      break;
  }
  // A serialized event keeps its place after the frames before it.
  if (GST_EVENT_IS_SERIALIZED(event) && st->runner->add_marker(event)) return TRUE;
  return gst_pad_event_default(pad, parent, event);
}

static gboolean gst_cxr_infer_sink_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  GstCxrInfer* self = GST_CXR_INFER(parent);
  if (GST_QUERY_TYPE(query) == GST_QUERY_DRAIN && self->state) self->state->runner->drain();
  return gst_pad_query_default(pad, parent, query);
}

static gboolean gst_cxr_infer_start(GstCxrInfer* self) {
  for (const auto& note : cxr::runtime::prepare_cpu_runtime()) GST_INFO_OBJECT(self, "%s", note.c_str());
  cxr::models::PredictorOptions options;
  cxr::models::BatchRunnerOptions batching;
  std::string model;
  GST_OBJECT_LOCK(self);
  model = self->model ? self->model : "";
  options.device = self->device ? self->device : DEFAULT_DEVICE;
  options.max_batch = static_cast<int>(self->batch_size);
  options.streams = static_cast<int>(self->streams);
  options.layout_cache = self->layout_cache ? self->layout_cache : cxr::models::default_layout_cache();
  options.embeddings = self->embeddings;
  options.threads = cxr::runtime::threads_per_stream(static_cast<int>(self->threads), options.streams);
  options.layout = self->memory_format == GST_CXR_MEMORY_FORMAT_CHANNELS_LAST ? cxr::models::Layout::ChannelsLast
                   : self->memory_format == GST_CXR_MEMORY_FORMAT_CONTIGUOUS  ? cxr::models::Layout::Contiguous
                   : self->memory_format == GST_CXR_MEMORY_FORMAT_ONEDNN      ? cxr::models::Layout::OneDnn
                   : self->memory_format == GST_CXR_MEMORY_FORMAT_WINOGRAD    ? cxr::models::Layout::Winograd
                                                                              : cxr::models::Layout::Auto;
  options.precision = self->precision == GST_CXR_PRECISION_FP16   ? cxr::models::Precision::FP16
                      : self->precision == GST_CXR_PRECISION_BF16 ? cxr::models::Precision::BF16
                                                                  : cxr::models::Precision::FP32;
  options.engine = self->engine == GST_CXR_ENGINE_LIBTORCH  ? cxr::models::Engine::LibTorch
                   : self->engine == GST_CXR_ENGINE_XNNPACK ? cxr::models::Engine::Xnnpack
                                                            : cxr::models::Engine::Auto;
  batching.batch_size = self->batch_size;
  batching.streams = self->streams;
  batching.overlap = self->overlap != FALSE;
  batching.timeout = std::chrono::nanoseconds(self->batch_timeout);
  batching.owner = GST_OBJECT_NAME(self);
  GST_OBJECT_UNLOCK(self);

  return gst_cxr_guard_bool(GST_ELEMENT(self), [&]() -> gboolean {
    if (model.empty()) throw cxr::ConfigError("no model card: set the 'model' property");
    auto st = std::make_unique<InferState>();
    auto card = cxr::models::load_card(model);
    options.on_layout = [self](cxr::models::Layout chosen, const std::string& how) {
      GST_INFO_OBJECT(self, "memory format %s: %s", cxr::models::to_string(chosen), how.c_str());
    };
    st->runner = std::make_unique<cxr::models::BatchRunner>(batching, runner_hooks(self, st.get()));
    options.input_banks = static_cast<int>(st->runner->banks());
    const int threads = st->runner->compute(0).call([&] {
      st->predictor = std::make_unique<cxr::models::Predictor>(card, options);
      return cxr::runtime::compute_threads();
    });
    for (const auto& c : card.classes) st->model.classes.push_back(g_quark_from_string(c.c_str()));
    st->model.id = card.name;
    st->model.multilabel = card.task == cxr::models::Task::Multilabel;
    gst_segment_init(&st->segment, GST_FORMAT_TIME);
    GST_INFO_OBJECT(self, "engine %s", cxr::models::to_string(st->predictor->engine()));
    const std::string blas_note = cxr::runtime::blas_thread_note(threads);
    if (!blas_note.empty() && st->predictor->device() == "cpu") GST_WARNING_OBJECT(self, "%s", blas_note.c_str());
    GST_INFO_OBJECT(self, "model %s (%s, %zu classes) on %s, batch %zu, %s, %zu stream(s) of %d thread(s), overlap %s",
                    card.name.c_str(), card.architecture.c_str(), card.classes.size(),
                    st->predictor->device().c_str(), batching.batch_size,
                    cxr::models::to_string(st->predictor->layout()), batching.streams, threads,
                    batching.overlap ? "on" : "off");
    self->state = st.release();
    return TRUE;
  });
}

static void gst_cxr_infer_stop(GstCxrInfer* self) {
  InferState* st = self->state;
  if (!st) return;
  // The pads are inactive: batches still queued drop their frames; their events go nowhere.
  if (st->runner) st->runner->close(GST_FLOW_FLUSHING);
  self->state = nullptr;
  delete st;
}

static GstStateChangeReturn gst_cxr_infer_change_state(GstElement* element, GstStateChange transition) {
  GstCxrInfer* self = GST_CXR_INFER(element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !gst_cxr_infer_start(self)) {
    return GST_STATE_CHANGE_FAILURE;
  }
  GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_cxr_infer_parent_class)->change_state(element, transition);
  // After the parent: the pads are deactivated, so no chain() or timer flush is running.
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) gst_cxr_infer_stop(self);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && ret == GST_STATE_CHANGE_FAILURE) gst_cxr_infer_stop(self);
  return ret;
}

static void gst_cxr_infer_finalize(GObject* object) {
  GstCxrInfer* self = GST_CXR_INFER(object);
  gst_cxr_infer_stop(self);
  g_free(self->model);
  g_free(self->layout_cache);
  g_free(self->device);
  G_OBJECT_CLASS(gst_cxr_infer_parent_class)->finalize(object);
}

static void gst_cxr_infer_class_init(GstCxrInferClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);

  gobject_class->set_property = gst_cxr_infer_set_property;
  gobject_class->get_property = gst_cxr_infer_get_property;
  gobject_class->finalize = gst_cxr_infer_finalize;

  const auto ready_only =
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(gobject_class, PROP_MODEL,
                                  g_param_spec_string("model", "Model card", "Path of the model card (TOML)", nullptr,
                                                      ready_only));
  g_object_class_install_property(gobject_class, PROP_DEVICE,
                                  g_param_spec_string("device", "Device",
                                                      "auto (CUDA when available, else CPU), cpu, cuda or cuda:N",
                                                      DEFAULT_DEVICE, ready_only));
  g_object_class_install_property(gobject_class, PROP_BATCH_SIZE,
                                  g_param_spec_uint("batch-size", "Batch size", "Scans per network run", 1, 1024,
                                                    DEFAULT_BATCH_SIZE, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_BATCH_TIMEOUT,
      g_param_spec_uint64("batch-timeout", "Batch timeout",
                          "Run a partial batch after its first scan waited this long (ns; 0 = wait for a full batch "
                          "or EOS)",
                          0, G_MAXUINT64, DEFAULT_BATCH_TIMEOUT, ready_only));
  g_object_class_install_property(gobject_class, PROP_PRECISION,
                                  g_param_spec_enum("precision", "Precision", "Arithmetic of the network",
                                                    gst_cxr_precision_get_type(), DEFAULT_PRECISION, ready_only));
  g_object_class_install_property(gobject_class, PROP_EMBEDDINGS,
                                  g_param_spec_boolean("embeddings", "Embeddings",
                                                       "Attach the penultimate features to the result meta",
                                                       DEFAULT_EMBEDDINGS, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_THREADS,
      g_param_spec_uint("threads", "Threads",
                        "LibTorch intra-op threads of each stream (and OpenBLAS's, process-wide), set on the element's "
                        "compute threads (0: leave both with one stream, the cores shared out with more; "
                        "streams=N threads=1 gives the most scans per second on small machines)",
                        0, 1024, DEFAULT_THREADS, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_STREAMS,
      g_param_spec_uint("streams", "Streams",
                        "Batches run side by side, each on its own compute thread with `threads` threads (CPU "
                        "throughput: more scans per second, each one later); frames leave in order",
                        1, 64, DEFAULT_STREAMS, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_OVERLAP,
      g_param_spec_boolean("overlap", "Overlap",
                           "Prepare the next batch on the streaming thread while one runs (else wait for each batch)",
                           DEFAULT_OVERLAP, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_MEMORY_FORMAT,
      g_param_spec_enum("memory-format", "Memory format",
                        "Layout of activations and weights (built-in architectures); which is faster depends on the "
                        "network and the CPU",
                        gst_cxr_memory_format_get_type(), DEFAULT_MEMORY_FORMAT, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_LAYOUT_CACHE,
      g_param_spec_string("layout-cache", "Layout cache",
                          "File that remembers memory-format=auto's choice per machine and work (unset: "
                          "$CXR_LAYOUT_CACHE, else $XDG_CACHE_HOME/gst-cxr/layouts.tsv; empty: remember nothing)",
                          nullptr, ready_only));
  g_object_class_install_property(
      gobject_class, PROP_ENGINE,
      g_param_spec_enum("engine", "Engine",
                        "What runs the network: XNNPACK (CPU, fp32, built-in architectures) or LibTorch; auto takes "
                        "XNNPACK where it runs",
                        gst_cxr_engine_get_type(), DEFAULT_ENGINE, ready_only));

  gst_element_class_set_static_metadata(element_class, "Chest X-ray classifier", "Filter/Analyzer/Video",
                                        "LibTorch inference from a model card; attaches results to each scan",
                                        "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_cxr_infer_change_state);
  gst_type_mark_as_plugin_api(gst_cxr_precision_get_type(), static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(gst_cxr_memory_format_get_type(), static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(gst_cxr_engine_get_type(), static_cast<GstPluginAPIFlags>(0));
  GST_DEBUG_CATEGORY_INIT(gst_cxr_infer_debug, "cxrinfer", 0, "Chest X-ray classifier");
}

static void gst_cxr_infer_init(GstCxrInfer* self) {
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_cxr_infer_chain));
  gst_pad_set_event_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_cxr_infer_sink_event));
  gst_pad_set_query_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_cxr_infer_sink_query));
  GST_PAD_SET_PROXY_CAPS(self->sinkpad);
  GST_PAD_SET_PROXY_ALLOCATION(self->sinkpad);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  GST_PAD_SET_PROXY_CAPS(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);

  self->model = nullptr;
  self->device = g_strdup(DEFAULT_DEVICE);
  self->batch_size = DEFAULT_BATCH_SIZE;
  self->batch_timeout = DEFAULT_BATCH_TIMEOUT;
  self->precision = DEFAULT_PRECISION;
  self->embeddings = DEFAULT_EMBEDDINGS;
  self->threads = DEFAULT_THREADS;
  self->memory_format = DEFAULT_MEMORY_FORMAT;
  self->engine = DEFAULT_ENGINE;
  self->overlap = DEFAULT_OVERLAP;
  self->streams = DEFAULT_STREAMS;
  self->state = nullptr;
}
