// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/predictor.hpp"

#include <torch/script.h>
#include <torch/utils.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <vector>

#include "cxr/engine/xnn_network.hpp"
#include "cxr/error.hpp"
#include "cxr/models/classifier.hpp"
#include "cxr/models/input.hpp"
#include "cxr/models/layout_cache.hpp"
#include "cxr/models/weights.hpp"
#include "cxr/runtime/allocator.hpp"
#include "cxr/runtime/device.hpp"
#include "cxr/runtime/threads.hpp"

namespace cxr::models {
namespace {

torch::ScalarType dtype_of(Precision p) {
  switch (p) {
    case Precision::FP16: return torch::kHalf;
    case Precision::BF16: return torch::kBFloat16;
    default: return torch::kFloat;
  }
}

}  // namespace

const char* to_string(Precision p) {
  switch (p) {
    case Precision::FP16: return "fp16";
    case Precision::BF16: return "bf16";
    default: return "fp32";
  }
}

const char* to_string(Engine e) {
  switch (e) {
    case Engine::LibTorch: return "libtorch";
    case Engine::Xnnpack: return "xnnpack";
    default: return "auto";
  }
}

const char* to_string(Layout l) {
  switch (l) {
    case Layout::ChannelsLast: return "channels-last";
    case Layout::Contiguous: return "contiguous";
    case Layout::OneDnn: return "onednn";
    case Layout::Winograd: return "winograd";
    default: return "auto";
  }
}

size_t pick_fastest(size_t n, const std::function<void(size_t)>& use, const std::function<double(bool)>& seconds) {
  std::vector<double> best(n, 1e30);
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < n; ++i) {
      use(i);
      best[i] = std::min(best[i], seconds(round == 0));
    }
  }
  return pick_from_times(best);
}

size_t pick_from_times(const std::vector<double>& best) {
  size_t pick = 0;
  for (size_t i = 1; i < best.size(); ++i) {
    if (best[i] < 0.97 * best[pick]) pick = i;
  }
  return pick;
}

struct Predictor::Impl {
  ModelCard card;
  PredictorOptions options;
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat;
  std::shared_ptr<ClassifierImpl> net;
  std::unique_ptr<torch::jit::Module> script;
  std::vector<torch::Tensor> banks;  // input_banks x [max_batch, C, H, W] float32 on the CPU
  Layout layout = Layout::Contiguous;  // never Auto
  Engine engine = Engine::LibTorch;    // never Auto
  std::unique_ptr<engine::XnnNetwork> xnn;  // Engine::Xnnpack: the network (net is then released)

