// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/engine/xnn_network.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>

#if defined(__x86_64__)
#include <immintrin.h>

#include "cxr/models/silu_avx512.hpp"
#endif

#include "cxr/engine/depthwise.hpp"
#include "cxr/error.hpp"
#include "cxr/models/classifier.hpp"
#include "cxr/models/silu.hpp"
#include "cxr/models/torch_compat.hpp"
#include "cxr_config.h"

#if CXR_HAVE_XNNPACK
#include <pthreadpool.h>
#include <xnnpack.h>
#endif

namespace cxr::engine {

bool xnnpack_available() { return CXR_HAVE_XNNPACK != 0; }

bool xnnpack_supports(const std::string& architecture) {
  return xnnpack_available() &&
         (architecture == "resnet34" || architecture == "mobilenet_v3_large" || architecture == "efficientnet_b1");
}

#if CXR_HAVE_XNNPACK

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// ---- the plan: layers over values, built from the module ----------------------------------

struct Shape {
  size_t h = 1, w = 1, c = 1;
  size_t size() const { return h * w * c; }
};

enum class Op { Conv, MaxPool, Mean, Linear, Add, Scale, Hardswish, SiLU, Sigmoid };

const char* op_name(Op op) {
  switch (op) {
    case Op::Conv: return "conv";
    case Op::MaxPool: return "maxpool";
    case Op::Mean: return "mean";
    case Op::Linear: return "linear";
    case Op::Add: return "add";
    case Op::Scale: return "scale";
    case Op::Hardswish: return "hardswish";
    case Op::SiLU: return "silu";
    case Op::Sigmoid: return "sigmoid";
  }
  return "?";
}

struct Layer {
  Op op = Op::Conv;
  std::string name;
  int in = -1, in2 = -1, out = -1;  // values
  uint32_t kh = 1, kw = 1, stride = 1, pad = 0, groups = 1;
  size_t cin = 0, cout = 0;
  std::vector<float> weight, bias;  // conv: OHWI (XNNPACK's [groups][out][kh][kw][in]); linear: [out][in]
  float lo = -kInf, hi = kInf;      // output clamp
  // A pointwise convolution (1x1, stride 1, no padding, one group) runs as a matrix product over
  // pixel rows, in tiles small enough to stay in the core's cache: `post` (SiLU or Hardswish) is
  // applied to each output tile as soon as it is written, and `in2`, when set, is a squeeze-
  // excitation gate ([1, 1, cin] per sample) that scales each input tile on its way in.
  bool rows = false;
  Op post = Op::Conv;  // Op::Conv: nothing after
  // A depthwise convolution that the engine's own kernel runs (depthwise.hpp), `post` fused in.
  std::shared_ptr<const DepthwiseConv> dw;
};

struct Value {
  Shape shape;
  int storage = -1;  // values written in place share their input's storage
};

struct Plan {
  std::vector<Layer> layers;
  std::vector<Value> values;
  int storages = 0;
  int input = -1, logits = -1, embedding = -1;
  // With `per_sample`, a batch runs layers [0, head) one sample at a time (one sample's
  // activations stay in the core's cache; a batch's run out to memory between layers) and
  // layers [head, end) on the whole batch (their weights read once per batch). `head` is a point
  // where only the input of layer `head` is alive (split_plan). MobileNetV3-Large and
  // EfficientNet-B1 at batch 8 ran 1.1-1.25x faster so; ResNet-34, whose 3x3 convolutions reuse
  // their weights across the batch, slower.
  size_t head = 0;
  bool per_sample = false;

  int new_value(Shape s) {
    values.push_back({s, storages++});
    return static_cast<int>(values.size()) - 1;
  }
  int alias(int v) {  // the same storage, rewritten in place by the next layer
    values.push_back(values[static_cast<size_t>(v)]);
    return static_cast<int>(values.size()) - 1;
  }
  const Shape& shape(int v) const { return values[static_cast<size_t>(v)].shape; }
};

// Activation that follows a convolution or linear layer: fused as an output clamp where it is one.
struct Epilogue {
  models::Act act = models::Act::None;
};

class Builder {
 public:
  explicit Builder(const models::ClassifierImpl& net) {
    for (const auto& item : net.named_modules("", /*include_self=*/false)) modules_[item.key()] = item.value();
  }

  Plan plan;

  bool has(const std::string& name) const { return modules_.count(name) != 0; }

  template <typename T>
  const T& module(const std::string& name) const {
    auto it = modules_.find(name);
    const T* m = it == modules_.end() ? nullptr : dynamic_cast<const T*>(it->second.get());
    if (!m) throw InvalidArgument("XNNPACK engine: module '" + name + "' is missing or of another kind");
    return *m;
  }

  models::Act activation(const std::string& name) const {
    return has(name) ? module<models::ActivationImpl>(name).kind() : models::Act::None;
  }

  int input(Shape s) {
    plan.input = plan.new_value(s);
    return plan.input;
  }

