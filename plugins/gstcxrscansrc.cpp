// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrscansrc
 *
 * Emits one buffer per scan file (its bytes, caps `application/x-cxr-scan`) with a
 * GstCxrScanMeta: path, index, label(s), split, patient. `location` is a folder (files directly
 * inside, or one subfolder per class as torchvision's ImageFolder reads it, optionally under
 * `train/ val/ test/`), a list file (.txt/.lst, one path per line), a CSV index, or one scan.
 * With `labels=index.csv` the CSV names the scans (a path column, and a label column or one 0/1
 * column per class as in ChestX-ray8's Data_Entry file) and `location` is the folder its paths
 * are relative to. The order is deterministic. The classes and their counts are posted as a
 * `cxr-dataset` element message at start and travel downstream as a sticky `cxr-dataset` event.
 *
 * In a data-parallel training job (`cxr run --nproc N`, or RANK / WORLD_SIZE set as torchrun
 * sets them) each rank emits its share of every phase, as PyTorch's DistributedSampler draws it.
 *
 * A file that cannot be read (vanished, unreadable, larger than `max-file-size`) becomes a
 * `cxr-scan-error` event (an error row in cxrresultsink) and a warning; the stream goes on.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 cxrscansrc location=data/samples/pneumonia ! cxrdecode ! cxrresultsink location=scans.jsonl
 * ]|
 */
#include "gstcxrscansrc.h"

#include <cstdio>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "cxr/data/dataset.hpp"
#include "cxr/data/sampling.hpp"
#include "cxr/error.hpp"
#include "cxr/train/rendezvous.hpp"
#include "cxr/util/text.hpp"
#include "gst/gstcxrevents.h"
#include "gst/gstcxrguard.hpp"
#include "gst/gstcxrmeta.h"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_scan_src_debug);
#define GST_CAT_DEFAULT gst_cxr_scan_src_debug

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_LABELS,
  PROP_PATH_COLUMN,
  PROP_LABEL_COLUMN,
  PROP_LABEL_COLUMNS,
  PROP_PATIENT_COLUMN,
  PROP_CLASSES,
  PROP_EXTENSIONS,
  PROP_MAX_FILE_SIZE,
  PROP_ON_ERROR,
  PROP_SPLIT,
  PROP_SEED,
  PROP_EPOCHS,
  PROP_SHUFFLE,
  PROP_UNDERSAMPLE,
  PROP_RANK,
  PROP_WORLD_SIZE,
};
#define DEFAULT_MAX_FILE_SIZE (G_GUINT64_CONSTANT(2) << 30)
#define DEFAULT_ON_ERROR GST_CXR_ON_ERROR_SKIP
#define DEFAULT_SEED 42
#define DEFAULT_EPOCHS 1
#define DEFAULT_SHUFFLE FALSE
#define DEFAULT_RANK -1
#define DEFAULT_WORLD_SIZE 0

struct _GstCxrScanSrc {
  GstPushSrc parent;

  gchar *location, *labels, *path_column, *label_column, *label_columns, *patient_column, *classes, *extensions;
  gchar *split, *undersample;
  guint64 max_file_size, seed;
  guint epochs;
  gboolean shuffle;
  gint rank, world_size;  // -1 / 0: from RANK / WORLD_SIZE in the environment, else 0 / 1
  GstCxrOnError on_error;

  // Built in start(), freed in stop().
  cxr::data::Dataset *dataset;
  std::vector<cxr::data::Phase> *phases;
  gsize phase, position;  // current phase, position within it
  gboolean sent_dataset, in_phase;
  guint planned_epochs;  // the epochs of the schedule made in start(), announced in cxr-dataset
};

G_DEFINE_TYPE(GstCxrScanSrc, gst_cxr_scan_src, GST_TYPE_PUSH_SRC)
GST_ELEMENT_REGISTER_DEFINE(cxrscansrc, "cxrscansrc", GST_RANK_NONE, gst_cxr_scan_src_get_type())

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("application/x-cxr-scan"));