  // Packed oneDNN and Winograd weights survive a switch to another layout (the Auto
  // trial switches back and forth); dense weights keep their layout while the oneDNN path runs.
  // The Winograd path runs its other convolutions dense, on channels-last weights.
  void set_layout(Layout l) {
    net->set_onednn(l == Layout::OneDnn);
    net->set_winograd(l == Layout::Winograd);
    if (l != Layout::OneDnn) set_weight_layout(*net, l == Layout::ChannelsLast || l == Layout::Winograd);
    layout = l;
  }

  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* embedding) {
    if (net) {
      auto f = net->features(x);
      if (!embedding) return net->classify(f);
      *embedding = net->embed(f);
      return net->head(*embedding);
    }
    return script->forward({x}).toTensor();
  }

  // Layout::Auto on the CPU: the candidates, in order of preference, and what timing them on
  // real batches has found so far. Batches visit the candidates in `visits` order: two each
  // first, of which the first warms the candidate up (oneDNN builds its primitives, Winograd
  // transforms its weights, the allocator fills its cache) and is not timed; then, for batches
  // smaller than kTrialTimedScans, further rounds over all candidates in turn, until each has
  // been timed on that many scans. One scan alone was too noisy a clock: at batch 1 it once
  // chose oneDNN for ResNet-34 where Winograd ran it faster.
  static constexpr int kTrialTimedScans = 4;
  struct Trial {
    std::vector<Layout> candidates;
    std::vector<size_t> visits;
    size_t next = 0;
    std::vector<int> runs;
    std::vector<double> best;  // seconds per scan, best timed batch
    std::string key;
  };
  Trial trial;
  std::atomic<bool> exploring{false};
  std::mutex explore_mutex;  // run() calls take turns while exploring (layouts switch)

  // ResNet-34 leaves NCHW out: in every measurement on record (AVX2 and AVX-512, 1 and 2
  // threads, batch 1 and 8) it trailed channels-last or oneDNN, and a shorter trial settles
  // within a small job's first six batches. memory-format=contiguous still runs it.
  std::vector<Layout> auto_candidates() const {
    std::vector<Layout> c;
    if (net->supports_onednn()) c.push_back(Layout::OneDnn);
    if (net->supports_winograd()) c.push_back(Layout::Winograd);
    c.push_back(Layout::ChannelsLast);
    if (!net->supports_onednn()) c.push_back(Layout::Contiguous);
    return c;
  }

  void settle(Layout l, const std::string& how) {
    set_layout(l);
    if (layout != Layout::OneDnn) net->release_onednn();
    if (layout != Layout::Winograd) net->release_winograd();
    if (options.on_layout) options.on_layout(l, how);
  }

  // Auto on the CPU: the remembered layout, or the start of the timing on real batches.
  void start_auto(const InputSpec& in) {
    const auto candidates = auto_candidates();
    LayoutKey key;
    key.architecture = card.architecture;
    key.height = in.height;
    key.width = in.width;
    key.batch = options.max_batch;
    key.threads = options.threads > 0 ? options.threads : at::get_num_threads();
    key.streams = options.streams;
    key.precision = to_string(options.precision);
    trial.key = key.str();
    const std::string cached = lookup_layout(options.layout_cache, trial.key, std::time(nullptr));
    for (Layout l : candidates) {
      if (!cached.empty() && cached == to_string(l)) {
        settle(l, "remembered in " + options.layout_cache);
        return;
      }
    }
    trial.candidates = candidates;
    trial.runs.assign(candidates.size(), 0);
    trial.best.assign(candidates.size(), 1e30);
    for (size_t i = 0; i < candidates.size(); ++i) trial.visits.insert(trial.visits.end(), {i, i});
    const int rounds = (kTrialTimedScans + options.max_batch - 1) / options.max_batch;
    for (int r = 1; r < rounds; ++r) {
      for (size_t i = 0; i < candidates.size(); ++i) trial.visits.push_back(i);
    }
    set_layout(candidates[0]);
    exploring.store(true, std::memory_order_release);
  }

  // One full batch of the trial (explore_mutex held): runs it in the candidate whose turn it
  // is, times it, and settles once every candidate has had its turns.
  torch::Tensor trial_forward(const torch::Tensor& bank_rows, torch::Tensor* embedding) {
    const size_t c = trial.visits[trial.next];
    if (layout != trial.candidates[c]) set_layout(trial.candidates[c]);
    const auto t0 = std::chrono::steady_clock::now();
    auto x = bank_rows;
    if (layout == Layout::ChannelsLast) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    auto logits = forward(x, embedding);
    const double per_scan =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / static_cast<double>(x.size(0));
    if (trial.runs[c]++ > 0) trial.best[c] = std::min(trial.best[c], per_scan);
    if (++trial.next == trial.visits.size()) {
      const size_t pick = pick_from_times(trial.best);
      std::string timings;
      for (size_t i = 0; i < trial.candidates.size(); ++i) {
        char part[64];
        std::snprintf(part, sizeof part, "%s%s=%.6f", i ? " " : "", to_string(trial.candidates[i]), trial.best[i]);
        timings += part;
      }
      const bool kept = remember_layout(options.layout_cache, trial.key, to_string(trial.candidates[pick]), timings,
                                        std::time(nullptr));
      settle(trial.candidates[pick], "timed on the first batches (s/scan: " + timings + ")" +
                                         (kept ? ", remembered in " + options.layout_cache : std::string()));
      exploring.store(false, std::memory_order_release);
    }
    return logits;
  }
};

