// SPDX-License-Identifier: LGPL-2.1-or-later
// The XNNPACK engine (cxr/engine/xnn_network.hpp) against torchvision: the three architectures
// with BatchNorm statistics and affine parameters far from their initial values, real sample
// scans prepared as cxrinfer prepares them, probabilities from the parity interpreter's
// torchvision on the same inputs and weights; through the Predictor (engine xnnpack) at batch 1,
// batch 8 and a ragged last batch, and on two threads at once.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cxr/engine/depthwise.hpp"
#include "cxr/engine/xnn_network.hpp"
#include "cxr/error.hpp"
#include "cxr/io/decode.hpp"
#include "cxr/models/card.hpp"
#include "cxr/models/classifier.hpp"
#include "cxr/models/input.hpp"
#include "cxr/models/predictor.hpp"
#include "cxr/models/weights.hpp"
#include "cxr_catch.hpp"
#include "testutil.hpp"

using namespace cxr::models;
namespace fs = std::filesystem;

namespace {

constexpr double kTol = 1e-5;  // max abs difference of probabilities

// Real scans of every kind in the samples: COVID PNGs, pneumonia JPEGs, NIH PNGs.
std::vector<cv::Mat> sample_scans() {
  std::vector<std::string> files;
  for (const char* dir : {"covid", "pneumonia/normal", "pneumonia/bacterial", "nih"}) {
    std::vector<std::string> here;
    for (const auto& e : fs::directory_iterator(cxrtest::samples(dir))) here.push_back(e.path().string());
    std::sort(here.begin(), here.end());
    here.resize(std::min<size_t>(here.size(), 3));
    files.insert(files.end(), here.begin(), here.end());
  }
  std::vector<cv::Mat> scans;
  for (const auto& f : files) {
    cxr::io::DecodeParams p;
    p.force_8bit = true;
    scans.push_back(cxr::io::decode_file(f, p).pixels);
  }
  return scans;
}

// A model whose BatchNorms hold statistics of noise shifted at random, and whose head gives
// logits of spread ~5 (torchvision's init gives near-zero logits that would hide differences
// behind a flat softmax, and the shifted statistics can saturate it): as
// tests/parity/model_common.py makes them, the spread measured on `x` ([n, 3, h, w], the inputs
// of the test) when given, else on noise.
void make_weights(const std::string& arch, int64_t classes, uint64_t seed, const std::string& path,
                  torch::Tensor x = {}) {
  torch::manual_seed(seed);
  auto net = make_classifier(arch, classes);
  torch::NoGradGuard no_grad;
  net->train();
  for (int i = 0; i < 2; ++i) net->forward(torch::randn({2, 3, 64, 64}) * 2 + 0.5);
  for (const auto& m : net->modules(false)) {
    if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
      bn->running_mean.add_(torch::randn_like(bn->running_mean) * 0.1);
      bn->running_var.mul_(torch::empty_like(bn->running_var).uniform_(0.5, 2.0));
      bn->weight.mul_(torch::empty_like(bn->weight).uniform_(0.5, 1.5));
      bn->bias.add_(torch::randn_like(bn->bias) * 0.1);
    }
  }
  net->eval();
  if (!x.defined()) x = torch::randn({4, 3, 96, 96});
  const double spread = net->forward(x).std().item<double>();
  auto params = net->named_parameters();
  params[net->head_prefix() + ".weight"].mul_(3.0 / std::max(spread, 1e-6));
  save_weights(*net, path);
}

// torchvision's probabilities for `x` ([n, 3, h, w] float32, written raw) with these weights.
std::vector<float> torchvision_probabilities(const std::string& arch, int64_t classes, const std::string& weights,
                                             const std::string& input, int64_t n, int64_t h, int64_t w,
                                             const std::string& output) {
  const std::string python = cxrtest::env_or("CXR_PYTHON", "/usr/bin/python3");
  const std::string code =
      "import numpy as np, torch, torchvision\n"
      "torch.set_num_threads(2)\n"
      "m = getattr(torchvision.models, '" + arch + "')(num_classes=" + std::to_string(classes) + ")\n"
      "m.load_state_dict(torch.load('" + weights + "'))\n"
      "x = torch.from_numpy(np.fromfile('" + input + "', dtype=np.float32).reshape(" + std::to_string(n) + ", 3, " +
      std::to_string(h) + ", " + std::to_string(w) + "))\n"
      "with torch.no_grad():\n"
      "    torch.softmax(m.eval()(x), 1).numpy().astype(np.float32).tofile('" + output + "')\n";
  const std::string script = output + ".py";
  std::ofstream(script) << code;
  const int rc = std::system((python + " " + script + " 2>&1").c_str());
  REQUIRE(rc == 0);
  std::vector<float> probs(static_cast<size_t>(n * classes));
  std::ifstream in(output, std::ios::binary);
  in.read(reinterpret_cast<char*>(probs.data()), static_cast<std::streamsize>(probs.size() * sizeof(float)));
  REQUIRE(in.gcount() == static_cast<std::streamsize>(probs.size() * sizeof(float)));
  return probs;
}