static void gst_cxr_scan_src_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec) {
  GstCxrScanSrc *self = GST_CXR_SCAN_SRC(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_LOCATION: gst_cxr_meta_set_string(&self->location, g_value_get_string(value)); break;
    case PROP_LABELS: gst_cxr_meta_set_string(&self->labels, g_value_get_string(value)); break;
    case PROP_PATH_COLUMN: gst_cxr_meta_set_string(&self->path_column, g_value_get_string(value)); break;
    case PROP_LABEL_COLUMN: gst_cxr_meta_set_string(&self->label_column, g_value_get_string(value)); break;
    case PROP_LABEL_COLUMNS: gst_cxr_meta_set_string(&self->label_columns, g_value_get_string(value)); break;
    case PROP_PATIENT_COLUMN: gst_cxr_meta_set_string(&self->patient_column, g_value_get_string(value)); break;
    case PROP_CLASSES: gst_cxr_meta_set_string(&self->classes, g_value_get_string(value)); break;
    case PROP_EXTENSIONS: gst_cxr_meta_set_string(&self->extensions, g_value_get_string(value)); break;
    case PROP_MAX_FILE_SIZE: self->max_file_size = g_value_get_uint64(value); break;
    case PROP_ON_ERROR: self->on_error = static_cast<GstCxrOnError>(g_value_get_enum(value)); break;
    case PROP_SPLIT: gst_cxr_meta_set_string(&self->split, g_value_get_string(value)); break;
    case PROP_UNDERSAMPLE: gst_cxr_meta_set_string(&self->undersample, g_value_get_string(value)); break;
    case PROP_SEED: self->seed = g_value_get_uint64(value); break;
    case PROP_EPOCHS: self->epochs = g_value_get_uint(value); break;
    case PROP_SHUFFLE: self->shuffle = g_value_get_boolean(value); break;
    case PROP_RANK: self->rank = g_value_get_int(value); break;
    case PROP_WORLD_SIZE: self->world_size = g_value_get_int(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_scan_src_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec) {
  GstCxrScanSrc *self = GST_CXR_SCAN_SRC(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_LOCATION: g_value_set_string(value, self->location); break;
    case PROP_LABELS: g_value_set_string(value, self->labels); break;
    case PROP_PATH_COLUMN: g_value_set_string(value, self->path_column); break;
    case PROP_LABEL_COLUMN: g_value_set_string(value, self->label_column); break;
    case PROP_LABEL_COLUMNS: g_value_set_string(value, self->label_columns); break;
    case PROP_PATIENT_COLUMN: g_value_set_string(value, self->patient_column); break;
    case PROP_CLASSES: g_value_set_string(value, self->classes); break;
    case PROP_EXTENSIONS: g_value_set_string(value, self->extensions); break;
    case PROP_MAX_FILE_SIZE: g_value_set_uint64(value, self->max_file_size); break;
    case PROP_ON_ERROR: g_value_set_enum(value, self->on_error); break;
    case PROP_SPLIT: g_value_set_string(value, self->split); break;
    case PROP_UNDERSAMPLE: g_value_set_string(value, self->undersample); break;
    case PROP_SEED: g_value_set_uint64(value, self->seed); break;
    case PROP_EPOCHS: g_value_set_uint(value, self->epochs); break;
    case PROP_SHUFFLE: g_value_set_boolean(value, self->shuffle); break;
    case PROP_RANK: g_value_set_int(value, self->rank); break;
    case PROP_WORLD_SIZE: g_value_set_int(value, self->world_size); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

// The dataset's announcement: task, classes and their counts, buffers to come (`total`), and what
// a trainer plans with: `epochs`, `scans` and the scans per split.
static GstStructure *dataset_structure(const cxr::data::Dataset &ds, guint64 total, guint epochs,
                                       const gchar *name) {
  std::vector<const gchar *> names;
  for (const auto &c : ds.classes) names.push_back(c.c_str());
  const auto c = ds.class_counts();
  const std::vector<guint64> counts(c.begin(), c.end());
  GstEvent *ev = gst_cxr_event_new_dataset(cxr::data::to_string(ds.task), names.data(), counts.data(),
                                           static_cast<guint>(names.size()), total);
  GstStructure *s = gst_structure_copy(gst_event_get_structure(ev));
  gst_event_unref(ev);
  gst_structure_set_name(s, name);
  guint64 per_split[4] = {0, 0, 0, 0};
  for (const auto &sample : ds.samples) per_split[static_cast<int>(sample.split)]++;
  gst_structure_set(s, "epochs", G_TYPE_UINT, epochs, "scans", G_TYPE_UINT64,
                    static_cast<guint64>(ds.samples.size()), "train-scans", G_TYPE_UINT64, per_split[1],
                    "val-scans", G_TYPE_UINT64, per_split[2], "test-scans", G_TYPE_UINT64, per_split[3], NULL);
  return s;
}

static gboolean gst_cxr_scan_src_start(GstBaseSrc *src) {
  GstCxrScanSrc *self = GST_CXR_SCAN_SRC(src);
  return gst_cxr_guard_bool(GST_ELEMENT(self), [&] {
    cxr::data::IndexParams p;
    GST_OBJECT_LOCK(self);
    p.location = self->location ? self->location : "";
    p.labels = self->labels ? self->labels : "";
    p.path_column = self->path_column ? self->path_column : "";
    p.label_column = self->label_column ? self->label_column : "";
    p.label_columns = cxr::util::split_commas(self->label_columns);
    p.patient_column = self->patient_column ? self->patient_column : "";
    p.classes = cxr::util::split_commas(self->classes);
    for (auto &e : cxr::util::split_commas(self->extensions)) p.extensions.push_back(e[0] == '.' ? e.substr(1) : e);
    const std::string split = self->split ? self->split : "";
    const std::string under = self->undersample ? self->undersample : "";
    const guint64 seed = self->seed;
    const guint epochs = self->epochs;
    const gboolean shuffle = self->shuffle;
    cxr::train::DistOptions dist;
    if (self->rank < 0 || self->world_size <= 0) dist = cxr::train::dist_options_from_env();
    if (self->rank >= 0) dist.rank = self->rank;
    if (self->world_size > 0) dist.world_size = self->world_size;
    GST_OBJECT_UNLOCK(self);
    if (p.location.empty() && p.labels.empty()) throw cxr::InvalidArgument("no location set");
    cxr::train::validate(dist);

    auto ds = std::make_unique<cxr::data::Dataset>(cxr::data::index_dataset(p));
    cxr::data::undersample(*ds, under, seed);
    if (!split.empty()) {
      cxr::data::SplitParams sp;
      sp.fractions = cxr::data::parse_fractions(split);
      sp.seed = seed;
      cxr::data::assign_splits(*ds, sp);
    }
    // Every rank of a data-parallel job builds the same schedule, then takes its share.
    auto phases = std::make_unique<std::vector<cxr::data::Phase>>(
        cxr::data::shard_phases(cxr::data::epoch_schedule(*ds, epochs, shuffle, seed),
                                static_cast<unsigned>(dist.rank), static_cast<unsigned>(dist.world_size)));
    guint64 total = 0;
    for (const auto &ph : *phases) total += ph.order.size();
    delete self->dataset;
    delete self->phases;
    self->dataset = ds.release();
    self->phases = phases.release();
    self->phase = self->position = 0;
    self->planned_epochs = epochs;
    self->sent_dataset = self->in_phase = FALSE;
    GST_INFO_OBJECT(self, "%zu scans, %zu classes, %zu phases (rank %d of %d)", self->dataset->samples.size(),
                    self->dataset->classes.size(), self->phases->size(), dist.rank, dist.world_size);
    gst_element_post_message(
        GST_ELEMENT(self),
        gst_message_new_element(GST_OBJECT(self), dataset_structure(*self->dataset, total, epochs, GST_CXR_EVENT_DATASET)));
    return TRUE;
  });
}

static gboolean gst_cxr_scan_src_stop(GstBaseSrc *src) {
  GstCxrScanSrc *self = GST_CXR_SCAN_SRC(src);
  delete self->dataset;
  self->dataset = nullptr;
  delete self->phases;
  self->phases = nullptr;
  return TRUE;
}

// Reads a whole file into a new buffer; on failure returns nullptr and sets reason.
static GstBuffer *read_scan(const std::string &path, guint64 max_size, std::string &reason) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    reason = std::string("cannot open: ") + g_strerror(errno);
    return nullptr;
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f);
    reason = "not a regular file";
    return nullptr;
  }
  const guint64 size = static_cast<guint64>(st.st_size);
  if (size > max_size) {
    std::fclose(f);
    reason = "file is " + std::to_string(size) + " bytes, larger than max-file-size=" + std::to_string(max_size);
    return nullptr;
  }
  GstBuffer *buf = gst_buffer_new_allocate(nullptr, size, nullptr);
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_WRITE);
  const size_t got = size ? std::fread(map.data, 1, size, f) : 0;
  const bool failed = got != size || std::ferror(f);
  gst_buffer_unmap(buf, &map);
  std::fclose(f);
  if (failed) {
    gst_buffer_unref(buf);
    reason = "read error after " + std::to_string(got) + " of " + std::to_string(size) + " bytes";
    return nullptr;
  }
  return buf;
}