Predictor::Predictor(ModelCard card, PredictorOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.card = std::move(card);
  m.options = options;
  const std::string who = "model card " + (m.card.path.empty() ? m.card.name : m.card.path);
  if (options.max_batch < 1) throw InvalidArgument("batch size must be >= 1");
  if (options.input_banks < 1) throw InvalidArgument("input banks must be >= 1");
  if (options.threads < 0) throw InvalidArgument("threads must be >= 0, got " + std::to_string(options.threads));
  m.device = runtime::resolve_device(options.device);
  m.dtype = dtype_of(options.precision);
  // Loading, the probe, the layout timing and run() all run with the threads they were given.
  runtime::set_compute_threads(options.threads);
  runtime::use_caching_cpu_allocator();  // large activations are reused instead of page-faulted anew each batch
  if (m.dtype != torch::kFloat && !m.device.is_cuda()) {
    throw InvalidArgument(std::string("precision ") + to_string(options.precision) +
                          " needs a CUDA device (device is " + m.device.str() + "); use fp32 on the CPU");
  }
  const auto n_classes = static_cast<int64_t>(m.card.classes.size());
  const InputSpec& in = m.card.input;

  if (m.card.architecture == "torchscript") {
    if (options.embeddings) {
      throw InvalidArgument(who + ": embeddings need one of the built-in architectures, not a TorchScript file");
    }
    try {
      m.script = std::make_unique<torch::jit::Module>(torch::jit::load(m.card.weights, m.device));
    } catch (const c10::Error& e) {
      std::string msg = e.what_without_backtrace();
      throw WeightsError(who + ": cannot load TorchScript file " + m.card.weights + ": " + msg.substr(0, msg.find('\n')));
    }
    m.script->eval();
    m.script->to(m.dtype);
  } else {
    m.net = make_classifier(m.card.architecture, n_classes);
    try {
      load_weights(*m.net, m.card.weights);
    } catch (const WeightsError& e) {
      throw WeightsError(who + " (" + m.card.architecture + ", " + std::to_string(n_classes) + " classes): " + e.what());
    }
    // XNNPACK where asked or, for auto, where it can run; it folds and packs from the loaded
    // (unfolded) module, which is then no longer needed.
    std::string refusal;
    if (m.device.is_cuda()) refusal = "the CPU (device is " + m.device.str() + ")";
    else if (m.dtype != torch::kFloat) refusal = "fp32";
    else if (!engine::xnnpack_supports(m.card.architecture)) refusal = engine::xnnpack_available() ? "a built-in architecture" : "a build with XNNPACK";
    else if (!options.fold_batchnorm) refusal = "BatchNorm folding";
    else if (options.layout != Layout::Auto) refusal = std::string("memory format auto (") + to_string(options.layout) + " is LibTorch's)";
    if (options.engine == Engine::Xnnpack && !refusal.empty()) {
      throw InvalidArgument(who + ": engine xnnpack needs " + refusal);
    }
    // Auto leaves ResNet-34 to LibTorch: its Winograd and oneDNN layouts (timed by Layout::Auto)
    // ran it faster than XNNPACK's direct 3x3 convolutions (tests/bench/bench_ort.py).
    const bool auto_libtorch = options.engine == Engine::Auto && m.card.architecture == "resnet34";
    if (options.engine != Engine::LibTorch && refusal.empty() && !auto_libtorch) {
      engine::XnnOptions xo;
      xo.height = in.height;
      xo.width = in.width;
      xo.channels = in.channels;
      xo.max_batch = options.max_batch;
      xo.threads = std::max(1, options.threads > 0 ? options.threads : at::get_num_threads());
      xo.embeddings = options.embeddings;
      m.net->eval();
      m.xnn = std::make_unique<engine::XnnNetwork>(*m.net, xo);
      m.engine = Engine::Xnnpack;
      m.net.reset();
    } else if (options.fold_batchnorm) {
      if (options.layout == Layout::OneDnn && (m.device.is_cuda() || !m.net->supports_onednn())) {
        throw InvalidArgument(who + ": memory format onednn needs the CPU and resnet34 (device " + m.device.str() +
                              ", " + m.card.architecture + ")");
      }
      if (options.layout == Layout::Winograd &&
          (m.device.is_cuda() || m.dtype != torch::kFloat || !m.net->supports_winograd())) {
        throw InvalidArgument(who + ": memory format winograd needs the CPU, fp32 and resnet34 (device " +
                              m.device.str() + ", " + m.card.architecture + ")");
      }
      // Auto starts from channels-last (the CPU's choice is timed below).
      const bool cl = options.layout == Layout::Auto ? (!m.device.is_cuda() || m.dtype != torch::kFloat)
                                                     : options.layout == Layout::ChannelsLast;
      prepare_for_inference(*m.net, m.device, m.dtype, cl);
      m.layout = cl ? Layout::ChannelsLast : Layout::Contiguous;
      if (options.layout == Layout::OneDnn || options.layout == Layout::Winograd) m.set_layout(options.layout);
    } else {
      if (options.layout == Layout::OneDnn || options.layout == Layout::Winograd) {
        throw InvalidArgument(who + ": memory format " + to_string(options.layout) + " needs BatchNorm folding");
      }
      m.net->eval();
      m.net->to(m.device, m.dtype);
    }
  }
  for (int b = 0; b < options.input_banks; ++b) {
    auto bank = torch::zeros({options.max_batch, in.channels, in.height, in.width}, torch::kFloat);
    m.banks.push_back(m.device.is_cuda() ? bank.pin_memory() : bank);
  }

  if (!m.xnn) {
    // One forward at load: checks that the network's output fits the card, and warms up.
    c10::InferenceMode guard;
    auto probe = m.forward(torch::zeros({1, in.channels, in.height, in.width}, torch::TensorOptions(m.dtype).device(m.device)), nullptr);
    if (probe.dim() != 2 || probe.size(1) != n_classes) {
      throw ConfigError(who + ": the network outputs " + std::to_string(probe.dim() == 2 ? probe.size(1) : -1) +
                        " values per scan but the card lists " + std::to_string(n_classes) + " classes");
    }
  }
  // After the check, so that a card that does not fit fails first.
  if (m.net && options.fold_batchnorm && options.layout == Layout::Auto && !m.device.is_cuda()) {
    m.start_auto(in);
  }
}