double max_abs_difference(const std::vector<Prediction>& got, const std::vector<float>& ref, size_t classes) {
  double d = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE(got[i].probabilities.size() == classes);
    for (size_t c = 0; c < classes; ++c) {
      d = std::max(d, std::abs(static_cast<double>(got[i].probabilities[c]) - ref[i * classes + c]));
    }
  }
  return d;
}

}  // namespace

TEST_CASE("engine: XNNPACK gives torchvision's probabilities on real scans at batch 1, 8 and ragged", "[engine]") {
  REQUIRE(cxr::engine::xnnpack_available());
  struct Case {
    const char* arch;
    std::vector<std::string> classes;
    int height, width;
  };
  const std::vector<Case> cases = {
      {"mobilenet_v3_large", {"normal", "bacterial", "viral"}, 224, 224},
      {"efficientnet_b1", {"a", "b", "c", "d", "e", "f", "g"}, 240, 232},
      {"resnet34", {"normal", "covid", "viral"}, 224, 224},
  };
  const auto scans = sample_scans();
  REQUIRE(scans.size() >= 11);
  cxrtest::TempDir tmp;
  uint64_t seed = 21;
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.arch) {
      ModelCard card;
      card.name = c.arch;
      card.architecture = c.arch;
      card.classes = c.classes;
      card.weights = tmp / (std::string(c.arch) + ".pth");
      card.input.height = c.height;
      card.input.width = c.width;
      card.input.mean = {0.485f, 0.456f, 0.406f};
      card.input.std = {0.229f, 0.224f, 0.225f};
      const auto k = static_cast<int64_t>(c.classes.size());

      // The inputs as cxrinfer prepares them, for torchvision too.
      const auto n = static_cast<int64_t>(scans.size());
      const size_t per = 3 * static_cast<size_t>(c.height) * static_cast<size_t>(c.width);
      std::vector<float> x(static_cast<size_t>(n) * per);
      for (size_t i = 0; i < scans.size(); ++i) prepare_input_into(scans[i], card.input, x.data() + i * per);
      make_weights(c.arch, k, seed++, card.weights, torch::from_blob(x.data(), {n, 3, c.height, c.width}));
      const std::string in = tmp / "x.f32", out = tmp / "p.f32";
      std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(x.data()),
                                                static_cast<std::streamsize>(x.size() * sizeof(float)));
      const auto ref = torchvision_probabilities(c.arch, k, card.weights, in, n, c.height, c.width, out);

      // 8: full batches, then a ragged last one; on two threads, XNNPACK's thread pool splits
      // each operator and each pointwise tile.
      for (const auto& [batch, threads] : std::vector<std::pair<int, int>>{{1, 1}, {8, 1}, {8, 2}}) {
        PredictorOptions o;
        o.device = "cpu";
        o.engine = Engine::Xnnpack;
        o.max_batch = batch;
        o.threads = threads;
        Predictor p(card, o);
        REQUIRE(p.engine() == Engine::Xnnpack);
        const auto got = p.predict(scans);
        REQUIRE(got.size() == scans.size());
        const double d = max_abs_difference(got, ref, c.classes.size());
        INFO(c.arch << " batch " << batch << " threads " << threads << ": max |dprob| " << d);
        const auto [lo, hi] = std::minmax_element(ref.begin(), ref.end());
        std::printf("engine parity %-20s batch %d, %d thread%s (%zu scans%s): max|dprob| = %.3e (torchvision's "
                    "probabilities %.3f..%.3f)\n", c.arch, batch, threads, threads > 1 ? "s" : "", scans.size(),
                    batch > 1 && scans.size() % static_cast<size_t>(batch) ? ", ragged last batch" : "", d, *lo, *hi);
        CHECK(d <= kTol);
      }

      // Two threads at once, each on its own bank (a context each), then a batch of 1 in between.
      PredictorOptions o;
      o.device = "cpu";
      o.engine = Engine::Xnnpack;
      o.max_batch = 4;
      o.threads = 1;
      o.input_banks = 2;
      Predictor p(card, o);
      for (size_t b = 0; b < 2; ++b) {
        for (size_t i = 0; i < 4; ++i) std::copy_n(x.data() + (b * 4 + i) * per, per, p.slot(i, b));
      }
      auto first = std::async(std::launch::async, [&] { return p.run(4, 0); });
      auto second = std::async(std::launch::async, [&] { return p.run(4, 1); });
      auto both = first.get();
      const auto more = second.get();
      both.insert(both.end(), more.begin(), more.end());
      const double d = max_abs_difference(both, ref, c.classes.size());
      INFO(c.arch << " two threads: max |dprob| " << d);
      CHECK(d <= kTol);
    }
  }
}