  // conv (+ BatchNorm folded) + activation. `bn` empty: the conv's own bias.
  int conv(int x, const std::string& conv_name, const std::string& bn_name, models::Act act) {
    torch::NoGradGuard no_grad;
    const auto& c = module<torch::nn::Conv2dImpl>(conv_name);
    const auto& o = c.options;
    const auto* padding = models::explicit_padding(o);
    if (!padding || (*padding)->at(0) != (*padding)->at(1) || o.stride()->at(0) != o.stride()->at(1) ||
        o.dilation()->at(0) != 1 || o.dilation()->at(1) != 1) {
      throw InvalidArgument("XNNPACK engine: " + conv_name + ": only square strides and paddings, no dilation");
    }
    auto w = c.weight.detach().to(torch::kCPU, torch::kDouble);  // [out, in / groups, kh, kw]
    const int64_t out = w.size(0);
    auto b = c.bias.defined() ? c.bias.detach().to(torch::kCPU, torch::kDouble) : torch::zeros({out}, torch::kDouble);
    if (!bn_name.empty()) {
      const auto& bn = module<cxr::models::BatchNorm2dImpl>(bn_name);
      const auto var = bn.running_var.detach().to(torch::kCPU, torch::kDouble);
      const auto mean = bn.running_mean.detach().to(torch::kCPU, torch::kDouble);
      const auto gamma = bn.weight.defined() ? bn.weight.detach().to(torch::kCPU, torch::kDouble) : torch::ones_like(var);
      const auto beta = bn.bias.defined() ? bn.bias.detach().to(torch::kCPU, torch::kDouble) : torch::zeros_like(var);
      const auto scale = gamma / torch::sqrt(var + bn.options.eps());
      w = w * scale.reshape({-1, 1, 1, 1});
      b = (b - mean) * scale + beta;
    }
    Layer l;
    l.op = Op::Conv;
    l.name = conv_name;
    l.kh = static_cast<uint32_t>(w.size(2));
    l.kw = static_cast<uint32_t>(w.size(3));
    l.stride = static_cast<uint32_t>(o.stride()->at(0));
    l.pad = static_cast<uint32_t>((*padding)->at(0));
    l.groups = static_cast<uint32_t>(o.groups());
    l.cin = static_cast<size_t>(o.in_channels());
    l.cout = static_cast<size_t>(out);
    const Shape& s = plan.shape(x);
    if (s.c != l.cin) throw InvalidArgument("XNNPACK engine: " + conv_name + ": channels do not chain");
    Shape so{(s.h + 2 * l.pad - l.kh) / l.stride + 1, (s.w + 2 * l.pad - l.kw) / l.stride + 1, l.cout};
    if (s.h + 2 * l.pad < l.kh || s.w + 2 * l.pad < l.kw) {
      throw InvalidArgument("XNNPACK engine: input too small for " + conv_name);
    }
    return finish(std::move(l), x, so, w.permute({0, 2, 3, 1}), b, act);
  }

  // Linear layer (or a 1x1 convolution on pooled features) + activation.
  int linear(int x, const std::string& name, models::Act act) {
    torch::NoGradGuard no_grad;
    torch::Tensor w, b;
    size_t in = 0, out = 0;
    auto it = modules_.find(name);
    if (it != modules_.end() && dynamic_cast<const torch::nn::LinearImpl*>(it->second.get())) {
      const auto& m = module<torch::nn::LinearImpl>(name);
      w = m.weight.detach();
      b = m.bias.detach();
    } else {
      const auto& m = module<torch::nn::Conv2dImpl>(name);
      w = m.weight.detach().flatten(1);
      b = m.bias.detach();
    }
    w = w.to(torch::kCPU, torch::kDouble);
    b = b.to(torch::kCPU, torch::kDouble);
    out = static_cast<size_t>(w.size(0));
    in = static_cast<size_t>(w.size(1));
    if (plan.shape(x).size() != in) throw InvalidArgument("XNNPACK engine: " + name + ": features do not chain");
    Layer l;
    l.op = Op::Linear;
    l.name = name;
    l.cin = in;
    l.cout = out;
    return finish(std::move(l), x, Shape{1, 1, out}, w, b, act);
  }

  int maxpool(int x, uint32_t k, uint32_t stride, uint32_t pad, const std::string& name) {
    Layer l;
    l.op = Op::MaxPool;
    l.name = name;
    l.kh = l.kw = k;
    l.stride = stride;
    l.pad = pad;
    const Shape& s = plan.shape(x);
    l.cin = l.cout = s.c;
    Shape so{(s.h + 2 * pad - k) / stride + 1, (s.w + 2 * pad - k) / stride + 1, s.c};
    return push(std::move(l), x, -1, plan.new_value(so));
  }

  int mean(int x, const std::string& name) {
    Layer l;
    l.op = Op::Mean;
    l.name = name;
    l.cin = l.cout = plan.shape(x).c;
    return push(std::move(l), x, -1, plan.new_value(Shape{1, 1, plan.shape(x).c}));
  }

  // a + b (in place into a), with ReLU when asked.
  int add(int a, int b, bool relu, const std::string& name) {
    Layer l;
    l.op = Op::Add;
    l.name = name;
    if (relu) l.lo = 0.f;
    return push(std::move(l), a, b, plan.alias(a));
  }

  // x * s per sample and channel (s: [1, 1, C] per sample), in place into x.
  int scale(int x, int s, const std::string& name) {
    Layer l;
    l.op = Op::Scale;
    l.name = name;
    return push(std::move(l), x, s, plan.alias(x));
  }

  int unary(int x, Op op, const std::string& name) {
    Layer l;
    l.op = op;
    l.name = name;
    l.cin = l.cout = plan.shape(x).c;
    return push(std::move(l), x, -1, plan.alias(x));
  }

  // Conv2dNormActivation: "<q>.0" conv, "<q>.1" BatchNorm, "<q>.2" activation.
  int conv_norm_act(int x, const std::string& q) { return conv(x, q + ".0", q + ".1", activation(q + ".2")); }

  // torchvision's SqueezeExcitation at q: x * scale_activation(fc2(activation(fc1(mean(x))))).
  int squeeze_excitation(int x, const std::string& q) {
    int s = mean(x, q + ".avgpool");
    s = linear(s, q + ".fc1", activation(q + ".activation"));
    s = linear(s, q + ".fc2", activation(q + ".scale_activation"));
    return scale(x, s, q);
  }