Predictor::~Predictor() = default;

const ModelCard& Predictor::card() const { return impl_->card; }
const PredictorOptions& Predictor::options() const { return impl_->options; }
std::string Predictor::device() const { return impl_->device.str(); }
Engine Predictor::engine() const { return impl_->engine; }
Layout Predictor::layout() const { return impl_->layout; }
bool Predictor::layout_settled() const { return !impl_->exploring.load(std::memory_order_acquire); }

size_t Predictor::input_size() const {
  const InputSpec& in = impl_->card.input;
  return static_cast<size_t>(in.channels) * static_cast<size_t>(in.height) * static_cast<size_t>(in.width);
}

float* Predictor::slot(size_t i, size_t bank) {
  if (i >= static_cast<size_t>(impl_->options.max_batch)) throw InvalidArgument("batch slot out of range");
  if (bank >= impl_->banks.size()) throw InvalidArgument("input bank out of range");
  return impl_->banks[bank].data_ptr<float>() + i * input_size();
}

std::vector<Prediction> Predictor::run(size_t n, size_t bank) {
  Impl& m = *impl_;
  if (n == 0) return {};
  if (n > static_cast<size_t>(m.options.max_batch)) throw InvalidArgument("batch larger than max_batch");
  if (bank >= m.banks.size()) throw InvalidArgument("input bank out of range");
  runtime::set_compute_threads(m.options.threads);
  c10::InferenceMode guard;
  auto x = m.banks[bank].narrow(0, 0, static_cast<int64_t>(n));
  if (m.device.is_cuda() || m.dtype != torch::kFloat) x = x.to(m.device, m.dtype, /*non_blocking=*/true);
  torch::Tensor embedding;
  torch::Tensor* want_embedding = m.options.embeddings ? &embedding : nullptr;
  torch::Tensor logits;
  if (m.xnn) {
    logits = torch::empty({static_cast<int64_t>(n), static_cast<int64_t>(m.xnn->classes())});
    if (want_embedding) embedding = torch::empty({static_cast<int64_t>(n), static_cast<int64_t>(m.xnn->embedding_size())});
    m.xnn->run(x.data_ptr<float>(), n, logits.data_ptr<float>(), want_embedding ? embedding.data_ptr<float>() : nullptr);
  } else {
    std::unique_lock<std::mutex> trial_lock;
    if (m.exploring.load(std::memory_order_acquire)) trial_lock = std::unique_lock<std::mutex>(m.explore_mutex);
    if (trial_lock && m.exploring.load(std::memory_order_relaxed) && n == static_cast<size_t>(m.options.max_batch)) {
      logits = m.trial_forward(x, want_embedding);
    } else {
      // Settled (no lock: the layout no longer changes), or a short batch while still timing (in
      // the candidate of the moment, untimed, under the lock).
      if (m.layout == Layout::ChannelsLast) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
      logits = m.forward(x, want_embedding);
    }
  }
  logits = logits.to(torch::kCPU, torch::kFloat).contiguous();
  const bool multilabel = m.card.task == Task::Multilabel;
  auto probs = (multilabel ? torch::sigmoid(logits) : torch::softmax(logits, 1)).contiguous();
  if (embedding.defined()) embedding = embedding.to(torch::kCPU, torch::kFloat).contiguous();

  const auto k = static_cast<size_t>(logits.size(1));
  std::vector<Prediction> out(n);
  for (size_t i = 0; i < n; ++i) {
    Prediction& p = out[i];
    const float* l = logits.data_ptr<float>() + i * k;
    const float* q = probs.data_ptr<float>() + i * k;
    p.logits.assign(l, l + k);
    p.probabilities.assign(q, q + k);
    p.top = static_cast<int>(std::max_element(q, q + k) - q);
    p.decisions.assign(k, 0);
    if (multilabel) {
      for (size_t c = 0; c < k; ++c) p.decisions[c] = q[c] >= m.card.thresholds[c] ? 1 : 0;
    } else {
      p.decisions[static_cast<size_t>(p.top)] = 1;
    }
    if (embedding.defined()) {
      const auto d = static_cast<size_t>(embedding.size(1));
      const float* e = embedding.data_ptr<float>() + i * d;
      p.embedding.assign(e, e + d);
    }
  }
  return out;
}

std::vector<Prediction> Predictor::predict(const std::vector<cv::Mat>& scans) {
  std::vector<Prediction> all;
  const auto max = static_cast<size_t>(impl_->options.max_batch);
  for (size_t start = 0; start < scans.size(); start += max) {
    const size_t n = std::min(max, scans.size() - start);
    for (size_t i = 0; i < n; ++i) prepare_input_into(scans[start + i], impl_->card.input, slot(i));
    auto part = run(n);
    all.insert(all.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return all;
}

void write_initial_weights(const ModelCard& card, uint64_t seed) {
  torch::manual_seed(seed);
  auto net = make_classifier(card.architecture, static_cast<int64_t>(card.classes.size()));
  save_weights(*net, card.weights);
}

}  // namespace cxr::models
