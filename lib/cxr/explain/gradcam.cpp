// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/explain/gradcam.hpp"

#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <opencv2/core.hpp>

#include "cxr/error.hpp"
#include "cxr/explain/gradcam_torch.hpp"
#include "cxr/models/input.hpp"
#include "cxr/models/weights.hpp"
#include "cxr/runtime/allocator.hpp"
#include "cxr/runtime/device.hpp"
#include "cxr/runtime/threads.hpp"

namespace cxr::explain {
namespace {

using cxr::models::ClassifierImpl;

/// The target layer's output as a leaf that records gradients, and the logits computed from it.
/// Everything before the layer runs without autograd: only the part after it needs a graph,
/// which keeps the pass close to inference cost.
struct Split {
  torch::Tensor activations;  // [N, C, h, w], requires grad
  torch::Tensor logits;       // [N, classes]
};

torch::nn::SequentialImpl* sequential_child(ClassifierImpl& model, const std::string& name) {
  for (const auto& item : model.named_children()) {
    if (item.key() == name) return item.value()->as<torch::nn::SequentialImpl>();
  }
  return nullptr;
}

torch::Tensor leaf(const torch::Tensor& t) { return t.detach().requires_grad_(true); }

/// "layerK" of a ResNet: the stem and layers 1..K without a graph, the rest with one.
Split split_resnet(ClassifierImpl& model, const torch::Tensor& x, int k) {
  const auto children = model.named_children();
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = children["conv1"]->as<torch::nn::Conv2dImpl>()->forward(x);
    // A folded stem has its BatchNorm inside conv1 already.
    if (!model.folded()) y = children["bn1"]->as<models::BatchNorm2dImpl>()->forward(y);
    y = torch::max_pool2d(torch::relu(y), 3, 2, 1);
    for (int i = 1; i <= k; ++i) y = children["layer" + std::to_string(i)]->as<torch::nn::SequentialImpl>()->forward(y);
  }
  Split s;
  s.activations = leaf(y);
  y = s.activations;
  for (int i = k + 1; i <= 4; ++i) y = children["layer" + std::to_string(i)]->as<torch::nn::SequentialImpl>()->forward(y);
  s.logits = model.classify(y);
  return s;
}

/// "features.N" of a Sequential `features`: children 0..N without a graph, the rest with one.
Split split_sequential(ClassifierImpl& model, const torch::Tensor& x, int64_t n) {
  torch::nn::SequentialImpl* seq = sequential_child(model, "features");
  if (!seq) throw InvalidArgument("Grad-CAM: " + model.architecture() + " has no 'features' sequence");
  torch::Tensor y = x;
  int64_t i = 0;
  {
    torch::NoGradGuard no_grad;
    for (auto it = seq->begin(); it != seq->end() && i <= n; ++it, ++i) y = it->forward(y);
  }
  Split s;
  s.activations = leaf(y);
  y = s.activations;
  for (auto it = seq->begin() + i; it != seq->end(); ++it) y = it->forward(y);
  s.logits = model.classify(y);
  return s;
}

/// Parses a layer name against the architecture; returns how to split (-1: features()).
struct LayerRef {
  bool resnet = false;
  int64_t index = -1;  // resnet: K of layerK; others: N of features.N; -1: features() output
};

LayerRef parse_layer(const ClassifierImpl& model, const std::string& layer, int64_t n_features) {
  LayerRef ref;
  ref.resnet = model.architecture() == "resnet34";
  if (layer.empty() || layer == model.features_layer()) return ref;
  const auto valid = cam_layers(model.architecture());
  if (std::find(valid.begin(), valid.end(), layer) == valid.end() &&
      !(!ref.resnet && layer.rfind("features.", 0) == 0)) {
    std::string list;
    for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
    throw InvalidArgument("Grad-CAM target layer '" + layer + "' is not one of " + model.architecture() +
                          "'s: " + list);
  }
  if (ref.resnet) {
    ref.index = layer.back() - '0';
    if (ref.index == 4) ref.index = -1;
    return ref;
  }
  int64_t n = 0;
  try {
    size_t used = 0;
    n = std::stoll(layer.substr(9), &used);
    if (used != layer.size() - 9) throw std::invalid_argument(layer);
  } catch (const std::exception&) {
    throw InvalidArgument("Grad-CAM target layer '" + layer + "': expected features.N with 0 <= N < " +
                          std::to_string(n_features) + " (or -1)");
  }
  if (n < 0) n += n_features;
  if (n < 0 || n >= n_features) {
    throw InvalidArgument("Grad-CAM target layer '" + layer + "': " + model.architecture() + " has features.0 to features." +
                          std::to_string(n_features - 1));
  }
  ref.index = n == n_features - 1 ? -1 : n;
  return ref;
}

int64_t features_count(ClassifierImpl& model) {
  torch::nn::SequentialImpl* seq = sequential_child(model, "features");
  return seq ? static_cast<int64_t>(seq->size()) : 0;
}

Split forward_split(ClassifierImpl& model, const torch::Tensor& x, const std::string& layer) {
  const LayerRef ref = parse_layer(model, layer, features_count(model));
  if (ref.index >= 0) return ref.resnet ? split_resnet(model, x, static_cast<int>(ref.index)) : split_sequential(model, x, ref.index);
  torch::Tensor f;
  {
    torch::NoGradGuard no_grad;
    f = model.features(x);
  }
  Split s;
  s.activations = leaf(f);
  s.logits = model.classify(s.activations);
  return s;
}

/// [N, h, w] map from activations and the gradients of one score per sample.
torch::Tensor cam_from(const torch::Tensor& a, const torch::Tensor& g, CamMethod method) {
  torch::Tensor w;
  if (method == CamMethod::gradcam) {
    w = g.mean({2, 3}, /*keepdim=*/true);
  } else {
    // Closed-form alphas of Grad-CAM++ (the exp(score) derivation), as pytorch-grad-cam computes them.
    const auto g2 = g * g;
    const auto g3 = g2 * g;
    const auto sum_a = a.sum({2, 3}, /*keepdim=*/true);
    auto alpha = g2 / (2 * g2 + sum_a * g3 + 1e-6);
    alpha = torch::where(g != 0, alpha, torch::zeros_like(alpha));
    w = (torch::relu(g) * alpha).sum({2, 3}, /*keepdim=*/true);
  }
  return torch::relu((w * a).sum(1));
}

}  // namespace