  // torchvision's InvertedResidual / MBConv at q ("<q>.block.<i>": Conv2dNormActivation or
  // SqueezeExcitation), with the residual add when the block keeps the shape.
  int inverted_residual(int x, const std::string& q) {
    const std::string b = q + ".block.";
    int y = x;
    for (int i = 0; has(b + std::to_string(i)); ++i) {
      const std::string part = b + std::to_string(i);
      y = has(part + ".fc1") ? squeeze_excitation(y, part) : conv_norm_act(y, part);
    }
    const Shape& si = plan.shape(x);
    const Shape& so = plan.shape(y);
    if (si.h == so.h && si.w == so.w && si.c == so.c) y = add(y, x, false, q + " (residual)");
    return y;
  }

 private:
  std::map<std::string, std::shared_ptr<torch::nn::Module>> modules_;

  int finish(Layer l, int x, Shape so, torch::Tensor w, torch::Tensor b, models::Act act) {
    bool separate = false;
    switch (act) {
      case models::Act::None: break;
      case models::Act::ReLU: l.lo = 0.f; break;
      case models::Act::Hardsigmoid:
        // clamp(z / 6 + 1/2, 0, 1), the affine part folded into the weights.
        w = w / 6.0;
        b = b / 6.0 + 0.5;
        l.lo = 0.f;
        l.hi = 1.f;
        break;
      default: separate = true; break;
    }
    auto wf = w.contiguous().to(torch::kFloat);
    auto bf = b.contiguous().to(torch::kFloat);
    l.weight.assign(wf.data_ptr<float>(), wf.data_ptr<float>() + wf.numel());
    l.bias.assign(bf.data_ptr<float>(), bf.data_ptr<float>() + bf.numel());
    const std::string name = l.name;
    int y = push(std::move(l), x, -1, plan.new_value(so));
    if (separate) {
      const Op op = act == models::Act::Hardswish ? Op::Hardswish : act == models::Act::SiLU ? Op::SiLU : Op::Sigmoid;
      y = unary(y, op, name);
    }
    return y;
  }

  int push(Layer l, int in, int in2, int out) {
    l.in = in;
    l.in2 = in2;
    l.out = out;
    plan.layers.push_back(std::move(l));
    return out;
  }
};

bool reads_storage(const Plan& p, const Layer& l, int storage) {
  auto of = [&](int v) { return v >= 0 && p.values[static_cast<size_t>(v)].storage == storage; };
  return of(l.in) || of(l.in2);
}

// Pointwise convolutions become row products with their activation, and the squeeze-excitation
// scaling before them, fused in (Layer::rows). The scaled values then never land in the
// activation's storage: a Scale is fused only where nothing after the convolution reads that
// storage. Depthwise 3x3 and 5x5 convolutions go to the engine's own kernel where the CPU runs
// it, their activation fused in as well.
void fuse_plan(Plan& p, bool own_depthwise) {
  std::vector<Layer> out;
  out.reserve(p.layers.size());
  for (size_t i = 0; i < p.layers.size(); ++i) {
    Layer l = std::move(p.layers[i]);
    const bool pointwise = l.op == Op::Conv && l.kh == 1 && l.kw == 1 && l.stride == 1 && l.pad == 0 && l.groups == 1;
    const bool depthwise = own_depthwise && l.op == Op::Conv && l.groups > 1 && l.groups == l.cin && l.cin == l.cout &&
                           l.kh == l.kw && depthwise_kernel_available() && DepthwiseConv::supports(l.kh, l.stride) &&
                           l.pad < l.kh;
    if (depthwise) {
      if (i + 1 < p.layers.size()) {
        const Layer& next = p.layers[i + 1];
        if ((next.op == Op::SiLU || next.op == Op::Hardswish) && next.in == l.out) {
          l.post = next.op;
          ++i;
        }
      }
      const auto post = l.post == Op::SiLU        ? DepthwisePost::SiLU
                        : l.post == Op::Hardswish ? DepthwisePost::Hardswish
                                                  : DepthwisePost::None;
      l.dw = std::make_shared<const DepthwiseConv>(l.cin, l.kh, l.stride, l.pad, l.weight.data(), l.bias.data(), l.lo,
                                                   l.hi, post);
      l.weight.clear();
      l.bias.clear();
      out.push_back(std::move(l));
      continue;
    }
    if (!pointwise) {
      out.push_back(std::move(l));
      continue;
    }
    l.rows = true;
    if (!out.empty() && out.back().op == Op::Scale && out.back().out == l.in && out.back().lo == -kInf &&
        out.back().hi == kInf) {
      const int storage = p.values[static_cast<size_t>(l.in)].storage;
      bool read_later = p.logits == l.in || p.embedding == l.in;
      for (size_t j = i + 1; j < p.layers.size() && !read_later; ++j) read_later = reads_storage(p, p.layers[j], storage);
      if (!read_later) {
        l.in2 = out.back().in2;
        out.pop_back();
      }
    }
    if (i + 1 < p.layers.size()) {
      const Layer& next = p.layers[i + 1];
      if ((next.op == Op::SiLU || next.op == Op::Hardswish) && next.in == l.out) {
        l.post = next.op;
        ++i;  // its output is an alias of the convolution's: the same storage
      }
    }
    out.push_back(std::move(l));
  }
  p.layers = std::move(out);
}

// Each storage's lifetime: the first and last layer that touches it (the input at -1, the
// logits and embedding read at the end), and its largest value (floats per sample).
struct Lifetimes {
  std::vector<int> first, last;
  std::vector<size_t> size;
};

Lifetimes lifetimes(const Plan& p) {
  const auto n_storage = static_cast<size_t>(p.storages);
  Lifetimes t{std::vector<int>(n_storage, std::numeric_limits<int>::max()), std::vector<int>(n_storage, -1),
              std::vector<size_t>(n_storage, 0)};
  auto touch = [&](int v, int at) {
    if (v < 0) return;
    const auto s = static_cast<size_t>(p.values[static_cast<size_t>(v)].storage);
    t.first[s] = std::min(t.first[s], at);
    t.last[s] = std::max(t.last[s], at);
    t.size[s] = std::max(t.size[s], p.values[static_cast<size_t>(v)].shape.size());
  };
  touch(p.input, -1);
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const auto& l = p.layers[i];
    touch(l.in, static_cast<int>(i));
    touch(l.in2, static_cast<int>(i));
    touch(l.out, static_cast<int>(i));
  }
  const int end = static_cast<int>(p.layers.size());
  touch(p.logits, end);
  touch(p.embedding, end);
  return t;
}