TEST_CASE("engine: a batch outside 1..max_batch is refused by run() and profile() alike", "[engine]") {
  auto net = make_classifier("mobilenet_v3_large", 2);
  net->eval();
  cxr::engine::XnnOptions o;
  o.height = o.width = 64;
  o.max_batch = 2;
  cxr::engine::XnnNetwork engine(*net, o);
  std::vector<float> x(size_t{3} * 3 * 64 * 64, 0.5f), logits(size_t{3} * 2);
  for (size_t n : {size_t{0}, size_t{3}}) {
    INFO(n);
    const std::string why = "batch of " + std::to_string(n) + " outside 1..2";
    CHECK_THROWS_WITH(engine.run(x.data(), n, logits.data()), Catch::Contains(why));
    CHECK_THROWS_WITH(engine.profile(x.data(), n, 1), Catch::Contains(why));
  }
  // A refusal leaves the engine as it was; each run gives its context back for the next.
  engine.run(x.data(), 2, logits.data());
  std::vector<float> again(logits.size());
  engine.run(x.data(), 2, again.data());
  CHECK(again == logits);
  CHECK(engine.profile(x.data(), 2, 1).size() > 1);
}

TEST_CASE("engine: a batch gives each sample's batch-1 logits wherever it turns from per sample to batched",
          "[engine]") {
  // MobileNetV3-Large and EfficientNet-B1 run a batch one sample at a time up to a point between
  // blocks (XnnOptions::batched_pixels) and batched after it: from the pooling on (1), from the
  // 16x16 maps of a 64 px input on (784; inside a block whose residual must not be cut), and from
  // the first layer on (everything).
  cxrtest::TempDir tmp;
  for (const std::string arch : {"mobilenet_v3_large", "efficientnet_b1"}) {
    DYNAMIC_SECTION(arch) {
      make_weights(arch, 3, 11, tmp / (arch + ".pt"));
      auto net = make_classifier(arch, 3);
      load_weights(*net, tmp / (arch + ".pt"));
      net->eval();
      const size_t n = 3, in = size_t{3} * 64 * 64;
      std::vector<float> x(n * in);
      std::mt19937 rng(5);
      std::normal_distribution<float> noise(0.f, 1.f);
      for (float& v : x) v = noise(rng);
      cxr::engine::XnnOptions o;
      o.height = o.width = 64;
      o.max_batch = static_cast<int>(n);
      std::vector<float> alone(n * 3);
      {
        cxr::engine::XnnNetwork engine(*net, o);
        for (size_t s = 0; s < n; ++s) engine.run(x.data() + s * in, 1, alone.data() + s * 3);
      }
      double spread = 0;
      for (float v : alone) spread = std::max(spread, std::abs(static_cast<double>(v)));
      REQUIRE(spread > 0.1);
      for (int pixels : {1, 784, 1 << 30}) {
        INFO("batched_pixels " << pixels);
        o.batched_pixels = pixels;
        cxr::engine::XnnNetwork engine(*net, o);
        std::vector<float> batched(n * 3);
        engine.run(x.data(), n, batched.data());
        for (size_t k = 0; k < batched.size(); ++k) CHECK(batched[k] == Approx(alone[k]).margin(1e-5 * spread));
      }
    }
  }
}