const char* to_string(CamMethod m) { return m == CamMethod::gradcam ? "gradcam" : "gradcam++"; }

const char* to_string(CamTarget t) {
  switch (t) {
    case CamTarget::index: return "index";
    case CamTarget::positives: return "positives";
    default: return "predicted";
  }
}

const char* to_string(CamScaling s) { return s == CamScaling::fixed ? "fixed" : "minmax"; }

std::vector<std::string> cam_layers(const std::string& architecture) {
  if (architecture == "resnet34") return {"layer1", "layer2", "layer3", "layer4"};
  if (architecture == "mobilenet_v3_large" || architecture == "efficientnet_b1") {
    return {"features", "features.N", "features.-1"};
  }
  return {};
}

CamTensors compute_cams(ClassifierImpl& model, const torch::Tensor& input, const std::vector<int64_t>& targets,
                        CamMethod method, const std::string& layer) {
  if (input.dim() != 4) throw InvalidArgument("Grad-CAM input must be [N, C, H, W]");
  const int64_t n = input.size(0);
  if (static_cast<int64_t>(targets.size()) != n) {
    throw InvalidArgument("Grad-CAM: " + std::to_string(targets.size()) + " targets for " + std::to_string(n) + " samples");
  }
  torch::AutoGradMode grad_mode(true);
  Split s = forward_split(model, input, layer);
  const int64_t k = s.logits.size(1);
  std::vector<int64_t> t(targets);
  auto argmax = s.logits.detach().argmax(1).to(torch::kCPU);
  for (int64_t i = 0; i < n; ++i) {
    if (t[static_cast<size_t>(i)] < 0) t[static_cast<size_t>(i)] = argmax[i].item<int64_t>();
    if (t[static_cast<size_t>(i)] >= k) {
      throw InvalidArgument("Grad-CAM target class " + std::to_string(t[static_cast<size_t>(i)]) + " out of range (" +
                            std::to_string(k) + " classes)");
    }
  }
  // Samples are independent in eval mode, so one backward of the summed scores gives each
  // sample's own gradient.
  auto index = torch::tensor(t, torch::kLong).to(s.logits.device()).unsqueeze(1);
  auto score = s.logits.gather(1, index).sum();
  auto g = torch::autograd::grad({score}, {s.activations})[0];
  CamTensors out;
  torch::NoGradGuard no_grad;
  out.logits = s.logits.detach();
  out.maps = cam_from(s.activations.detach(), g, method);
  return out;
}

