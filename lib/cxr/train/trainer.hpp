// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Training from a stream of scans: the scans of each phase (train / val / test of an epoch)
/// arrive one by one; the trainer batches them, steps the optimizer, evaluates, keeps the best
/// weights by validation loss and writes the run directory:
///
/// | file | what |
/// |---|---|
/// | `model.toml` | a model card serving `best.pt` with the input size and normalisation used |
/// | `best.pt` | state dict of the best epoch (torch.load + torchvision load_state_dict(strict=True)) |
/// | `last.pt` | state dict of the last complete epoch (same format) |
/// | `last.opt.pt` | LibTorch archive for `resume`: model, optimizer, epoch, learning rate, RNG, best so far |
/// | `metrics.jsonl` | one row per epoch (epoch, train_loss, train_f1, train_accuracy, val_loss, val_f1, val_accuracy, lr, seconds, ...) |
/// | `summary.json` | test metrics with the best weights, best_epoch, totals |
/// | `test_predictions.csv` | one row per test scan: path, index, truth, predicted, one probability per class |
///
/// Every file is written atomically (cxr/train/run_files.hpp); `last.opt.pt` is written last in
/// an epoch, so it marks the last complete epoch. No LibTorch types in this header.
#include <opencv2/core.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cxr/metrics/metrics.hpp"
#include "cxr/models/card.hpp"
#include "cxr/train/rendezvous.hpp"
#include "cxr/train/schedule.hpp"