// Per sample up to the first layer whose input has at most `pixels` pixels and is the only
// value alive there (no residual branch crosses), the rest batched: Plan::head.
void split_plan(Plan& p, size_t pixels) {
  const Lifetimes t = lifetimes(p);
  const std::vector<int>& first = t.first;
  const std::vector<int>& last = t.last;
  const size_t n_storage = first.size();
  for (size_t i = 1; i < p.layers.size(); ++i) {
    const Shape& si = p.shape(p.layers[i].in);
    if (si.h * si.w > pixels) continue;
    const auto at = static_cast<int>(i);
    size_t alive = 0;
    for (size_t s = 0; s < n_storage; ++s) alive += first[s] < at && last[s] >= at;
    if (alive == 1 && first[static_cast<size_t>(p.values[static_cast<size_t>(p.layers[i].in)].storage)] < at) {
      p.head = i;
      p.per_sample = true;
      return;
    }
  }
}

Plan build_plan(const models::ClassifierImpl& net, const XnnOptions& o) {
  if (net.folded()) throw InvalidArgument("XNNPACK engine: the module's BatchNorms are already folded");
  Builder b(net);
  int x = b.input(Shape{static_cast<size_t>(o.height), static_cast<size_t>(o.width), static_cast<size_t>(o.channels)});
  const std::string arch = net.architecture();
  if (arch == "resnet34") {
    x = b.conv(x, "conv1", "bn1", models::Act::ReLU);
    x = b.maxpool(x, 3, 2, 1, "maxpool");
    for (const char* layer : {"layer1", "layer2", "layer3", "layer4"}) {
      for (int i = 0; b.has(std::string(layer) + "." + std::to_string(i)); ++i) {
        const std::string q = std::string(layer) + "." + std::to_string(i);
        int y = b.conv(x, q + ".conv1", q + ".bn1", models::Act::ReLU);
        y = b.conv(y, q + ".conv2", q + ".bn2", models::Act::None);
        const int identity = b.has(q + ".downsample") ? b.conv(x, q + ".downsample.0", q + ".downsample.1", models::Act::None) : x;
        x = b.add(y, identity, true, q + " (residual)");
      }
    }
    x = b.mean(x, "avgpool");
    b.plan.embedding = x;
    b.plan.logits = b.linear(x, "fc", models::Act::None);
  } else if (arch == "mobilenet_v3_large" || arch == "efficientnet_b1") {
    // features.0 and the last of features: Conv2dNormActivation; between them blocks (MobileNet)
    // or stages of blocks (EfficientNet).
    int last = 0;
    while (b.has("features." + std::to_string(last + 1))) ++last;
    x = b.conv_norm_act(x, "features.0");
    for (int i = 1; i < last; ++i) {
      const std::string q = "features." + std::to_string(i);
      if (b.has(q + ".block")) {
        x = b.inverted_residual(x, q);
      } else {
        for (int j = 0; b.has(q + "." + std::to_string(j)); ++j) x = b.inverted_residual(x, q + "." + std::to_string(j));
      }
    }
    x = b.conv_norm_act(x, "features." + std::to_string(last));
    x = b.mean(x, "avgpool");
    if (arch == "mobilenet_v3_large") {
      x = b.linear(x, "classifier.0", models::Act::Hardswish);  // then Dropout: identity here
      b.plan.embedding = x;
      b.plan.logits = b.linear(x, "classifier.3", models::Act::None);
    } else {
      b.plan.embedding = x;
      b.plan.logits = b.linear(x, "classifier.1", models::Act::None);
    }
  } else {
    throw InvalidArgument("XNNPACK engine: no network for architecture '" + arch + "'");
  }
  fuse_plan(b.plan, o.own_depthwise);
  if (arch != "resnet34") split_plan(b.plan, static_cast<size_t>(std::max(1, o.batched_pixels)));
  return std::move(b.plan);
}

// Storage of each value: first and last layer that touches it, then buffers by linear scan
// (best fit among the free ones). Returns each storage's buffer and each buffer's size (floats
// per sample).
struct Assignment {
  std::vector<int> buffer_of;      // storage -> buffer
  std::vector<size_t> buffer_size;  // floats per sample
};

