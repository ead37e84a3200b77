// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-cxrtrain
 *
 * Trains a classifier from the stream it receives. Frames are decoded, preprocessed grey scans
 * (GRAY8 / GRAY16_LE) carrying a GstCxrScanMeta (split, epoch, label or multi-hot labels); the
 * `cxr-phase` events of a training stream mark each epoch's train, val and test phases, and the
 * sticky `cxr-dataset` event gives the task and classes. `model` is a model card or an
 * architecture name (resnet34, mobilenet_v3_large, efficientnet_b1), whose classes then come
 * from the stream. The training loop, metrics and checkpoints live in lib/cxr/train
 * (cxr::train::Trainer), which documents the run directory written to `output-dir`: model.toml,
 * best.pt, last.pt, last.opt.pt, metrics.jsonl, summary.json, test_predictions.csv.
 *
 * Progress: a `cxr-train-progress` element message per optimisation step (epoch, step, loss),
 * a `cxr-epoch` message per epoch (the metrics.jsonl row, and `line`, the epoch's human line,
 * which `cxr run` prints), a `cxr-train-done` message at the end (test figures); with
 * `progress=true` the element also prints each line to stderr itself. With `resume`, the epochs already complete in `output-dir` are skipped.
 *
 * Data-parallel training on PyTorch's distributed engine (c10d: a TCPStore and Gloo): run the
 * pipeline once per rank with torchrun's RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (or
 * `cxr run --nproc N FILE.toml` on one host). cxrscansrc gives each rank its share of every phase;
 * the ranks start from rank 0's weights, average their gradients every step, and gather their val
 * and test predictions, so metrics and the best epoch are those of one process with the global
 * batch (`batch-size` is per rank); with `sync-batchnorm=true` the BatchNorm statistics are too.
 * Rank 0 writes `output-dir`.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 cxrscansrc location=data/samples/pneumonia split=0.7,0.15,0.15 epochs=5 ! cxrdecode ! cxrequalize ! cxrblur ! cxrresize size=64 mode=stretch ! cxraugment ! cxrtrain model=mobilenet_v3_large output-dir=run/ batch-size=8
 * ]|
 */
#include "gstcxrtrain.h"

#include <gst/video/video.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/models/card.hpp"
#include "cxr/train/rendezvous.hpp"
#include "cxr/train/trainer.hpp"
#include "cxr/runtime/cpu.hpp"
#include "gst/gstcxrbridge.hpp"
#include "gst/gstcxrevents.h"
#include "gst/gstcxrguard.hpp"
#include "gst/gstcxrmeta.h"

GST_DEBUG_CATEGORY_STATIC(gst_cxr_train_debug);
#define GST_CAT_DEFAULT gst_cxr_train_debug

enum {
  PROP_0,
  PROP_MODEL,
  PROP_PRETRAINED,
  PROP_OUTPUT_DIR,
  PROP_BATCH_SIZE,
  PROP_OPTIMIZER,
  PROP_LEARNING_RATE,
  PROP_LR_END,
  PROP_SCHEDULER,
  PROP_STEP_SIZE,
  PROP_GAMMA,
  PROP_MOMENTUM,
  PROP_WEIGHT_DECAY,
  PROP_LOSS,
  PROP_POS_WEIGHT,
  PROP_CLASS_WEIGHTS,
  PROP_FREEZE_BACKBONE,
  PROP_DEVICE,
  PROP_SEED,
  PROP_THREADS,
  PROP_RESUME,
  PROP_INPUT_SIZE,
  PROP_EPOCHS,
  PROP_MEAN,
  PROP_STD,
  PROP_PROGRESS,
  PROP_RANK,
  PROP_WORLD_SIZE,
  PROP_MASTER_ADDR,
  PROP_MASTER_PORT,
  PROP_DIST_TIMEOUT,
  PROP_SYNC_BATCHNORM,
};
#define DEFAULT_OUTPUT_DIR "run"
#define DEFAULT_BATCH_SIZE 32
#define DEFAULT_OPTIMIZER "adam"
#define DEFAULT_LEARNING_RATE 0.01
#define DEFAULT_LR_END 0.001
#define DEFAULT_SCHEDULER "cosine"
#define DEFAULT_STEP_SIZE 10
#define DEFAULT_GAMMA 0.1
#define DEFAULT_MOMENTUM 0.9
#define DEFAULT_WEIGHT_DECAY 0.0
#define DEFAULT_LOSS "auto"
#define DEFAULT_DEVICE "cpu"
#define DEFAULT_SEED 42
#define DEFAULT_THREADS 0
#define DEFAULT_EPOCHS 0
#define DEFAULT_PROGRESS FALSE
#define DEFAULT_RANK -1
#define DEFAULT_WORLD_SIZE 0
#define DEFAULT_MASTER_PORT 0
#define DEFAULT_DIST_TIMEOUT 0.0
#define DEFAULT_SYNC_BATCHNORM FALSE

#define CXR_GRAY_CAPS GST_VIDEO_CAPS_MAKE("{ GRAY8, GRAY16_LE }")

