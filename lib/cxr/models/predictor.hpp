// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Batch inference from a model card: owns the network, its device and precision, and turns a
/// batch of prepared inputs into per-scan results. No LibTorch types in this header, so callers
/// (elements, tools) compile without LibTorch's headers.
#include <opencv2/core.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cxr/models/card.hpp"

namespace cxr::models {

enum class Precision { FP32, FP16, BF16 };

const char* to_string(Precision p);

/// Layout of activations and convolution weights. Which is faster depends on the network and
/// the CPU (oneDNN's kernels): on AVX2 machines ResNet-34 runs fastest on oneDNN tensors with
/// pre-packed weights, MobileNetV3 and EfficientNet in channels-last. Auto on the CPU takes the
/// layout remembered for this machine and work (PredictorOptions::layout_cache); without one it
/// times the candidates on the first full batches of real scans (each candidate a warm-up batch,
/// then timed on at least 4 scans: one batch, or rounds of smaller ones taken in turn; every
/// result kept; ResNet-34: oneDNN, Winograd, channels-last; the others:
/// channels-last, NCHW), keeps the fastest and remembers it. On CUDA it takes
/// channels-last for fp16/bf16, NCHW for fp32. OneDnn: CPU, fp32, ResNet-34 only. Winograd:
/// channels-last with ResNet-34's stride-1 3x3 convolutions by Winograd F(2x2, 3x3) (CPU, fp32;
/// cxr::models::WinogradConv).
enum class Layout { Auto, ChannelsLast, Contiguous, OneDnn, Winograd };

const char* to_string(Layout l);
inline std::ostream& operator<<(std::ostream& out, Layout l) { return out << to_string(l); }

/// What runs the network. LibTorch runs every card on every device (the reference: CUDA,
/// TorchScript cards, fp16/bf16; Grad-CAM and training always use it). XNNPACK
/// (cxr/engine/xnn_network.hpp) runs the built-in architectures on the CPU in fp32, BatchNorm
/// folded, activations and residual adds fused, weights packed once (tests/bench/bench_ort.py
/// measures both engines against ONNX Runtime). Auto takes XNNPACK for MobileNetV3-Large and
/// EfficientNet-B1 where it can run (CPU, fp32, BatchNorm folding on, memory format auto, a
/// build with XNNPACK), where it measured faster than LibTorch's fastest layout; ResNet-34 and
/// everything else run on LibTorch (ResNet-34's Winograd and oneDNN layouts measured faster).
enum class Engine { Auto, LibTorch, Xnnpack };

const char* to_string(Engine e);
inline std::ostream& operator<<(std::ostream& out, Engine e) { return out << to_string(e); }

/// The fastest of `n` candidates, as the layout choice of Layout::Auto makes it: `use(i)`
/// switches to candidate i, `seconds(warm_up)` times one pass (after an untimed one when
/// `warm_up`: the first pass of a layout builds its kernels). Three alternating rounds, so that
/// drift in the machine's load hits all alike, the best time of each; candidates come in order
/// of preference, and a later one must be 3 % faster to replace an earlier one (timings this
/// close flip from run to run, and the choice should not). Leaves the last one timed in use.
size_t pick_fastest(size_t n, const std::function<void(size_t)>& use, const std::function<double(bool)>& seconds);

/// The choice among candidates with these best times, by pick_fastest()'s rule (in order of
/// preference; a later one must be 3 % faster).
size_t pick_from_times(const std::vector<double>& best);

struct PredictorOptions {
  std::string device = "auto";         ///< auto (CUDA when available, else CPU), cpu, cuda, cuda:N
  Precision precision = Precision::FP32;  ///< FP16 / BF16 need a CUDA device
  bool embeddings = false;             ///< also return the penultimate features
  bool fold_batchnorm = true;          ///< fold BatchNorm into convolutions at load
  int max_batch = 8;                   ///< slots of the input batch
  /// Input batches ("banks") of max_batch slots each: with 2, one bank can be filled while
  /// run() reads the other on another thread.
  int input_banks = 1;
  /// LibTorch intra-op threads, set on the thread that constructs (for loading and the
  /// Layout::Auto timing) and on the thread that calls run() (a GStreamer streaming thread is
  /// not the one the application configured); 0 leaves LibTorch's setting. Keep all calls on
  /// one thread (cxr::runtime::ComputeThread): see there for why.
  int threads = 0;
  /// Engine::Xnnpack refuses what it cannot run (cxr::InvalidArgument); Auto then takes LibTorch.
  Engine engine = Engine::Auto;
  Layout layout = Layout::Auto;        ///< LibTorch engine, built-in architectures with fold_batchnorm only
  /// The file that remembers Layout::Auto's choices (cxr/models/layout_cache.hpp); "" for none:
  /// each predictor times the layouts anew on its first batches.
  std::string layout_cache;
  /// Predictors that run side by side on the same cores (cxrinfer's streams): part of the
  /// layout cache's key, since the fastest layout for one core can differ from that for two.
  int streams = 1;
  /// Called when Layout::Auto settles on a layout: `how` says whether it came from the cache or
  /// from timing, with the timings (seconds per scan). On the thread that called run().
  std::function<void(Layout chosen, const std::string& how)> on_layout;
};

/// What the network said about one scan.
struct Prediction {
  std::vector<float> logits;
  std::vector<float> probabilities;  ///< softmax (multiclass) or sigmoid (multilabel)
  std::vector<uint8_t> decisions;    ///< one-hot argmax (multiclass) or probability >= threshold
  int top = -1;                      ///< index of the highest probability
  std::vector<float> embedding;      ///< penultimate features when asked for
};

class Predictor {
 public:
  /// Loads the card's weights onto the device. Throws cxr::InvalidArgument (device, precision),
  /// cxr::IoError / WeightsError (weights file) or cxr::ConfigError (card and weights disagree,
  /// e.g. on the number of classes), always naming the card.
  Predictor(ModelCard card, PredictorOptions options);
  ~Predictor();
  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  const ModelCard& card() const;
  const PredictorOptions& options() const;
  /// The device actually used ("cpu", "cuda:0").
  std::string device() const;
  /// The engine in use (never Auto).
  Engine engine() const;
  /// The layout in use by the LibTorch engine (never Auto; while Layout::Auto times candidates on the first batches,
  /// the one being timed).
  Layout layout() const;
  /// False while Layout::Auto is still timing candidates on the batches run() gets.
  bool layout_settled() const;
  /// Floats of one prepared input (channels * height * width).
  size_t input_size() const;

  /// Slot i (< max_batch) of input bank `bank` (< input_banks), to fill with
  /// prepare_input_into(); stays valid for the predictor's life. Filling one bank while run()
  /// reads another is safe; run() has read its bank once it returns.
  float* slot(size_t i, size_t bank = 0);
  /// Runs the network on slots [0, n) of bank `bank`, with options().threads intra-op threads
  /// on the calling thread. Several threads may run() at once, each on its own bank: the
  /// network's weights are only read.
  std::vector<Prediction> run(size_t n, size_t bank = 0);

  /// Convenience: prepares and predicts any number of scans (in chunks of max_batch).
  std::vector<Prediction> predict(const std::vector<cv::Mat>& scans);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Writes freshly initialised weights (torchvision's initialisation, seeded) for a card's
/// architecture and classes to card.weights: a model to train, or a stand-in for tests.
void write_initial_weights(const ModelCard& card, uint64_t seed);

}  // namespace cxr::models