torch::Tensor upsample_cams(const torch::Tensor& maps, int64_t height, int64_t width) {
  namespace F = torch::nn::functional;
  return F::interpolate(maps.unsqueeze(1), F::InterpolateFuncOptions()
                                               .size(std::vector<int64_t>{height, width})
                                               .mode(torch::kBilinear)
                                               .align_corners(false))
      .squeeze(1);
}

void scale_cam(cv::Mat& map, const CamParams& params) {
  if (map.type() != CV_32FC1) throw InvalidArgument("scale_cam: map must be CV_32FC1");
  if (params.scaling == CamScaling::fixed) {
    if (!(params.fixed_max > 0)) throw InvalidArgument("fixed CAM scaling needs fixed_max > 0");
    map.convertTo(map, CV_32F, 1.0 / params.fixed_max);
    cv::min(map, 1.0, map);
    cv::max(map, 0.0, map);
    return;
  }
  double lo = 0, hi = 0;
  cv::minMaxLoc(map, &lo, &hi);
  if (hi > lo) {
    // Subtract first: the minimum becomes exactly 0 (one fused multiply-add would leave ~1e-8).
    map -= lo;
    map *= 1.0 / (hi - lo);
  } else {
    map.setTo(0);
  }
}

struct GradCam::Impl {
  cxr::models::ModelCard card;
  GradCamOptions options;
  torch::Device device{torch::kCPU};
  std::shared_ptr<ClassifierImpl> net;
  std::string layer;
  bool channels_last = false;

  torch::Tensor input(torch::Tensor x) const {
    return channels_last ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
  }

  void set_channels_last(bool on) {
    channels_last = on;
    cxr::models::set_weight_layout(*net, on);
  }