namespace {

/// Settings checked in start(); the trainer itself is made when the stream says what it holds.
struct TrainState {
  cxr::train::TrainConfig config;
  bool from_card = false;
  std::string loss;
  int epochs_property = 0;
  bool progress = false;
  std::unique_ptr<cxr::train::Trainer> trainer;
  uint64_t errors_before = 0;  // scan errors seen before the trainer existed
  GstVideoInfo info;
  bool have_info = false;
};

std::vector<float> parse_floats(const std::string& text, const char* property) {
  std::vector<float> values;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) continue;
    try {
      size_t used = 0;
      values.push_back(std::stof(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw cxr::InvalidArgument(std::string(property) + ": '" + item + "' is not a number (expected a comma-separated list)");
    }
  }
  return values;
}

static_assert(GST_CXR_SPLIT_NONE == static_cast<int>(cxr::train::Phase::None) &&
                  GST_CXR_SPLIT_TRAIN == static_cast<int>(cxr::train::Phase::Train) &&
                  GST_CXR_SPLIT_VAL == static_cast<int>(cxr::train::Phase::Val) &&
                  GST_CXR_SPLIT_TEST == static_cast<int>(cxr::train::Phase::Test),
              "a frame's GstCxrSplit is the trainer's Phase");
cxr::train::Phase phase_of(GstCxrSplit split) { return static_cast<cxr::train::Phase>(static_cast<int>(split)); }

}  // namespace

struct _GstCxrTrain {
  GstBaseSink parent;

  gchar* model;
  gchar* pretrained;
  gchar* output_dir;
  guint batch_size;
  gchar* optimizer;
  gdouble learning_rate;
  gdouble lr_end;
  gchar* scheduler;
  guint step_size;
  gdouble gamma;
  gdouble momentum;
  gdouble weight_decay;
  gchar* loss;
  gchar* pos_weight;
  gchar* class_weights;
  gboolean freeze_backbone;
  gchar* device;
  guint64 seed;
  guint threads;
  gboolean resume;
  gchar* input_size;
  guint epochs;
  gchar* mean;
  gchar* std;
  gboolean progress;
  gint rank, world_size, master_port;  // -1 / 0 / 0: from the environment (torchrun's variables)
  gchar* master_addr;
  gdouble dist_timeout;
  gboolean sync_batchnorm;

  TrainState* state;
};

G_DEFINE_TYPE(GstCxrTrain, gst_cxr_train, GST_TYPE_BASE_SINK)
GST_ELEMENT_REGISTER_DEFINE(cxrtrain, "cxrtrain", GST_RANK_NONE, gst_cxr_train_get_type())

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(CXR_GRAY_CAPS));