TEST_CASE("engine: pointwise convolutions run with their activation and squeeze-excitation gate fused", "[engine]") {
  // What the plan runs, by the names profile() gives its layers: every 1x1 convolution that an
  // activation follows carries it, every squeeze-excitation scaling goes into the convolution
  // after it, and no separate pass is left for either.
  struct Case {
    const char* arch;
    const char* act;
  };
  for (const Case& c : {Case{"efficientnet_b1", "silu"}, Case{"mobilenet_v3_large", "hardswish"}}) {
    DYNAMIC_SECTION(c.arch) {
      auto net = make_classifier(c.arch, 3);
      net->eval();
      cxr::engine::XnnOptions o;
      o.height = o.width = 64;
      cxr::engine::XnnNetwork engine(*net, o);
      std::vector<float> x(size_t{3} * 64 * 64, 0.5f);
      int fused_act = 0, gated = 0, scales = 0;
      const std::string pointwise = "conv 1x1/1 ";
      for (const auto& t : engine.profile(x.data(), 1, 1)) {
        INFO(t.name);
        if (t.name.find(pointwise) != std::string::npos && t.name.find(std::string(" +") + c.act) != std::string::npos) ++fused_act;
        if (t.name.find("gate + conv 1x1/1") != std::string::npos) ++gated;
        if (t.name.size() >= 6 && t.name.compare(t.name.size() - 6, 6, " scale") == 0) ++scales;
      }
      CHECK(fused_act > 0);
      CHECK(gated > 0);
      CHECK(scales == 0);
    }
  }
}

TEST_CASE("engine: embeddings equal the LibTorch path's; xnnpack refused where it cannot run", "[engine]") {
  cxrtest::TempDir tmp;
  ModelCard card;
  card.name = "m";
  card.architecture = "mobilenet_v3_large";
  card.task = Task::Multilabel;
  card.classes = {"a", "b"};
  card.thresholds = {0.5f, 0.5f};
  card.weights = tmp / "m.pth";
  card.input.height = card.input.width = 96;
  make_weights(card.architecture, 2, 5, card.weights);
  const auto scans = sample_scans();
  PredictorOptions o;
  o.device = "cpu";
  o.embeddings = true;
  o.max_batch = 4;
  o.engine = Engine::LibTorch;
  Predictor torch_path(card, o);
  o.engine = Engine::Xnnpack;
  Predictor engine_path(card, o);
  const auto a = torch_path.predict(scans);
  const auto b = engine_path.predict(scans);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(b[i].embedding.size() == 1280);
    REQUIRE(a[i].embedding.size() == 1280);
    double d = 0, scale = 0;
    for (size_t j = 0; j < a[i].embedding.size(); ++j) {
      d = std::max(d, static_cast<double>(std::abs(a[i].embedding[j] - b[i].embedding[j])));
      scale = std::max(scale, static_cast<double>(std::abs(a[i].embedding[j])));
    }
    CHECK(d <= 1e-4 * std::max(1.0, scale));
    CHECK(a[i].decisions == b[i].decisions);
    for (size_t c = 0; c < 2; ++c) CHECK(std::abs(a[i].probabilities[c] - b[i].probabilities[c]) <= kTol);
  }

  // Auto takes the engine on the CPU for a built-in architecture in fp32.
  o.engine = Engine::Auto;
  CHECK(Predictor(card, o).engine() == Engine::Xnnpack);
  // An explicit LibTorch memory format means LibTorch.
  o.layout = Layout::ChannelsLast;
  CHECK(Predictor(card, o).engine() == Engine::LibTorch);
  o.engine = Engine::Xnnpack;
  CHECK_THROWS_AS(Predictor(card, o), cxr::InvalidArgument);
  o.layout = Layout::Auto;
  o.fold_batchnorm = false;
  CHECK_THROWS_AS(Predictor(card, o), cxr::InvalidArgument);
  o.fold_batchnorm = true;
  o.precision = Precision::FP16;
  CHECK_THROWS_AS(Predictor(card, o), cxr::InvalidArgument);
}