  // Seconds of one forward and backward to the target layer for a zero scan (after an untimed
  // one when `warm_up`).
  double time_pass(bool warm_up) {
    const auto& in = card.input;
    auto x = input(torch::zeros({1, in.channels, in.height, in.width}, torch::TensorOptions().device(device)));
    torch::AutoGradMode grad_mode(true);
    auto pass = [&] {
      Split s = forward_split(*net, x, layer);
      torch::autograd::grad({s.logits[0][0]}, {s.activations});
    };
    if (warm_up) pass();
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  // As the predictor does; channels-last first, so NCHW must win by 3 %.
  void pick_layout() {
    const bool cl[2] = {true, false};
    const size_t pick = cxr::models::pick_fastest(
        2, [&](size_t i) { set_channels_last(cl[i]); }, [&](bool warm_up) { return time_pass(warm_up); });
    set_channels_last(cl[pick]);
  }
};

GradCam::GradCam(cxr::models::ModelCard card, const std::string& device)
    : GradCam(std::move(card), GradCamOptions{device}) {}

GradCam::GradCam(cxr::models::ModelCard card, const GradCamOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.card = std::move(card);
  m.options = options;
  const std::string who = "model card " + (m.card.path.empty() ? m.card.name : m.card.path);
  if (options.threads < 0) throw InvalidArgument("threads must be >= 0, got " + std::to_string(options.threads));
  if (options.layout == cxr::models::Layout::OneDnn || options.layout == cxr::models::Layout::Winograd) {
    throw InvalidArgument(who + ": Grad-CAM needs gradients; memory format " + cxr::models::to_string(options.layout) +
                          " is for inference only");
  }
  if (m.card.architecture == "torchscript") {
    throw ConfigError(who + ": Grad-CAM needs one of the built-in architectures (resnet34, mobilenet_v3_large, "
                            "efficientnet_b1), not a TorchScript file");
  }
  m.device = cxr::runtime::resolve_device(options.device);
  // Loading, the layout timing and explain() all run with the threads they were given.
  cxr::runtime::set_compute_threads(options.threads);
  cxr::runtime::use_caching_cpu_allocator();
  const auto n_classes = static_cast<int64_t>(m.card.classes.size());
  m.net = cxr::models::make_classifier(m.card.architecture, n_classes);
  try {
    cxr::models::load_weights(*m.net, m.card.weights);
  } catch (const cxr::models::WeightsError& e) {
    throw cxr::models::WeightsError(who + " (" + m.card.architecture + ", " + std::to_string(n_classes) +
                                    " classes): " + e.what());
  }
  m.net->eval();
  m.net->to(m.device);
  // Parameters need no gradients: only the target layer's output does.
  for (auto& p : m.net->parameters()) p.requires_grad_(false);
  m.layer = m.card.gradcam_layer.empty() ? m.net->features_layer() : m.card.gradcam_layer;
  try {
    parse_layer(*m.net, m.layer, features_count(*m.net));
  } catch (const InvalidArgument& e) {
    throw ConfigError(who + ": " + e.what());
  }
  if (options.layout == cxr::models::Layout::Auto && !m.device.is_cuda()) {
    m.pick_layout();
  } else {
    m.set_channels_last(options.layout == cxr::models::Layout::ChannelsLast);
  }
}

GradCam::~GradCam() = default;

const cxr::models::ModelCard& GradCam::card() const { return impl_->card; }
std::string GradCam::device() const { return impl_->device.str(); }
const std::string& GradCam::layer() const { return impl_->layer; }
cxr::models::Layout GradCam::layout() const {
  return impl_->channels_last ? cxr::models::Layout::ChannelsLast : cxr::models::Layout::Contiguous;
}

CamResult GradCam::explain(const cv::Mat& scan, const CamParams& params) {
  Impl& m = *impl_;
  const auto& in = m.card.input;
  const auto k = static_cast<int64_t>(m.card.classes.size());
  if (params.target == CamTarget::index && (params.index < 0 || params.index >= k)) {
    throw InvalidArgument("Grad-CAM target index " + std::to_string(params.index) + " out of range (" +
                          std::to_string(k) + " classes)");
  }
  if (params.scaling == CamScaling::fixed && !(params.fixed_max > 0)) {
    throw InvalidArgument("fixed CAM scaling needs fixed_max > 0");
  }
  cv::Mat prepared = cxr::models::prepare_input(scan, in);  // validates the scan
  cxr::runtime::set_compute_threads(m.options.threads);
  auto x = m.input(torch::from_blob(prepared.ptr<float>(), {1, in.channels, in.height, in.width}, torch::kFloat)
                       .to(m.device, /*non_blocking=*/false, /*copy=*/true));

  torch::AutoGradMode grad_mode(true);
  Split s = forward_split(*m.net, x, m.layer);

  // Prediction from the same pass, with the predictor's rules.
  CamResult out;
  auto logits = s.logits.detach().to(torch::kCPU).contiguous();
  const bool multilabel = m.card.task == cxr::models::Task::Multilabel;
  auto probs = (multilabel ? torch::sigmoid(logits) : torch::softmax(logits, 1)).contiguous();
  auto& p = out.prediction;
  const float* l = logits.data_ptr<float>();
  const float* q = probs.data_ptr<float>();
  p.logits.assign(l, l + k);
  p.probabilities.assign(q, q + k);
  p.top = static_cast<int>(std::max_element(q, q + k) - q);
  p.decisions.assign(static_cast<size_t>(k), 0);
  for (int64_t c = 0; c < k; ++c) {
    p.decisions[static_cast<size_t>(c)] =
        multilabel ? (q[c] >= m.card.thresholds[static_cast<size_t>(c)] ? 1 : 0) : (c == p.top ? 1 : 0);
  }

  std::vector<int> targets;
  switch (params.target) {
    case CamTarget::predicted: targets.push_back(p.top); break;
    case CamTarget::index: targets.push_back(params.index); break;
    case CamTarget::positives:
      for (int64_t c = 0; c < k; ++c) {
        if (p.decisions[static_cast<size_t>(c)]) targets.push_back(static_cast<int>(c));
      }
      break;
  }
  for (size_t i = 0; i < targets.size(); ++i) {
    const bool last = i + 1 == targets.size();
    auto g = torch::autograd::grad({s.logits[0][targets[i]]}, {s.activations}, {}, /*retain_graph=*/!last)[0];
    torch::NoGradGuard no_grad;
    auto map = upsample_cams(cam_from(s.activations.detach(), g, params.method), scan.rows, scan.cols)[0]
                   .to(torch::kCPU)
                   .contiguous();
    Cam cam;
    cam.target = targets[i];
    cam.heatmap = cv::Mat(scan.rows, scan.cols, CV_32F, map.data_ptr<float>()).clone();
    double lo = 0, hi = 0;
    cv::minMaxLoc(cam.heatmap, &lo, &hi);
    cam.raw_min = static_cast<float>(lo);
    cam.raw_max = static_cast<float>(hi);
    scale_cam(cam.heatmap, params);
    out.cams.push_back(std::move(cam));
  }
  return out;
}

}  // namespace cxr::explain