static void gst_cxr_train_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstCxrTrain* self = GST_CXR_TRAIN(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODEL: gst_cxr_meta_set_string(&self->model, g_value_get_string(value)); break;
    case PROP_PRETRAINED: gst_cxr_meta_set_string(&self->pretrained, g_value_get_string(value)); break;
    case PROP_OUTPUT_DIR: gst_cxr_meta_set_string(&self->output_dir, g_value_get_string(value)); break;
    case PROP_BATCH_SIZE: self->batch_size = g_value_get_uint(value); break;
    case PROP_OPTIMIZER: gst_cxr_meta_set_string(&self->optimizer, g_value_get_string(value)); break;
    case PROP_LEARNING_RATE: self->learning_rate = g_value_get_double(value); break;
    case PROP_LR_END: self->lr_end = g_value_get_double(value); break;
    case PROP_SCHEDULER: gst_cxr_meta_set_string(&self->scheduler, g_value_get_string(value)); break;
    case PROP_STEP_SIZE: self->step_size = g_value_get_uint(value); break;
    case PROP_GAMMA: self->gamma = g_value_get_double(value); break;
    case PROP_MOMENTUM: self->momentum = g_value_get_double(value); break;
    case PROP_WEIGHT_DECAY: self->weight_decay = g_value_get_double(value); break;
    case PROP_LOSS: gst_cxr_meta_set_string(&self->loss, g_value_get_string(value)); break;
    case PROP_POS_WEIGHT: gst_cxr_meta_set_string(&self->pos_weight, g_value_get_string(value)); break;
    case PROP_CLASS_WEIGHTS: gst_cxr_meta_set_string(&self->class_weights, g_value_get_string(value)); break;
    case PROP_FREEZE_BACKBONE: self->freeze_backbone = g_value_get_boolean(value); break;
    case PROP_DEVICE: gst_cxr_meta_set_string(&self->device, g_value_get_string(value)); break;
    case PROP_SEED: self->seed = g_value_get_uint64(value); break;
    case PROP_THREADS: self->threads = g_value_get_uint(value); break;
    case PROP_RESUME: self->resume = g_value_get_boolean(value); break;
    case PROP_INPUT_SIZE: gst_cxr_meta_set_string(&self->input_size, g_value_get_string(value)); break;
    case PROP_EPOCHS: self->epochs = g_value_get_uint(value); break;
    case PROP_MEAN: gst_cxr_meta_set_string(&self->mean, g_value_get_string(value)); break;
    case PROP_STD: gst_cxr_meta_set_string(&self->std, g_value_get_string(value)); break;
    case PROP_PROGRESS: self->progress = g_value_get_boolean(value); break;
    case PROP_RANK: self->rank = g_value_get_int(value); break;
    case PROP_WORLD_SIZE: self->world_size = g_value_get_int(value); break;
    case PROP_MASTER_ADDR: gst_cxr_meta_set_string(&self->master_addr, g_value_get_string(value)); break;
    case PROP_MASTER_PORT: self->master_port = g_value_get_int(value); break;
    case PROP_DIST_TIMEOUT: self->dist_timeout = g_value_get_double(value); break;
    case PROP_SYNC_BATCHNORM: self->sync_batchnorm = g_value_get_boolean(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_cxr_train_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstCxrTrain* self = GST_CXR_TRAIN(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODEL: g_value_set_string(value, self->model); break;
    case PROP_PRETRAINED: g_value_set_string(value, self->pretrained); break;
    case PROP_OUTPUT_DIR: g_value_set_string(value, self->output_dir); break;
    case PROP_BATCH_SIZE: g_value_set_uint(value, self->batch_size); break;
    case PROP_OPTIMIZER: g_value_set_string(value, self->optimizer); break;
    case PROP_LEARNING_RATE: g_value_set_double(value, self->learning_rate); break;
    case PROP_LR_END: g_value_set_double(value, self->lr_end); break;
    case PROP_SCHEDULER: g_value_set_string(value, self->scheduler); break;
    case PROP_STEP_SIZE: g_value_set_uint(value, self->step_size); break;
    case PROP_GAMMA: g_value_set_double(value, self->gamma); break;
    case PROP_MOMENTUM: g_value_set_double(value, self->momentum); break;
    case PROP_WEIGHT_DECAY: g_value_set_double(value, self->weight_decay); break;
    case PROP_LOSS: g_value_set_string(value, self->loss); break;
    case PROP_POS_WEIGHT: g_value_set_string(value, self->pos_weight); break;
    case PROP_CLASS_WEIGHTS: g_value_set_string(value, self->class_weights); break;
    case PROP_FREEZE_BACKBONE: g_value_set_boolean(value, self->freeze_backbone); break;
    case PROP_DEVICE: g_value_set_string(value, self->device); break;
    case PROP_SEED: g_value_set_uint64(value, self->seed); break;
    case PROP_THREADS: g_value_set_uint(value, self->threads); break;
    case PROP_RESUME: g_value_set_boolean(value, self->resume); break;
    case PROP_INPUT_SIZE: g_value_set_string(value, self->input_size); break;
    case PROP_EPOCHS: g_value_set_uint(value, self->epochs); break;
    case PROP_MEAN: g_value_set_string(value, self->mean); break;
    case PROP_STD: g_value_set_string(value, self->std); break;
    case PROP_PROGRESS: g_value_set_boolean(value, self->progress); break;
    case PROP_RANK: g_value_set_int(value, self->rank); break;
    case PROP_WORLD_SIZE: g_value_set_int(value, self->world_size); break;
    case PROP_MASTER_ADDR: g_value_set_string(value, self->master_addr); break;
    case PROP_MASTER_PORT: g_value_set_int(value, self->master_port); break;
    case PROP_DIST_TIMEOUT: g_value_set_double(value, self->dist_timeout); break;
    case PROP_SYNC_BATCHNORM: g_value_set_boolean(value, self->sync_batchnorm); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK(self);
}

static std::string str_or(const gchar* s, const char* fallback = "") { return s ? s : fallback; }

/// Properties -> TrainConfig (under the object lock: copies only).
static void read_settings(GstCxrTrain* self, TrainState& st) {
  GST_OBJECT_LOCK(self);
  const std::string model = str_or(self->model), input_size = str_or(self->input_size), mean = str_or(self->mean),
                    std_ = str_or(self->std), pos_weight = str_or(self->pos_weight),
                    class_weights = str_or(self->class_weights), optimizer = str_or(self->optimizer, DEFAULT_OPTIMIZER),
                    scheduler = str_or(self->scheduler, DEFAULT_SCHEDULER);
  cxr::train::TrainConfig& c = st.config;
  c.pretrained = str_or(self->pretrained);
  c.output_dir = str_or(self->output_dir);
  c.batch_size = static_cast<int>(self->batch_size);
  c.schedule.lr = self->learning_rate;
  c.schedule.lr_end = self->lr_end;
  c.schedule.step_size = static_cast<int>(self->step_size);
  c.schedule.gamma = self->gamma;
  c.momentum = self->momentum;
  c.weight_decay = self->weight_decay;
  c.freeze_backbone = self->freeze_backbone;
  c.device = str_or(self->device, DEFAULT_DEVICE);
  c.seed = self->seed;
  c.threads = static_cast<int>(self->threads);
  c.resume = self->resume;
  st.epochs_property = static_cast<int>(self->epochs);
  st.progress = self->progress;
  st.loss = str_or(self->loss, DEFAULT_LOSS);
  const int rank = self->rank, world_size = self->world_size, master_port = self->master_port;
  const std::string master_addr = str_or(self->master_addr);
  const double dist_timeout = self->dist_timeout;
  c.sync_batchnorm = self->sync_batchnorm;
  GST_OBJECT_UNLOCK(self);

  // torchrun's environment, with the properties over it.
  c.dist = cxr::train::dist_options_from_env();
  if (rank >= 0) c.dist.rank = rank;
  if (world_size > 0) c.dist.world_size = world_size;
  if (!master_addr.empty()) c.dist.master_addr = master_addr;
  if (master_port > 0) c.dist.master_port = master_port;
  if (dist_timeout > 0) c.dist.timeout_seconds = dist_timeout;
  cxr::train::validate(c.dist);
  if (c.dist.distributed() && !cxr::train::distributed_available())
    throw cxr::InvalidArgument("world size " + std::to_string(c.dist.world_size) +
                               ": this build has no distributed training (LibTorch's c10d with Gloo)");

  if (model.empty()) throw cxr::InvalidArgument("model is not set (a model card, or an architecture name)");
  c.optimizer = cxr::train::optimizer_from_string(optimizer);
  c.schedule.kind = cxr::train::scheduler_from_string(scheduler);
  c.schedule.epochs = st.epochs_property;
  if (st.loss != "auto" && st.loss != "cross-entropy" && st.loss != "bce-with-logits")
    throw cxr::InvalidArgument("loss '" + st.loss + "' is not one of: auto, cross-entropy, bce-with-logits");
  const bool is_card = model.size() > 5 && model.compare(model.size() - 5, 5, ".toml") == 0;
  if (is_card) {
    const cxr::models::ModelCard card = cxr::models::load_card(model);
    if (card.architecture == "torchscript") throw cxr::InvalidArgument(model + ": cannot train a TorchScript model");
    c.architecture = card.architecture;
    c.task = card.task;
    c.classes = card.classes;
    c.name = card.name;
    c.input = card.input;
    c.fixed_size = true;
    if (!card.thresholds.empty()) c.threshold = card.thresholds[0];
    st.from_card = true;
  } else {
    const auto& names = cxr::models::card_architectures();
    if (model == "torchscript" || std::find(names.begin(), names.end(), model) == names.end())
      throw cxr::InvalidArgument("model '" + model + "' is neither a model card (.toml) nor one of: resnet34, "
                                 "mobilenet_v3_large, efficientnet_b1");
    c.architecture = model;
  }
  if (!mean.empty()) c.input.mean = parse_floats(mean, "mean");
  if (!std_.empty()) c.input.std = parse_floats(std_, "std");
  if (!input_size.empty()) {
    int h = 0, w = 0;
    char x = 0;
    std::istringstream in(input_size);
    if ((in >> h) && !(in >> x)) {
      w = h;
    } else {
      std::istringstream in2(input_size);
      if (!(in2 >> h >> x >> w) || (x != 'x' && x != ','))
        throw cxr::InvalidArgument("input-size '" + input_size + "': expected N or HxW");
    }
    if (h <= 0 || w <= 0) throw cxr::InvalidArgument("input-size '" + input_size + "' must be positive");
    c.input.height = h;
    c.input.width = w;
    c.fixed_size = true;
  }
  if (pos_weight == "auto")
    c.pos_weight_auto = true;
  else if (!pos_weight.empty())
    c.pos_weight = parse_floats(pos_weight, "pos-weight");
  if (!class_weights.empty()) c.class_weights = parse_floats(class_weights, "class-weights");
}

static void post_epoch(GstCxrTrain* self, const cxr::train::EpochRow& row, bool progress, int epochs) {
  GstStructure* s = gst_structure_new("cxr-epoch", "epoch", G_TYPE_UINT, static_cast<guint>(row.epoch), "train-loss",
                                      G_TYPE_DOUBLE, row.train.loss, "train-f1", G_TYPE_DOUBLE, row.train.macro_f1,
                                      "train-accuracy", G_TYPE_DOUBLE, row.train.accuracy, "lr", G_TYPE_DOUBLE, row.lr,
                                      "seconds", G_TYPE_DOUBLE, row.seconds, "best", G_TYPE_BOOLEAN, row.best,
                                      "has-val", G_TYPE_BOOLEAN, row.has_val, NULL);
  if (row.has_val)
    gst_structure_set(s, "val-loss", G_TYPE_DOUBLE, row.val.loss, "val-f1", G_TYPE_DOUBLE, row.val.macro_f1,
                      "val-accuracy", G_TYPE_DOUBLE, row.val.accuracy, NULL);
  const std::string line = cxr::train::epoch_line(row, epochs);
  gst_structure_set(s, "row", G_TYPE_STRING, row.json().c_str(), "epochs", G_TYPE_INT, epochs, "line", G_TYPE_STRING,
                    line.c_str(), NULL);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
  if (progress) std::fprintf(stderr, "%s\n", line.c_str());
}

/// Creates the trainer once the classes are known (from the card, or the cxr-dataset event).
static void ensure_trainer(GstCxrTrain* self, TrainState& st) {
  if (st.trainer) return;
  const cxr::models::Task task = st.config.task;
  if (st.loss == "cross-entropy" && task != cxr::models::Task::Multiclass)
    throw cxr::InvalidArgument("loss=cross-entropy needs a multiclass task; this stream is multilabel");
  if (st.loss == "bce-with-logits" && task != cxr::models::Task::Multilabel)
    throw cxr::InvalidArgument("loss=bce-with-logits needs a multilabel task; this stream is multiclass");
  st.trainer = std::make_unique<cxr::train::Trainer>(st.config);
  const bool progress = st.progress;
  st.trainer->on_step = [self](const cxr::train::StepProgress& p) {
    gst_element_post_message(
        GST_ELEMENT(self),
        gst_message_new_element(GST_OBJECT(self), gst_structure_new("cxr-train-progress", "epoch", G_TYPE_UINT,
                                                                    static_cast<guint>(p.epoch), "step", G_TYPE_UINT64,
                                                                    static_cast<guint64>(p.step), "loss", G_TYPE_DOUBLE,
                                                                    p.loss, NULL)));
  };
  cxr::train::Trainer* trainer = st.trainer.get();
  st.trainer->on_epoch = [self, progress, trainer](const cxr::train::EpochRow& row) {
    post_epoch(self, row, progress, trainer->config().schedule.epochs);
  };
  for (uint64_t i = 0; i < st.errors_before; ++i) st.trainer->scan_error();
  if (st.trainer->epochs_done() > 0)
    GST_INFO_OBJECT(self, "resuming after %d complete epochs in %s", st.trainer->epochs_done(),
                    st.config.output_dir.c_str());
}

static gboolean gst_cxr_train_start(GstBaseSink* sink) {
  GstCxrTrain* self = GST_CXR_TRAIN(sink);
  for (const auto& note : cxr::runtime::prepare_cpu_runtime()) GST_INFO_OBJECT(self, "%s", note.c_str());
  return gst_cxr_guard_bool(GST_ELEMENT(self), [&]() -> gboolean {
    auto st = std::make_unique<TrainState>();
    read_settings(self, *st);
    if (st->config.output_dir.empty()) throw cxr::InvalidArgument("output-dir is not set");
    std::error_code ec;
    std::filesystem::create_directories(st->config.output_dir, ec);
    if (ec) throw cxr::IoError("cannot create output-dir " + st->config.output_dir + ": " + ec.message());
    self->state = st.release();
    return TRUE;
  });
}

static gboolean gst_cxr_train_stop(GstBaseSink* sink) {
  GstCxrTrain* self = GST_CXR_TRAIN(sink);
  delete self->state;
  self->state = nullptr;
  return TRUE;
}

static gboolean gst_cxr_train_set_caps(GstBaseSink* sink, GstCaps* caps) {
  GstCxrTrain* self = GST_CXR_TRAIN(sink);
  self->state->have_info = gst_video_info_from_caps(&self->state->info, caps);
  return self->state->have_info;
}

static std::vector<std::string> string_array(const GstStructure* s, const char* field) {
  std::vector<std::string> out;
  if (const GValue* arr = gst_structure_get_value(s, field))
    if (GST_VALUE_HOLDS_ARRAY(arr))
      for (guint i = 0; i < gst_value_array_get_size(arr); ++i)
        out.emplace_back(g_value_get_string(gst_value_array_get_value(arr, i)));
  return out;
}

static gboolean on_dataset(GstCxrTrain* self, TrainState& st, const GstStructure* s) {
  if (st.trainer) return TRUE;  // a second dataset event (e.g. after a flush) changes nothing
  cxr::train::TrainConfig& c = st.config;
  const std::vector<std::string> classes = string_array(s, "classes");
  const gchar* task = gst_structure_get_string(s, "task");
  const std::string task_s = task ? task : "none";
  if (st.from_card) {
    if (!classes.empty() && classes.size() != c.classes.size())
      throw cxr::InvalidArgument("the model card has " + std::to_string(c.classes.size()) + " classes, the stream " +
                                 std::to_string(classes.size()));
  } else {
    if (task_s != "multiclass" && task_s != "multilabel")
      throw cxr::InvalidArgument("the stream's task is '" + task_s + "': cxrtrain needs labelled scans");
    c.classes = classes;
    c.task = task_s == "multilabel" ? cxr::models::Task::Multilabel : cxr::models::Task::Multiclass;
  }
  if (const GValue* counts = gst_structure_get_value(s, "counts"))
    if (GST_VALUE_HOLDS_ARRAY(counts)) {
      c.class_counts.clear();
      for (guint i = 0; i < gst_value_array_get_size(counts); ++i)
        c.class_counts.push_back(g_value_get_uint64(gst_value_array_get_value(counts, i)));
    }
  // The dataset's size for auto pos-weight: `scans` when the source says it, else `total`.
  guint64 scans = 0, total = 0;
  if (gst_structure_get_uint64(s, "scans", &scans) || gst_structure_get_uint64(s, "total", &total))
    c.dataset_size = scans ? scans : total;
  guint epochs = 0;
  if (st.epochs_property == 0 && gst_structure_get_uint(s, "epochs", &epochs)) c.schedule.epochs = static_cast<int>(epochs);
  ensure_trainer(self, st);
  return TRUE;
}

static gboolean gst_cxr_train_event(GstBaseSink* sink, GstEvent* event) {
  GstCxrTrain* self = GST_CXR_TRAIN(sink);
  TrainState& st = *self->state;
  const gboolean ok = gst_cxr_guard_bool(GST_ELEMENT(self), [&]() -> gboolean {
    if (const GstStructure* s = gst_cxr_event_get(event, GST_CXR_EVENT_DATASET)) return on_dataset(self, st, s);
    if (gst_cxr_event_get(event, GST_CXR_EVENT_SCAN_ERROR)) {
      if (st.trainer)
        st.trainer->scan_error();
      else
        st.errors_before++;
      return TRUE;
    }
    if (const GstStructure* s = gst_cxr_event_get(event, GST_CXR_EVENT_PHASE)) {
      guint epoch = 0;
      gst_structure_get_uint(s, "epoch", &epoch);
      const gchar* split = gst_structure_get_string(s, "split");
      const gchar* state = gst_structure_get_string(s, "state");
      if (st.trainer && state && g_str_equal(state, "start"))
        st.trainer->begin_phase(phase_of(gst_cxr_split_from_string(split)), static_cast<int>(epoch));
      if (st.trainer && state && g_str_equal(state, "end"))
        st.trainer->end_phase(phase_of(gst_cxr_split_from_string(split)), static_cast<int>(epoch));
      return TRUE;
    }
    if (GST_EVENT_TYPE(event) == GST_EVENT_EOS && st.trainer) {
      st.trainer->finish();
      const cxr::metrics::Report& test = st.trainer->test_report();
      GstStructure* s = gst_structure_new("cxr-train-done", "output-dir", G_TYPE_STRING, st.config.output_dir.c_str(),
                                          "best-epoch", G_TYPE_INT, st.trainer->best_epoch(), "epochs", G_TYPE_INT,
                                          st.trainer->epochs_done(), "test-scans", G_TYPE_INT64, test.n, NULL);
      std::string line;
      if (test.n > 0) {
        line = cxr::train::test_line(st.trainer->best_epoch(), test.macro_f1, test.accuracy, test.n,
                                     st.config.output_dir);
        gst_structure_set(s, "test-f1", G_TYPE_DOUBLE, test.macro_f1, "test-accuracy", G_TYPE_DOUBLE, test.accuracy,
                          "line", G_TYPE_STRING, line.c_str(), NULL);
      }
      gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
      if (st.progress && !line.empty()) std::fprintf(stderr, "%s\n", line.c_str());
    }
    return TRUE;
  });
  if (!ok) {
    gst_event_unref(event);
    return FALSE;
  }
  return GST_BASE_SINK_CLASS(gst_cxr_train_parent_class)->event(sink, event);
}

static GstFlowReturn gst_cxr_train_render(GstBaseSink* sink, GstBuffer* buffer) {
  GstCxrTrain* self = GST_CXR_TRAIN(sink);
  TrainState& st = *self->state;
  const GstCxrScanMeta* meta = gst_buffer_get_cxr_scan_meta(buffer);
  if (!meta || meta->split == GST_CXR_SPLIT_NONE) {
    GST_DEBUG_OBJECT(self, "frame without a split: not used for training");
    return GST_FLOW_OK;
  }
  if (!st.have_info) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("No caps before the first frame"), (nullptr));
    return GST_FLOW_ERROR;
  }
  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, &st.info, buffer, GST_MAP_READ)) {
    GST_ELEMENT_ERROR(self, STREAM, FAILED, ("Cannot map frame"), (nullptr));
    return GST_FLOW_ERROR;
  }
  const gboolean ok = gst_cxr_guard_bool(GST_ELEMENT(self), [&]() -> gboolean {
    // A card knows its classes: no cxr-dataset event is needed.
    if (!st.trainer) {
      if (!st.from_card) throw cxr::InvalidArgument("no cxr-dataset event before the first scan: the classes are unknown");
      ensure_trainer(self, st);
    }
    std::vector<uint8_t> labels(meta->labels, meta->labels + meta->n_labels);
    st.trainer->add(phase_of(meta->split), static_cast<int>(meta->epoch), gst_cxr_frame_to_mat(&frame), meta->label,
                    labels, meta->path ? meta->path : "", meta->index);
    return TRUE;
  });
  gst_video_frame_unmap(&frame);
  return ok ? GST_FLOW_OK : GST_FLOW_ERROR;
}