static void fill_meta(GstCxrScanMeta *meta, const cxr::data::Sample &s, guint64 index, guint epoch) {
  gst_cxr_meta_set_string(&meta->path, s.path.c_str());
  meta->index = index;
  meta->epoch = epoch;
  meta->split = static_cast<GstCxrSplit>(s.split);
  meta->label = s.label;
  if (!s.labels.empty()) gst_cxr_scan_meta_set_labels(meta, s.labels.data(), static_cast<guint>(s.labels.size()));
  if (!s.patient_id.empty()) gst_cxr_meta_set_string(&meta->patient_id, s.patient_id.c_str());
}

static GstFlowReturn gst_cxr_scan_src_create(GstPushSrc *psrc, GstBuffer **outbuf) {
  GstCxrScanSrc *self = GST_CXR_SCAN_SRC(psrc);
  GstBaseSrc *bsrc = GST_BASE_SRC(psrc);
  if (!self->dataset) return GST_FLOW_ERROR;
  GST_OBJECT_LOCK(self);
  const guint64 max_size = self->max_file_size;
  const GstCxrOnError on_error = self->on_error;
  GST_OBJECT_UNLOCK(self);

  GstPad *pad = GST_BASE_SRC_PAD(bsrc);
  if (!self->sent_dataset) {
    // Sticky events are ordered: this one must follow the segment, which GstBaseSrc would
    // only send with the first buffer. Send the segment now; GstBaseSrc's own copy replaces
    // it in place.
    gst_pad_push_event(pad, gst_event_new_segment(&bsrc->segment));
    guint64 total = 0;
    for (const auto &ph : *self->phases) total += ph.order.size();
    GstStructure *s = dataset_structure(*self->dataset, total, self->planned_epochs, GST_CXR_EVENT_DATASET);
    gst_pad_push_event(pad, gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM_STICKY, s));
    self->sent_dataset = TRUE;
  }

  while (self->phase < self->phases->size()) {
    const cxr::data::Phase &ph = (*self->phases)[self->phase];
    const GstCxrSplit split = static_cast<GstCxrSplit>(ph.split);
    if (!self->in_phase) {
      gst_pad_push_event(pad, gst_cxr_event_new_phase(ph.epoch, split, TRUE, ph.order.size()));
      self->in_phase = TRUE;
    }
    if (self->position >= ph.order.size()) {
      gst_pad_push_event(pad, gst_cxr_event_new_phase(ph.epoch, split, FALSE, ph.order.size()));
      self->in_phase = FALSE;
      self->position = 0;
      self->phase++;
      continue;
    }
    const guint64 index = ph.order[self->position++];
    const cxr::data::Sample &s = self->dataset->samples[index];
    std::string reason;
    GstBuffer *buf = read_scan(s.path, max_size, reason);
    if (!buf) {
      // Report it against a placeholder buffer that carries the scan's meta.
      GstBuffer *tmp = gst_buffer_new();
      fill_meta(gst_buffer_add_cxr_scan_meta(tmp), s, index, ph.epoch);
      GstFlowReturn ret = gst_cxr_scan_failed(GST_ELEMENT(self), pad, tmp, reason, on_error);
      gst_buffer_unref(tmp);
      if (ret != GST_FLOW_OK) return ret;
      continue;
    }
    fill_meta(gst_buffer_add_cxr_scan_meta(buf), s, index, ph.epoch);
    GST_BUFFER_OFFSET(buf) = index;
    GST_BUFFER_OFFSET_END(buf) = index + 1;
    *outbuf = buf;
    return GST_FLOW_OK;
  }
  return GST_FLOW_EOS;
}