Assignment assign_buffers(const Plan& p) {
  const auto n_storage = static_cast<size_t>(p.storages);
  const Lifetimes t = lifetimes(p);
  const std::vector<int>& first = t.first;
  const std::vector<int>& last = t.last;
  const std::vector<size_t>& size = t.size;
  const int end = static_cast<int>(p.layers.size());
  Assignment a;
  a.buffer_of.assign(n_storage, -1);
  std::vector<bool> busy;
  auto take = [&](size_t s) {
    int best = -1;
    for (size_t k = 0; k < a.buffer_size.size(); ++k) {
      if (busy[k]) continue;
      const bool fits = a.buffer_size[k] >= size[s];
      if (best < 0) {
        best = static_cast<int>(k);
        continue;
      }
      const size_t bs = a.buffer_size[static_cast<size_t>(best)];
      const bool best_fits = bs >= size[s];
      if ((fits && (!best_fits || a.buffer_size[k] < bs)) || (!fits && !best_fits && a.buffer_size[k] > bs)) {
        best = static_cast<int>(k);
      }
    }
    if (best < 0) {
      a.buffer_size.push_back(0);
      busy.push_back(false);
      best = static_cast<int>(a.buffer_size.size()) - 1;
    }
    const auto k = static_cast<size_t>(best);
    a.buffer_size[k] = std::max(a.buffer_size[k], size[s]);
    busy[k] = true;
    a.buffer_of[s] = best;
  };
  for (int at = -1; at <= end; ++at) {
    for (size_t s = 0; s < n_storage; ++s) {
      if (first[s] == at) take(s);
    }
    // Freed after the layer, so that no layer writes the buffer it reads (in-place layers share
    // their storage on purpose).
    for (size_t s = 0; s < n_storage; ++s) {
      if (last[s] == at && a.buffer_of[s] >= 0) busy[static_cast<size_t>(a.buffer_of[s])] = false;
    }
  }
  return a;
}

}  // namespace

namespace {

void check(xnn_status s, const Layer& l, const char* what) {
  if (s != xnn_status_success) {
    throw Error(std::string("XNNPACK engine: ") + what + " of " + op_name(l.op) + " " + l.name + " failed (status " +
                std::to_string(static_cast<int>(s)) + ")");
  }
}

void init_xnnpack() {
  static std::once_flag once;
  static xnn_status status = xnn_status_uninitialized;
  std::call_once(once, [] { status = xnn_initialize(nullptr); });
  if (status != xnn_status_success) {
    throw Error("XNNPACK engine: xnn_initialize failed (status " + std::to_string(static_cast<int>(status)) +
                "): this CPU lacks the instructions XNNPACK needs");
  }
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

// One execution context: operators with their packed weights, activation buffers, a thread pool.
struct Context {
  std::vector<xnn_operator_t> ops;  // per layer; nullptr where the engine runs the layer itself
  std::vector<std::unique_ptr<float, AlignedFree>> buffers;
  std::unique_ptr<float, AlignedFree> gated;  // one gated input tile of a pointwise convolution
  std::vector<float> pooled;                  // Plan::per_sample: each sample's input of layer Plan::head, gathered
  pthreadpool_t pool = nullptr;
  size_t batch = 0;  // the batch size the operators are set up for

  Context() = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() {
    for (auto* op : ops) {
      if (op) xnn_delete_operator(op);
    }
    if (pool) pthreadpool_destroy(pool);
  }
};

// Hardswish as XNNPACK computes it: x * min(max(x / 6 + 1/2, 0), 1).
#if defined(__x86_64__)
__attribute__((target("avx512f"))) void hardswish_avx512(float* x, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, models::hardswish16(_mm512_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] *= std::min(std::max(x[i] * (1.f / 6.f) + 0.5f, 0.f), 1.f);
}
#endif

void hardswish_inplace(float* x, size_t n) {
#if defined(__x86_64__)
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) {
    hardswish_avx512(x, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; ++i) x[i] *= std::min(std::max(x[i] * (1.f / 6.f) + 0.5f, 0.f), 1.f);
}

// dst = src * gate, row by row: `rows` rows of `channels` values, one gate value a channel.
#if defined(__x86_64__)
__attribute__((target("avx512f"))) void gate_rows_avx512(const float* src, const float* g, float* dst, size_t rows,
                                                         size_t channels) {
  const __mmask16 tail = static_cast<__mmask16>((1u << (channels % 16)) - 1);
  const size_t full = channels / 16 * 16;
  for (size_t r = 0; r < rows; ++r, src += channels, dst += channels) {
    size_t ch = 0;
    for (; ch < full; ch += 16) {
      _mm512_storeu_ps(dst + ch, _mm512_mul_ps(_mm512_loadu_ps(src + ch), _mm512_loadu_ps(g + ch)));
    }
    if (tail) {
      _mm512_mask_storeu_ps(dst + ch, tail,
                            _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, src + ch), _mm512_maskz_loadu_ps(tail, g + ch)));
    }
  }
}
#endif

void gate_rows(const float* src, const float* g, float* dst, size_t rows, size_t channels) {
#if defined(__x86_64__)
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) {
    gate_rows_avx512(src, g, dst, rows, channels);
    return;
  }
#endif
  for (size_t r = 0; r < rows; ++r, src += channels, dst += channels) {
    for (size_t ch = 0; ch < channels; ++ch) dst[ch] = src[ch] * g[ch];
  }
}

// An activation pass in place over x[0, count), split across the pool's threads when there is one.
struct ActTask {
  float* x;
  Op op;
};

void act_tile(void* ctx, size_t start, size_t count) {
  const auto* t = static_cast<ActTask*>(ctx);
  if (t->op == Op::SiLU) {
    models::silu_inplace(t->x + start, static_cast<int64_t>(count));
  } else {
    hardswish_inplace(t->x + start, count);
  }
}

void activate(pthreadpool_t pool, Op op, float* x, size_t count) {
  ActTask task{x, op};
  if (pool) {
    pthreadpool_parallelize_1d_tile_1d(pool, act_tile, &task, count, 1 << 14, 0);
  } else {
    act_tile(&task, 0, count);
  }
}