namespace cxr::train {

enum class Optimizer { Adam, SGD };
Optimizer optimizer_from_string(const std::string& s);
const char* to_string(Optimizer o);

/// Which part of an epoch a scan belongs to (values as cxr::data::Split / GstCxrSplit).
enum class Phase : int { None = 0, Train = 1, Val = 2, Test = 3 };
const char* to_string(Phase p);

struct TrainConfig {
  std::string architecture;                 ///< resnet34 | mobilenet_v3_large | efficientnet_b1
  models::Task task = models::Task::Multiclass;
  std::vector<std::string> classes;
  std::string name;                         ///< model id written to the card (default: architecture)
  std::string pretrained;                   ///< state dict whose all-but-head weights start the model
  models::InputSpec input;                  ///< input size (see fixed_size), channels, mean, std
  bool fixed_size = false;                  ///< false: the first scan's size becomes the input size, and
                                            ///< every scan must have it; true: scans are resized to input
  std::string output_dir;
  int batch_size = 32;
  Optimizer optimizer = Optimizer::Adam;
  double momentum = 0.9;                    ///< SGD only
  double weight_decay = 0;
  ScheduleParams schedule;                  ///< lr, lr_end, scheduler, epochs (0: not yet known)
  std::vector<float> class_weights;         ///< CE weights, one per class; empty: none
  std::vector<float> pos_weight;            ///< BCE pos_weight, one per class; empty: none
  bool pos_weight_auto = false;             ///< derive pos_weight as neg/pos from class_counts
  std::vector<uint64_t> class_counts;       ///< positives per class in the dataset (auto pos_weight)
  uint64_t dataset_size = 0;                ///< scans in the dataset (auto pos_weight)
  bool freeze_backbone = false;             ///< train the head only
  std::string device = "cpu";               ///< cpu, cuda, cuda:N, auto
  uint64_t seed = 42;
  int threads = 0;                          ///< LibTorch intra-op threads; 0: leave as is
  bool resume = false;                      ///< continue from output_dir/last.opt.pt when present
  float threshold = 0.5f;                   ///< multilabel decision threshold on sigmoid probabilities
  /// Data-parallel training (world_size > 1): the ranks connect through rank 0's store, start
  /// from rank 0's weights, average their gradients every step and gather their val and test
  /// predictions, so that every rank computes the metrics and picks the best epoch as one
  /// process would; only rank 0 writes the run directory.
  DistOptions dist;
  bool sync_batchnorm = false;              ///< BatchNorm statistics over the global batch (SyncBatchNorm)
};

/// Where an epoch's training phase spent its wall time, in seconds.
struct EpochProfile {
  double input = 0;      ///< scans into the batch tensor (normalise, replicate channels)
  double forward = 0;    ///< forward pass and loss
  double backward = 0;
  double optimizer = 0;  ///< zero_grad is in forward
  double allreduce = 0;  ///< data-parallel runs: averaging gradients and broadcasting buffers
  double waiting = 0;    ///< the rest: the trainer waiting for scans from upstream, and metrics
};

/// One row of metrics.jsonl.
struct EpochRow {
  int epoch = 0;
  metrics::Report train;
  bool has_val = false;
  metrics::Report val;
  double lr = 0;
  double seconds = 0;        ///< the epoch's wall time, train and val phases
  double train_seconds = 0;  ///< the train phase's wall time
  EpochProfile profile;      ///< how train_seconds split
  bool best = false;
  /// The JSON object of the row (one line, no newline).
  std::string json() const;
};

/// The human line for an epoch ("cxrtrain epoch 3/30  train loss ... | val loss ... | lr ... | 70.2 s *"),
/// no newline; `epochs` 0 prints "?" for the total. What `cxr run` prints from cxrtrain's
/// cxr-epoch messages, and cxrtrain itself with progress=true.
std::string epoch_line(const EpochRow& row, int epochs);

/// The line for the test pass with the best weights, no newline.
std::string test_line(int best_epoch, double f1, double accuracy, int64_t scans, const std::string& output_dir);

/// One optimisation step, for progress reports.
struct StepProgress {
  int epoch = 0;
  int64_t step = 0;  ///< steps in this epoch so far
  double loss = 0;   ///< this batch's mean loss
};

class Trainer {
 public:
  /// Creates the model (seeded), loads `pretrained`, creates the run directory and, with
  /// `resume`, restores the last complete epoch. Throws cxr::InvalidArgument / ConfigError /
  /// IoError / models::WeightsError with messages naming the property or file.
  explicit Trainer(TrainConfig config);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  const TrainConfig& config() const;
  /// Epochs already complete (restored by resume); scans of these epochs are ignored.
  int epochs_done() const;
  /// The device in use ("cpu", "cuda:0").
  std::string device() const;
  /// This process's rank (0 when not distributed); rank 0 writes the run directory.
  int rank() const;

  /// Called after each optimisation step / each closed epoch (on the streaming thread).
  std::function<void(const StepProgress&)> on_step;
  std::function<void(const EpochRow&)> on_epoch;

  /// Adds one scan of `phase` in `epoch` (a switch of phase or epoch closes the previous one).
  /// `label` is the class index (multiclass), `labels` the multi-hot vector (multilabel). The
  /// scan is CV_8UC1 or CV_16UC1. Returns false when the scan was ignored (an epoch done before
  /// a resume, or unlabelled). Throws cxr::InvalidArgument for a bad scan or label.
  bool add(Phase phase, int epoch, const cv::Mat& scan, int label, const std::vector<uint8_t>& labels,
           const std::string& path, uint64_t index);
  /// The stream says a phase begins. In a data-parallel run every rank goes through every phase,
  /// including one whose share of scans is empty here; one process needs no call.
  void begin_phase(Phase phase, int epoch);
  /// The stream says a phase ended: runs what is batched. A phase with no scans is fine.
  void end_phase(Phase phase, int epoch);
  /// A scan could not be decoded upstream; counted in the summary.
  void scan_error();
  /// End of stream: closes the last epoch and writes the test results and summary.json.
  /// Idempotent.
  void finish();

  /// The best epoch (-1 before any).
  int best_epoch() const;
  /// Test metrics with the best weights (n == 0 when the stream had no test scans).
  const metrics::Report& test_report() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxr::train