static void gst_cxr_scan_src_finalize(GObject *object) {
  GstCxrScanSrc *self = GST_CXR_SCAN_SRC(object);
  g_free(self->location);
  g_free(self->labels);
  g_free(self->path_column);
  g_free(self->label_column);
  g_free(self->label_columns);
  g_free(self->patient_column);
  g_free(self->classes);
  g_free(self->extensions);
  g_free(self->split);
  g_free(self->undersample);
  delete self->dataset;
  delete self->phases;
  G_OBJECT_CLASS(gst_cxr_scan_src_parent_class)->finalize(object);
}

static void install_string(GObjectClass *klass, guint id, const char *name, const char *nick, const char *blurb) {
  g_object_class_install_property(
      klass, id,
      g_param_spec_string(name, nick, blurb, nullptr,
                          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));
}

static void gst_cxr_scan_src_class_init(GstCxrScanSrcClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSrcClass *basesrc_class = GST_BASE_SRC_CLASS(klass);
  GstPushSrcClass *pushsrc_class = GST_PUSH_SRC_CLASS(klass);

  gobject_class->set_property = gst_cxr_scan_src_set_property;
  gobject_class->get_property = gst_cxr_scan_src_get_property;
  gobject_class->finalize = gst_cxr_scan_src_finalize;

  install_string(gobject_class, PROP_LOCATION, "location", "Location",
                 "Folder, list file, CSV index or single scan (with labels=: the folder the CSV's paths are relative to)");
  install_string(gobject_class, PROP_LABELS, "labels", "Labels CSV", "CSV index of the scans and their labels");
  install_string(gobject_class, PROP_PATH_COLUMN, "path-column", "Path column",
                 "CSV column with the scan paths (default: path, Image Index, image, filename or file)");
  install_string(gobject_class, PROP_LABEL_COLUMN, "label-column", "Label column",
                 "CSV column with the class name ('|' separates several labels: multi-label; default: label)");
  install_string(gobject_class, PROP_LABEL_COLUMNS, "label-columns", "Label columns",
                 "Comma-separated 0/1 CSV columns, one per class (multi-label)");
  install_string(gobject_class, PROP_PATIENT_COLUMN, "patient-column", "Patient column",
                 "CSV column with the patient id (default: patient_id, Patient ID or patient)");
  install_string(gobject_class, PROP_CLASSES, "classes", "Classes",
                 "Comma-separated class order (and subset); default: all classes, sorted by name");
  install_string(gobject_class, PROP_EXTENSIONS, "extensions", "Extensions",
                 "Comma-separated file extensions to take from folders (default: every file but sidecars such as .csv/.txt/.md)");
  g_object_class_install_property(
      gobject_class, PROP_MAX_FILE_SIZE,
      g_param_spec_uint64("max-file-size", "Max file size", "Larger files become error rows (bytes)", 0, G_MAXUINT64,
                          DEFAULT_MAX_FILE_SIZE,
                          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property(
      gobject_class, PROP_ON_ERROR,
      g_param_spec_enum("on-error", "On error", "What an unreadable file does", GST_TYPE_CXR_ON_ERROR, DEFAULT_ON_ERROR,
                        static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));

  install_string(gobject_class, PROP_SPLIT, "split", "Split",
                 "Train/val/test fractions, e.g. 0.7,0.15,0.15: stratified by class, patient-grouped when the index "
                 "has patients, seeded (unset: the train/ val/ test/ folders or CSV split column, if any)");
  install_string(gobject_class, PROP_UNDERSAMPLE, "undersample", "Undersample",
                 "Cut classes at random before splitting: 'balance' or 'class:count[,class:count]'");
  g_object_class_install_property(
      gobject_class, PROP_SEED,
      g_param_spec_uint64("seed", "Seed", "Seed of the split, the undersampling and the per-epoch shuffle", 0,
                          G_MAXUINT64, DEFAULT_SEED,
                          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      gobject_class, PROP_EPOCHS,
      g_param_spec_uint("epochs", "Epochs",
                        "Passes over the data: each epoch the train split (reshuffled with shuffle=true), then the val "
                        "split; the test split once at the end",
                        1, G_MAXUINT, DEFAULT_EPOCHS,
                        static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      gobject_class, PROP_SHUFFLE,
      g_param_spec_boolean("shuffle", "Shuffle", "Reshuffle the train split (or all scans) every epoch",
                           DEFAULT_SHUFFLE,
                           static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));

  g_object_class_install_property(
      gobject_class, PROP_RANK,
      g_param_spec_int("rank", "Rank",
                       "This process's rank in a data-parallel job: it emits scans rank, rank+world-size, ... of each "
                       "phase (train phases padded as PyTorch's DistributedSampler pads them); -1: RANK from the "
                       "environment, else 0",
                       -1, G_MAXINT, DEFAULT_RANK,
                       static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      gobject_class, PROP_WORLD_SIZE,
      g_param_spec_int("world-size", "World size",
                       "Processes in a data-parallel job; 0: WORLD_SIZE from the environment, else 1 (every scan)", 0,
                       G_MAXINT, DEFAULT_WORLD_SIZE,
                       static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));

  gst_element_class_set_static_metadata(element_class, "Chest X-ray scan source", "Source/File",
                                        "Emits the scans of a folder, list or CSV index, one buffer per file",
                                        "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &src_template);

  basesrc_class->start = GST_DEBUG_FUNCPTR(gst_cxr_scan_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR(gst_cxr_scan_src_stop);
  pushsrc_class->create = GST_DEBUG_FUNCPTR(gst_cxr_scan_src_create);
  GST_DEBUG_CATEGORY_INIT(gst_cxr_scan_src_debug, "cxrscansrc", 0, "Chest X-ray scan source");
  gst_type_mark_as_plugin_api(GST_TYPE_CXR_ON_ERROR, static_cast<GstPluginAPIFlags>(0));
}

static void gst_cxr_scan_src_init(GstCxrScanSrc *self) {
  self->max_file_size = DEFAULT_MAX_FILE_SIZE;
  self->on_error = DEFAULT_ON_ERROR;
  self->seed = DEFAULT_SEED;
  self->epochs = DEFAULT_EPOCHS;
  self->shuffle = DEFAULT_SHUFFLE;
  self->rank = DEFAULT_RANK;
  self->world_size = DEFAULT_WORLD_SIZE;
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_BYTES);
}