// Output rows [start, start + count) of a depthwise layer.
struct DepthwiseTask {
  const DepthwiseConv* dw;
  const float* in;
  size_t ih, iw;
  float* out;
};

void depthwise_tile(void* ctx, size_t start, size_t count) {
  const auto* t = static_cast<DepthwiseTask*>(ctx);
  t->dw->run_rows(t->in, t->ih, t->iw, t->out, start, count);
}

// Rows of a pointwise convolution's tile: enough that the packed weights are reused across many
// rows, few enough that the tile's output (~64 KiB a thread) is still in cache for the activation.
size_t rows_per_tile(const Layer& l, size_t threads) {
  return std::max<size_t>(64, (16384 / std::max<size_t>(1, l.cout) + 7) / 8 * 8) * std::max<size_t>(1, threads);
}

}  // namespace

struct XnnNetwork::Impl {
  XnnOptions options;
  Plan plan;
  Assignment assignment;
  std::mutex mutex;
  std::vector<std::unique_ptr<Context>> idle;  // contexts not running
  size_t classes = 0, embedding = 0;

  float* data(Context& c, int value) const {
    const auto s = static_cast<size_t>(plan.values[static_cast<size_t>(value)].storage);
    return c.buffers[static_cast<size_t>(assignment.buffer_of[s])].get();
  }

  std::unique_ptr<Context> make_context() {
    auto c = std::make_unique<Context>();
    if (options.threads > 1) {
      c->pool = pthreadpool_create(static_cast<size_t>(options.threads));
      if (!c->pool) throw Error("XNNPACK engine: cannot create a thread pool");
    }
    const auto batch = static_cast<size_t>(options.max_batch);
    if (plan.per_sample) c->pooled.resize(batch * plan.shape(plan.layers[plan.head].in).size());
    for (size_t floats : assignment.buffer_size) {
      // XNNPACK's kernels may read up to 16 bytes past a row's end (XNN_EXTRA_BYTES).
      const size_t bytes = (floats * batch * sizeof(float) + 64 + 63) / 64 * 64;
      void* p = std::aligned_alloc(64, bytes);
      if (!p) throw std::bad_alloc();
      std::memset(p, 0, bytes);
      c->buffers.emplace_back(static_cast<float*>(p));
    }
    for (const auto& l : plan.layers) {
      xnn_operator_t op = nullptr;
      if (l.dw) {
        c->ops.push_back(nullptr);
        continue;
      }
      if (l.rows) {
        check(xnn_create_fully_connected_nc_f32(l.cin, l.cout, l.cin, l.cout, l.weight.data(), l.bias.data(), l.lo,
                                                l.hi, 0, &op),
              l, "creation");
        c->ops.push_back(op);
        continue;
      }
      switch (l.op) {
        case Op::Conv: {
          const size_t gin = l.cin / l.groups, gout = l.cout / l.groups;
          check(xnn_create_convolution2d_nhwc_f32(l.pad, l.pad, l.pad, l.pad, l.kh, l.kw, l.stride, l.stride, 1, 1,
                                                  l.groups, gin, gout, l.cin, l.cout, l.weight.data(), l.bias.data(),
                                                  l.lo, l.hi, 0, &op),
                l, "creation");
          break;
        }
        case Op::Linear:
          check(xnn_create_fully_connected_nc_f32(l.cin, l.cout, l.cin, l.cout, l.weight.data(), l.bias.data(), l.lo,
                                                  l.hi, 0, &op),
                l, "creation");
          break;
        case Op::MaxPool:
          check(xnn_create_max_pooling2d_nhwc_f32(l.pad, l.pad, l.pad, l.pad, l.kh, l.kw, l.stride, l.stride, 1, 1,
                                                  l.cin, l.cin, l.cin, -kInf, kInf, 0, &op),
                l, "creation");
          break;
        case Op::Mean:
          check(xnn_create_global_average_pooling_nwc_f32(l.cin, l.cin, l.cin, -kInf, kInf, 0, &op), l, "creation");
          break;
        case Op::Add: check(xnn_create_add_nd_f32(l.lo, l.hi, 0, &op), l, "creation"); break;
        case Op::Scale: check(xnn_create_multiply_nd_f32(l.lo, l.hi, 0, &op), l, "creation"); break;
        case Op::Hardswish: check(xnn_create_hardswish_nc_f32(l.cin, l.cin, l.cin, 0, &op), l, "creation"); break;
        case Op::Sigmoid: check(xnn_create_sigmoid_nc_f32(l.cin, l.cin, l.cin, 0, &op), l, "creation"); break;
        case Op::SiLU: break;  // the engine's own vectorised pass
      }
      c->ops.push_back(op);
    }
    size_t gated = 0;
    for (const auto& l : plan.layers) {
      if (l.rows && l.in2 >= 0) gated = std::max(gated, rows_per_tile(l, static_cast<size_t>(options.threads)) * l.cin);
    }
    if (gated) {
      void* p = std::aligned_alloc(64, (gated * sizeof(float) + 64 + 63) / 64 * 64);
      if (!p) throw std::bad_alloc();
      c->gated.reset(static_cast<float*>(p));
    }
    return c;
  }

  bool per_sample(size_t n) const { return plan.per_sample && n > 1; }

