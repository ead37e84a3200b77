// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// CPU inference of the built-in architectures (ResNet-34, MobileNetV3-Large, EfficientNet-B1) on
/// XNNPACK's operators, built from the same loaded LibTorch module (and so the same state dict and
/// model card) that the LibTorch path runs.
///
/// At construction every BatchNorm is folded into the convolution before it (in double precision,
/// as cxr::models::fold_conv_bn), ReLU and Hardsigmoid become the convolution's or linear layer's
/// output clamp (Hardsigmoid(z) = clamp(z / 6 + 1/2, 0, 1): the 1/6 and 1/2 go into the weights
/// and bias), the layers are laid out NHWC with their activations in a few buffers reused along
/// the network, and residual adds, Hardswish, SiLU and the squeeze-excitation scaling run in
/// place. An execution context packs the weights once (XNNPACK's own blocked layouts) and sets up
/// its operators for a batch size, again only when the batch size changes. MobileNetV3-Large and
/// EfficientNet-B1 run a batch one sample at a time through their large early maps, and the rest
/// on the whole batch (faster: one sample's activations stay in cache, the late layers' weights
/// are read once per batch). Concurrent run() calls
/// each take a context of their own (made on first need), so several threads can run batches side
/// by side. No LibTorch types in this header.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace cxr::models {
class ClassifierImpl;
}

namespace cxr::engine {

/// Whether this build has the XNNPACK engine (meson feature `xnnpack`).
bool xnnpack_available();

/// Whether XnnNetwork runs this architecture (torchvision name) in this build.
bool xnnpack_supports(const std::string& architecture);

struct XnnOptions {
  int height = 224;    ///< input size the network runs at
  int width = 224;
  int channels = 3;
  int max_batch = 1;   ///< largest batch run() gets
  int threads = 1;     ///< threads of each execution context (1: the calling thread only)
  bool embeddings = false;  ///< keep the penultimate features for run()
  /// Depthwise 3x3 and 5x5 convolutions on the engine's own kernel (depthwise.hpp) where the CPU
  /// has AVX-512F; false: on XNNPACK's operator (for comparison).
  bool own_depthwise = true;
  /// MobileNetV3-Large and EfficientNet-B1 at batches of 2 or more: layers run one sample at a
  /// time until the first point where the map has at most this many pixels and no residual
  /// branch is open, and on the whole batch from there (1: from the final pooling on). 784
  /// (28x28): MobileNetV3-Large at 224 px, batch 8, one thread ran 1.05x faster than with 1,
  /// EfficientNet-B1 the same.
  int batched_pixels = 784;
};

/// Time of one layer in profile().
struct LayerTime {
  std::string name;   ///< the module's torchvision name ("features.3.block.1"), with what runs
  double seconds = 0;
};

class XnnNetwork {
 public:
  /// Builds the network from `net` (a built-in architecture, weights loaded, BatchNorms not
  /// folded; it is only read) and packs its weights for one execution context. Throws
  /// cxr::InvalidArgument for an architecture or build without the engine, cxr::Error when
  /// XNNPACK refuses an operator.
  XnnNetwork(const models::ClassifierImpl& net, XnnOptions options);
  ~XnnNetwork();
  XnnNetwork(const XnnNetwork&) = delete;
  XnnNetwork& operator=(const XnnNetwork&) = delete;

  const XnnOptions& options() const;
  size_t classes() const;
  size_t embedding_size() const;

  /// Runs `n` (1..max_batch) prepared inputs, NCHW float ([n, channels, height, width], as the
  /// Predictor's input banks hold them), writing logits [n, classes] and, when asked for at
  /// construction and `embedding` is given, the penultimate features [n, embedding_size()].
  /// Safe to call from several threads at once.
  void run(const float* input, size_t n, float* logits, float* embedding = nullptr);

  /// Runs `n` inputs `repeats` times, timing each layer; returns the best time of each layer, in
  /// network order (the input's transposition to NHWC first).
  std::vector<LayerTime> profile(const float* input, size_t n, int repeats);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxr::engine