TEST_CASE("engine: the depthwise kernel equals a direct convolution on every shape it takes", "[engine]") {
  // Odd sizes (borders on both sides, rows with no interior pixel, rows longer than the kernel's
  // 16-pixel tiles), channel counts that leave a masked tail (72, 184: MobileNetV3's and
  // EfficientNet's), a count under one block, 3x3 stride 1 and 5x5 strides 1 and 2, paddings
  // 0 .. k - 1, a batch of two, and each fused activation after the clamp.
  if (!cxr::engine::depthwise_kernel_available()) {
    // The engine then keeps XNNPACK's depthwise operator; constructing the kernel says why not.
    CHECK_THROWS_AS(cxr::engine::DepthwiseConv(16, 3, 1, 1, nullptr, nullptr, 0, 1, cxr::engine::DepthwisePost::None),
                    cxr::InvalidArgument);
    return;
  }
  using cxr::engine::DepthwisePost;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  struct Shape {
    size_t c, h, w;
    uint32_t k, stride, pad;
  };
  const std::vector<float> shapes_weight(16 * 9, 1.f);
  const Shape shapes[] = {{72, 9, 11, 3, 1, 1}, {184, 7, 7, 5, 1, 2}, {40, 13, 6, 5, 2, 1},  {5, 10, 9, 5, 2, 2},
                          {16, 4, 4, 5, 1, 2},  {33, 8, 5, 3, 1, 0},  {24, 12, 12, 5, 2, 1}, {17, 3, 3, 3, 1, 2},
                          {24, 5, 37, 3, 1, 1}, {20, 6, 41, 5, 2, 2}};  // rows of more than one tile
  // 3x3 stride 2 is XNNPACK's (faster there); the kernel refuses it.
  CHECK_FALSE(cxr::engine::DepthwiseConv::supports(3, 2));
  CHECK_THROWS_AS(
      cxr::engine::DepthwiseConv(16, 3, 2, 1, shapes_weight.data(), shapes_weight.data(), 0, 6, DepthwisePost::None),
      cxr::InvalidArgument);
  const size_t n = 2;
  for (const Shape& s : shapes) {
    for (DepthwisePost post : {DepthwisePost::None, DepthwisePost::SiLU, DepthwisePost::Hardswish}) {
      const float lo = post == DepthwisePost::None ? 0.f : -3.f, hi = post == DepthwisePost::None ? 6.f : 4.f;
      std::vector<float> w(s.c * s.k * s.k), b(s.c), x(n * s.h * s.w * s.c);
      for (auto* v : {&w, &b, &x}) {
        for (float& f : *v) f = normal(rng);
      }
      const cxr::engine::DepthwiseConv dw(s.c, s.k, s.stride, s.pad, w.data(), b.data(), lo, hi, post);
      const size_t oh = dw.out_size(s.h), ow = dw.out_size(s.w);
      std::vector<float> y(n * oh * ow * s.c, std::nanf(""));
      // Rows in two calls, as two threads would take them.
      dw.run_rows(x.data(), s.h, s.w, y.data(), 0, 3);
      dw.run_rows(x.data(), s.h, s.w, y.data(), 3, n * oh - 3);
      double worst = 0;
      for (size_t i = 0; i < n; ++i) {
        for (size_t oy = 0; oy < oh; ++oy) {
          for (size_t ox = 0; ox < ow; ++ox) {
            for (size_t ch = 0; ch < s.c; ++ch) {
              double acc = b[ch];
              for (size_t ky = 0; ky < s.k; ++ky) {
                for (size_t kx = 0; kx < s.k; ++kx) {
                  const long iy = static_cast<long>(oy * s.stride + ky) - static_cast<long>(s.pad);
                  const long ix = static_cast<long>(ox * s.stride + kx) - static_cast<long>(s.pad);
                  if (iy < 0 || ix < 0 || iy >= static_cast<long>(s.h) || ix >= static_cast<long>(s.w)) continue;
                  acc += static_cast<double>(w[(ch * s.k + ky) * s.k + kx]) *
                         x[((i * s.h + static_cast<size_t>(iy)) * s.w + static_cast<size_t>(ix)) * s.c + ch];
                }
              }
              acc = std::min<double>(std::max<double>(acc, lo), hi);
              if (post == DepthwisePost::SiLU) acc = acc / (1 + std::exp(-acc));
              if (post == DepthwisePost::Hardswish) acc = acc * std::min(std::max(acc / 6 + 0.5, 0.0), 1.0);
              const float got = y[((i * oh + oy) * ow + ox) * s.c + ch];
              worst = std::max(worst, std::isfinite(got) ? std::abs(got - acc) : 1e30);
            }
          }
        }
      }
      INFO("c " << s.c << " " << s.h << "x" << s.w << " k " << s.k << "/" << s.stride << " pad " << s.pad << " post "
                << static_cast<int>(post));
      CHECK(worst <= 2e-5);
    }
  }
}