  void setup(Context& c, size_t batch) {
    if (c.batch == batch) return;
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const size_t n = per_sample(batch) && i < plan.head ? 1 : batch;
      const Layer& l = plan.layers[i];
      xnn_operator_t op = c.ops[i];
      const Shape& si = plan.shape(l.in);
      const float* x = data(c, l.in);
      float* y = data(c, l.out);
      xnn_status s = xnn_status_success;
      if (l.rows || l.dw) continue;  // set up tile by tile in run_rows(); the engine's own kernel
      switch (l.op) {
        case Op::Conv: s = xnn_setup_convolution2d_nhwc_f32(op, n, si.h, si.w, x, y, c.pool); break;
        case Op::Linear: s = xnn_setup_fully_connected_nc_f32(op, n, x, y, c.pool); break;
        case Op::MaxPool: s = xnn_setup_max_pooling2d_nhwc_f32(op, n, si.h, si.w, x, y, c.pool); break;
        case Op::Mean: s = xnn_setup_global_average_pooling_nwc_f32(op, n, si.h * si.w, x, y, c.pool); break;
        case Op::Add: {
          const size_t shape[1] = {n * si.size()};
          s = xnn_setup_add_nd_f32(op, 1, shape, 1, shape, x, data(c, l.in2), y, c.pool);
          break;
        }
        case Op::Scale: {
          const size_t a[3] = {n, si.h * si.w, si.c}, b[3] = {n, 1, si.c};
          s = xnn_setup_multiply_nd_f32(op, 3, a, 3, b, x, data(c, l.in2), y, c.pool);
          break;
        }
        case Op::Hardswish: s = xnn_setup_hardswish_nc_f32(op, n * si.h * si.w, x, y, c.pool); break;
        case Op::Sigmoid: s = xnn_setup_sigmoid_nc_f32(op, n * si.h * si.w, x, y, c.pool); break;
        case Op::SiLU: break;
      }
      check(s, l, "setup");
    }
    c.batch = batch;
  }

  // A pointwise convolution over the batch's pixel rows, tile by tile: the gate scales a tile of
  // input rows into Context::gated, the row product writes its output tile, the activation runs
  // on that tile while it is in cache. A gated tile never spans two samples.
  void run_rows(Context& c, size_t i, size_t n) {
    const Layer& l = plan.layers[i];
    xnn_operator_t op = c.ops[i];
    const Shape& si = plan.shape(l.in);
    const size_t hw = si.h * si.w;
    const float* x = data(c, l.in);
    float* y = data(c, l.out);
    const float* gate = l.in2 >= 0 ? data(c, l.in2) : nullptr;
    const size_t tile = rows_per_tile(l, static_cast<size_t>(options.threads));
    auto span = [&](size_t first, size_t count, const float* g) {
      const float* in = x + first * l.cin;
      if (g) {
        gate_rows(in, g, c.gated.get(), count, l.cin);
        in = c.gated.get();
      }
      float* out = y + first * l.cout;
      check(xnn_setup_fully_connected_nc_f32(op, count, in, out, c.pool), l, "setup");
      check(xnn_run_operator(op, c.pool), l, "run");
      if (l.post != Op::Conv) activate(c.pool, l.post, out, count * l.cout);
    };
    if (gate) {
      for (size_t b = 0; b < n; ++b) {
        for (size_t r = 0; r < hw; r += tile) span(b * hw + r, std::min(tile, hw - r), gate + b * l.cin);
      }
    } else {
      for (size_t r = 0; r < n * hw; r += tile) span(r, std::min(tile, n * hw - r), nullptr);
    }
  }

  void run_depthwise(Context& c, const Layer& l, size_t n) {
    const Shape& si = plan.shape(l.in);
    DepthwiseTask task{l.dw.get(), data(c, l.in), si.h, si.w, data(c, l.out)};
    const size_t rows = n * plan.shape(l.out).h;
    if (c.pool) {
      pthreadpool_parallelize_1d_tile_1d(c.pool, depthwise_tile, &task, rows, 1, 0);
    } else {
      depthwise_tile(&task, 0, rows);
    }
  }

  void run_layer(Context& c, size_t i, size_t n) {
    const Layer& l = plan.layers[i];
    if (l.dw) {
      run_depthwise(c, l, n);
      return;
    }
    if (l.rows) {
      run_rows(c, i, n);
      return;
    }
    if (l.op == Op::SiLU) {
      activate(c.pool, Op::SiLU, data(c, l.in), n * plan.shape(l.in).size());
      return;
    }
    check(xnn_run_operator(c.ops[i], c.pool), l, "run");
  }

  // A batch through the network (set up for it); with `times`, each layer's time is added to
  // times[i + 1] and the input's to times[0].
  void forward(Context& c, const float* input, size_t n, std::vector<double>* times) {
    using Clock = std::chrono::steady_clock;
    auto timed = [&](size_t slot, auto&& fn) {
      if (!times) return fn();
      const auto t0 = Clock::now();
      fn();
      (*times)[slot] += std::chrono::duration<double>(Clock::now() - t0).count();
    };
    if (!per_sample(n)) {
      timed(0, [&] { load_input(c, input, n); });
      for (size_t i = 0; i < plan.layers.size(); ++i) timed(i + 1, [&] { run_layer(c, i, n); });
      return;
    }
    const size_t in_size = plan.shape(plan.input).size();
    const int pooled_value = plan.layers[plan.head].in;
    const size_t pooled = plan.shape(pooled_value).size();
    for (size_t s = 0; s < n; ++s) {
      timed(0, [&] { load_input(c, input + s * in_size, 1); });
      for (size_t i = 0; i < plan.head; ++i) timed(i + 1, [&] { run_layer(c, i, 1); });
      std::memcpy(c.pooled.data() + s * pooled, data(c, pooled_value), pooled * sizeof(float));
    }
    std::memcpy(data(c, pooled_value), c.pooled.data(), n * pooled * sizeof(float));
    for (size_t i = plan.head; i < plan.layers.size(); ++i) timed(i + 1, [&] { run_layer(c, i, n); });
  }

  void load_input(Context& c, const float* nchw, size_t n) {
    const Shape& s = plan.shape(plan.input);
    const size_t hw = s.h * s.w;
    float* dst = data(c, plan.input);
    for (size_t b = 0; b < n; ++b) {
      const float* src = nchw + b * s.size();
      float* d = dst + b * s.size();
      if (s.c == 3) {
        const float *r = src, *g = src + hw, *bl = src + 2 * hw;
        for (size_t p = 0; p < hw; ++p) {
          d[3 * p] = r[p];
          d[3 * p + 1] = g[p];
          d[3 * p + 2] = bl[p];
        }
      } else {
        for (size_t p = 0; p < hw; ++p) {
          for (size_t ch = 0; ch < s.c; ++ch) d[p * s.c + ch] = src[ch * hw + p];
        }
      }
    }
  }

  std::unique_ptr<Context> acquire() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
    }
    return make_context();  // weights packed again: one context per concurrent run
  }

  void release(std::unique_ptr<Context> c) {
    std::lock_guard<std::mutex> lock(mutex);
    idle.push_back(std::move(c));
  }

  /// A context for one run of a batch of n (checked: 1..max_batch), back among the idle ones when
  /// the lease ends, also when the run throws.
  struct Lease {
    Impl& m;
    std::unique_ptr<Context> c;
    Lease(Impl& impl, size_t n) : m(impl) {
      if (n < 1 || n > static_cast<size_t>(m.options.max_batch)) {
        throw InvalidArgument("XNNPACK engine: batch of " + std::to_string(n) + " outside 1.." +
                              std::to_string(m.options.max_batch));
      }
      c = m.acquire();
    }
    ~Lease() { m.release(std::move(c)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
  };
};

XnnNetwork::XnnNetwork(const models::ClassifierImpl& net, XnnOptions options) : impl_(std::make_unique<Impl>()) {
  if (options.max_batch < 1 || options.threads < 1 || options.height < 1 || options.width < 1 || options.channels < 1) {
    throw InvalidArgument("XNNPACK engine: batch, threads and input size must be >= 1");
  }
  init_xnnpack();
  Impl& m = *impl_;
  m.options = options;
  m.plan = build_plan(net, options);
  m.assignment = assign_buffers(m.plan);
  m.classes = m.plan.shape(m.plan.logits).size();
  m.embedding = m.plan.shape(m.plan.embedding).size();
  auto c = m.make_context();
  m.setup(*c, static_cast<size_t>(options.max_batch));
  m.idle.push_back(std::move(c));
}

XnnNetwork::~XnnNetwork() = default;

const XnnOptions& XnnNetwork::options() const { return impl_->options; }
size_t XnnNetwork::classes() const { return impl_->classes; }
size_t XnnNetwork::embedding_size() const { return impl_->embedding; }

void XnnNetwork::run(const float* input, size_t n, float* logits, float* embedding) {
  Impl& m = *impl_;
  Impl::Lease lease(m, n);
  auto& c = lease.c;
  m.setup(*c, n);
  m.forward(*c, input, n, nullptr);
  std::memcpy(logits, m.data(*c, m.plan.logits), n * m.classes * sizeof(float));
  if (embedding && m.options.embeddings) std::memcpy(embedding, m.data(*c, m.plan.embedding), n * m.embedding * sizeof(float));
}

std::vector<LayerTime> XnnNetwork::profile(const float* input, size_t n, int repeats) {
  Impl& m = *impl_;
  Impl::Lease lease(m, n);
  auto& c = lease.c;
  m.setup(*c, n);
  std::vector<LayerTime> times(m.plan.layers.size() + 1);
  times[0].name = "input (NCHW to NHWC)";
  for (size_t i = 0; i < m.plan.layers.size(); ++i) {
    const Layer& l = m.plan.layers[i];
    std::string what = op_name(l.op);
    if (l.op == Op::Conv) {
      what += " " + std::to_string(l.kh) + "x" + std::to_string(l.kw) + "/" + std::to_string(l.stride) + " " +
              std::to_string(l.cin) + "->" + std::to_string(l.cout) + (l.groups > 1 ? " depthwise" : "");
      if (l.lo == 0.f) what += l.hi == 1.f ? " +hardsigmoid" : " +relu";
      if (l.rows && l.in2 >= 0) what = "gate + " + what;
      if (l.dw) what += " (own kernel)";
      if (l.post != Op::Conv) what += std::string(" +") + op_name(l.post);
    } else if (l.op == Op::Add && l.lo == 0.f) {
      what += " +relu";
    }
    times[i + 1].name = l.name + " " + what;
  }
  for (auto& t : times) t.seconds = 1e30;
  std::vector<double> round(times.size());
  for (int r = 0; r < std::max(1, repeats); ++r) {
    std::fill(round.begin(), round.end(), 0.0);
    m.forward(*c, input, n, &round);
    for (size_t i = 0; i < times.size(); ++i) times[i].seconds = std::min(times[i].seconds, round[i]);
  }
  return times;
}

#else  // no XNNPACK in this build

struct XnnNetwork::Impl {
  XnnOptions options;
};

XnnNetwork::XnnNetwork(const models::ClassifierImpl&, XnnOptions) {
  throw InvalidArgument("engine xnnpack: this build of gst-cxr has no XNNPACK (meson option xnnpack)");
}
XnnNetwork::~XnnNetwork() = default;
const XnnOptions& XnnNetwork::options() const { return impl_->options; }
size_t XnnNetwork::classes() const { return 0; }
size_t XnnNetwork::embedding_size() const { return 0; }
void XnnNetwork::run(const float*, size_t, float*, float*) {}
std::vector<LayerTime> XnnNetwork::profile(const float*, size_t, int) { return {}; }

#endif

}  // namespace cxr::engine