static void gst_cxr_train_finalize(GObject* object) {
  GstCxrTrain* self = GST_CXR_TRAIN(object);
  for (gchar** s : {&self->model, &self->pretrained, &self->output_dir, &self->optimizer, &self->scheduler, &self->loss,
                    &self->pos_weight, &self->class_weights, &self->device, &self->input_size, &self->mean, &self->std, &self->master_addr})
    g_free(*s);
  delete self->state;
  G_OBJECT_CLASS(gst_cxr_train_parent_class)->finalize(object);
}

static void gst_cxr_train_class_init(GstCxrTrainClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSinkClass* basesink_class = GST_BASE_SINK_CLASS(klass);

  gobject_class->set_property = gst_cxr_train_set_property;
  gobject_class->get_property = gst_cxr_train_get_property;
  gobject_class->finalize = gst_cxr_train_finalize;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  auto str = [&](guint id, const char* name, const char* blurb, const char* def) {
    g_object_class_install_property(gobject_class, id, g_param_spec_string(name, name, blurb, def, rw));
  };
  auto dbl = [&](guint id, const char* name, const char* blurb, double lo, double hi, double def) {
    g_object_class_install_property(gobject_class, id, g_param_spec_double(name, name, blurb, lo, hi, def, rw));
  };
  auto uint = [&](guint id, const char* name, const char* blurb, guint lo, guint hi, guint def) {
    g_object_class_install_property(gobject_class, id, g_param_spec_uint(name, name, blurb, lo, hi, def, rw));
  };
  auto boolean = [&](guint id, const char* name, const char* blurb, gboolean def) {
    g_object_class_install_property(gobject_class, id, g_param_spec_boolean(name, name, blurb, def, rw));
  };
  str(PROP_MODEL, "model", "Model card (.toml) or architecture (resnet34, mobilenet_v3_large, efficientnet_b1)", nullptr);
  str(PROP_PRETRAINED, "pretrained", "torchvision state dict whose weights (all but the classifier) start the model",
      nullptr);
  str(PROP_OUTPUT_DIR, "output-dir", "Run directory (model.toml, best.pt, last.pt, metrics.jsonl, summary.json, ...)",
      DEFAULT_OUTPUT_DIR);
  uint(PROP_BATCH_SIZE, "batch-size", "Scans per optimisation step", 1, 65536, DEFAULT_BATCH_SIZE);
  str(PROP_OPTIMIZER, "optimizer", "adam or sgd", DEFAULT_OPTIMIZER);
  dbl(PROP_LEARNING_RATE, "learning-rate", "Initial learning rate", 0, G_MAXDOUBLE, DEFAULT_LEARNING_RATE);
  dbl(PROP_LR_END, "lr-end", "Final learning rate of the cosine schedule (eta_min)", 0, G_MAXDOUBLE, DEFAULT_LR_END);
  str(PROP_SCHEDULER, "scheduler",
      "cosine (CosineAnnealingLR(T_max=epochs, eta_min=lr-end), per epoch), step (StepLR(step-size, gamma)), none",
      DEFAULT_SCHEDULER);
  uint(PROP_STEP_SIZE, "step-size", "Epochs between decays of scheduler=step", 1, G_MAXUINT, DEFAULT_STEP_SIZE);
  dbl(PROP_GAMMA, "gamma", "Decay factor of scheduler=step", 0, 1, DEFAULT_GAMMA);
  dbl(PROP_MOMENTUM, "momentum", "SGD momentum", 0, 1, DEFAULT_MOMENTUM);
  dbl(PROP_WEIGHT_DECAY, "weight-decay", "L2 weight decay", 0, G_MAXDOUBLE, DEFAULT_WEIGHT_DECAY);
  str(PROP_LOSS, "loss", "auto (from the task), cross-entropy (multiclass), bce-with-logits (multilabel)", DEFAULT_LOSS);
  str(PROP_POS_WEIGHT, "pos-weight",
      "BCE pos_weight per class (comma-separated), or auto (negatives / positives from the stream's class counts)",
      nullptr);
  str(PROP_CLASS_WEIGHTS, "class-weights", "Cross-entropy weight per class (comma-separated)", nullptr);
  boolean(PROP_FREEZE_BACKBONE, "freeze-backbone", "Train the classifier layer only", FALSE);
  str(PROP_DEVICE, "device", "cpu, cuda, cuda:N or auto", DEFAULT_DEVICE);
  g_object_class_install_property(gobject_class, PROP_SEED,
                                  g_param_spec_uint64("seed", "seed", "Seed of the initial weights and dropout", 0,
                                                      G_MAXUINT64, DEFAULT_SEED, rw));
  uint(PROP_THREADS, "threads", "LibTorch intra-op threads (and OpenBLAS's, process-wide; 0: leave both; 1 for bit-reproducible runs)", 0, 1024,
       DEFAULT_THREADS);
  boolean(PROP_RESUME, "resume", "Continue from output-dir's last complete epoch (skips the epochs done)", FALSE);
  str(PROP_INPUT_SIZE, "input-size",
      "Network input, N or HxW: scans are resized to it (unset: the card's, or the frames' own size, which must not vary)",
      nullptr);
  uint(PROP_EPOCHS, "epochs", "Epochs the schedule plans for (0: as the stream announces)", 0, G_MAXUINT, DEFAULT_EPOCHS);
  str(PROP_MEAN, "mean", "Normalisation mean of pixel / max (one value or one per channel; default: the card's)", nullptr);
  str(PROP_STD, "std", "Normalisation std (one value or one per channel; default: the card's)", nullptr);
  boolean(PROP_PROGRESS, "progress", "Also print each epoch's line to stderr (the cxr-epoch bus message carries it; cxr run prints it)", DEFAULT_PROGRESS);
  auto integer = [&](guint id, const char* name, const char* blurb, gint lo, gint hi, gint def) {
    g_object_class_install_property(gobject_class, id, g_param_spec_int(name, name, blurb, lo, hi, def, rw));
  };
  integer(PROP_RANK, "rank",
          "This process's rank in a data-parallel job (rank 0 hosts the store and writes output-dir); -1: RANK from "
          "the environment, else 0",
          -1, G_MAXINT, DEFAULT_RANK);
  integer(PROP_WORLD_SIZE, "world-size",
          "Processes in a data-parallel job (gradients averaged every step over c10d/Gloo); 0: WORLD_SIZE from the "
          "environment, else 1",
          0, G_MAXINT, DEFAULT_WORLD_SIZE);
  str(PROP_MASTER_ADDR, "master-addr", "Rank 0's host, where its TCPStore listens (unset: MASTER_ADDR, else 127.0.0.1)",
      nullptr);
  integer(PROP_MASTER_PORT, "master-port", "The TCPStore's port (0: MASTER_PORT, else 29500)", 0, 65535,
          DEFAULT_MASTER_PORT);
  dbl(PROP_DIST_TIMEOUT, "dist-timeout",
      "Seconds to wait for the other ranks at the rendezvous and in every collective; a rank that dies or hangs ends "
      "the job with an error naming it within this time (0: CXR_DIST_TIMEOUT, else 300)",
      0, G_MAXDOUBLE, DEFAULT_DIST_TIMEOUT);
  boolean(PROP_SYNC_BATCHNORM, "sync-batchnorm",
          "BatchNorm statistics over the global batch of every step, as torch.nn.SyncBatchNorm (data-parallel jobs)",
          DEFAULT_SYNC_BATCHNORM);

  gst_element_class_set_static_metadata(element_class, "Chest X-ray trainer", "Sink/Analyzer",
                                        "Trains a classifier from a stream of labelled scans; writes a run directory",
                                        "gst-cxr developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);

  basesink_class->start = GST_DEBUG_FUNCPTR(gst_cxr_train_start);
  basesink_class->stop = GST_DEBUG_FUNCPTR(gst_cxr_train_stop);
  basesink_class->set_caps = GST_DEBUG_FUNCPTR(gst_cxr_train_set_caps);
  basesink_class->event = GST_DEBUG_FUNCPTR(gst_cxr_train_event);
  basesink_class->render = GST_DEBUG_FUNCPTR(gst_cxr_train_render);
  GST_DEBUG_CATEGORY_INIT(gst_cxr_train_debug, "cxrtrain", 0, "Chest X-ray trainer");
}

static void gst_cxr_train_init(GstCxrTrain* self) {
  self->output_dir = g_strdup(DEFAULT_OUTPUT_DIR);
  self->batch_size = DEFAULT_BATCH_SIZE;
  self->optimizer = g_strdup(DEFAULT_OPTIMIZER);
  self->learning_rate = DEFAULT_LEARNING_RATE;
  self->lr_end = DEFAULT_LR_END;
  self->scheduler = g_strdup(DEFAULT_SCHEDULER);
  self->step_size = DEFAULT_STEP_SIZE;
  self->gamma = DEFAULT_GAMMA;
  self->momentum = DEFAULT_MOMENTUM;
  self->weight_decay = DEFAULT_WEIGHT_DECAY;
  self->loss = g_strdup(DEFAULT_LOSS);
  self->device = g_strdup(DEFAULT_DEVICE);
  self->seed = DEFAULT_SEED;
  self->threads = DEFAULT_THREADS;
  self->epochs = DEFAULT_EPOCHS;
  self->progress = DEFAULT_PROGRESS;
  self->rank = DEFAULT_RANK;
  self->world_size = DEFAULT_WORLD_SIZE;
  self->master_port = DEFAULT_MASTER_PORT;
  self->dist_timeout = DEFAULT_DIST_TIMEOUT;
  self->sync_batchnorm = DEFAULT_SYNC_BATCHNORM;
  gst_base_sink_set_sync(GST_BASE_SINK(self), FALSE);
}
