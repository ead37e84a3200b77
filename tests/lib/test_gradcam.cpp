// SPDX-License-Identifier: LGPL-2.1-or-later
// Grad-CAM: the map follows a lesion a small network was trained to find; the CAM identity of
// global-average-pooled linear heads; target layers; scan-level explain() on odd sizes, 8 and
// 16 bit; scaling; errors. Parity with torchvision lives in tests/parity/parity_gradcam.py.
#include <torch/torch.h>

#include "cxr_catch.hpp"
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/explain/gradcam.hpp"
#include "cxr/explain/gradcam_torch.hpp"
#include "cxr/models/card.hpp"
#include "cxr/models/classifier.hpp"
#include "cxr/models/predictor.hpp"
#include "testutil.hpp"

using namespace cxr::explain;
using cxr::models::ClassifierImpl;

namespace {

/// A small all-convolutional classifier: features at 1/4 resolution, global average pool, linear.
class TinyNetImpl : public ClassifierImpl {
 public:
  TinyNetImpl() : ClassifierImpl("TinyNet") {
    c1 = register_module("c1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 16, 3).padding(1)));
    c2 = register_module("c2", torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).stride(2).padding(1)));
    c3 = register_module("c3", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 32, 3).stride(2).padding(1)));
    fc = register_module("fc", torch::nn::Linear(32, 2));
  }
  torch::Tensor features(torch::Tensor x) override {
    return torch::relu(c3(torch::relu(c2(torch::relu(c1(x))))));
  }
  torch::Tensor embed(torch::Tensor f) override { return f.mean({2, 3}); }
  torch::Tensor head(torch::Tensor e) override { return fc(e); }
  std::string architecture() const override { return "tiny"; }
  std::string head_prefix() const override { return "fc"; }
  std::string features_layer() const override { return "features"; }
  int64_t num_classes() const override { return 2; }
  int64_t embedding_size() const override { return 32; }
  void replace_head(int64_t) override {}

  torch::nn::Conv2d c1{nullptr}, c2{nullptr}, c3{nullptr};
  torch::nn::Linear fc{nullptr};
};

constexpr int kSize = 64;
constexpr int kRadius = 5;

/// Noisy background; positives get a bright disc at a random place. Returns images [N, 3, 64, 64]
/// and writes the labels and disc centres.
torch::Tensor synthetic_batch(std::mt19937& rng, int n, std::vector<int64_t>& labels, std::vector<cv::Point>& centres) {
  auto x = torch::rand({n, 1, kSize, kSize}) * 0.4;
  auto acc = x.accessor<float, 4>();
  std::uniform_int_distribution<int> pos(kRadius + 2, kSize - kRadius - 3);
  labels.assign(static_cast<size_t>(n), 0);
  centres.assign(static_cast<size_t>(n), {-1, -1});
  for (int i = 0; i < n; ++i) {
    if (i % 2 == 0) continue;
    labels[static_cast<size_t>(i)] = 1;
    const cv::Point c(pos(rng), pos(rng));
    centres[static_cast<size_t>(i)] = c;
    for (int y = c.y - kRadius; y <= c.y + kRadius; ++y) {
      for (int xx = c.x - kRadius; xx <= c.x + kRadius; ++xx) {
        if ((y - c.y) * (y - c.y) + (xx - c.x) * (xx - c.x) <= kRadius * kRadius) acc[i][0][y][xx] = 1.0f;
      }
    }
  }
  return x.repeat({1, 3, 1, 1});
}

/// A card with fresh (seeded) weights in `dir`.
cxr::models::ModelCard fresh_card(const cxrtest::TempDir& dir, const std::string& arch, int classes,
                                  bool multilabel = false, float threshold = 0.5f) {
  cxr::models::ModelCard card;
  card.name = arch + "-test";
  card.architecture = arch;
  card.task = multilabel ? cxr::models::Task::Multilabel : cxr::models::Task::Multiclass;
  for (int c = 0; c < classes; ++c) card.classes.push_back("class" + std::to_string(c));
  if (multilabel) card.thresholds.assign(static_cast<size_t>(classes), threshold);
  card.weights = (dir.path / (arch + ".pth")).string();
  card.input.height = 64;
  card.input.width = 64;
  card.input.mean = {0.5f};
  card.input.std = {0.25f};
  cxr::models::write_initial_weights(card, 7);
  return card;
}

}  // namespace

TEST_CASE("gradcam: the map follows a planted lesion the network learned to find", "[gradcam]") {
  torch::manual_seed(3);
  std::mt19937 rng(5);
  auto net = std::make_shared<TinyNetImpl>();
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(0.01));
  std::vector<int64_t> labels;
  std::vector<cv::Point> centres;
  net->train();
  for (int step = 0; step < 60; ++step) {
    auto x = synthetic_batch(rng, 16, labels, centres);
    auto loss = torch::nn::functional::cross_entropy(net->forward(x), torch::tensor(labels));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  net->eval();

  for (auto& p : net->parameters()) p.mutable_grad() = torch::Tensor();
  auto x = synthetic_batch(rng, 40, labels, centres);
  const auto method = GENERATE(CamMethod::gradcam, CamMethod::gradcam_pp);
  CamTensors cams = compute_cams(*net, x, std::vector<int64_t>(40, 1), method);
  REQUIRE(cams.maps.sizes() == torch::IntArrayRef({40, 16, 16}));
  // The network must have learned the task, or the test says nothing.
  const auto predicted = cams.logits.argmax(1);
  int correct = 0;
  for (int i = 0; i < 40; ++i) correct += predicted[i].item<int64_t>() == labels[static_cast<size_t>(i)];
  INFO("accuracy " << correct << "/40");
  REQUIRE(correct >= 36);

  auto up = upsample_cams(cams.maps, kSize, kSize).contiguous();
  int inside = 0, positives = 0;
  for (int i = 0; i < 40; ++i) {
    if (!labels[static_cast<size_t>(i)]) continue;
    ++positives;
    const int64_t peak = up[i].flatten().argmax().item<int64_t>();
    const cv::Point p(static_cast<int>(peak % kSize), static_cast<int>(peak / kSize));
    const cv::Point d = p - centres[static_cast<size_t>(i)];
    // The disc, plus one pixel for the map's quarter resolution.
    if (d.x * d.x + d.y * d.y <= (kRadius + 1) * (kRadius + 1)) ++inside;
  }
  INFO(to_string(method) << ": peak inside the lesion for " << inside << " of " << positives << " positives");
  CHECK(inside >= positives * 8 / 10);
  // No gradients left behind in the parameters.
  for (const auto& p : net->parameters()) CHECK(!p.grad().defined());
}

TEST_CASE("gradcam: pooled linear heads give the class activation map", "[gradcam]") {
  // For global average pooling + linear, the gradient of logit c is W[c] / (h * w) everywhere, so
  // Grad-CAM = relu(sum_k W[c, k] A_k) / (h * w) (Zhou et al.'s CAM).
  const std::string arch = GENERATE(std::string("resnet34"), std::string("efficientnet_b1"));
  torch::manual_seed(1);
  auto net = cxr::models::make_classifier(arch, 3);
  net->eval();
  auto x = torch::randn({2, 3, 96, 80});
  CamTensors cams = compute_cams(*net, x, {2, 0}, CamMethod::gradcam);
  torch::NoGradGuard no_grad;
  auto a = net->features(x);
  const std::string prefix = net->head_prefix();
  torch::Tensor w;
  for (const auto& p : net->named_parameters()) {
    if (p.key() == prefix + ".weight") w = p.value();
  }
  REQUIRE(w.defined());
  const double hw = static_cast<double>(a.size(2) * a.size(3));
  for (int i = 0; i < 2; ++i) {
    const int64_t c = i == 0 ? 2 : 0;
    auto ref = torch::relu((w[c].view({-1, 1, 1}) * a[i]).sum(0)) / hw;
    CHECK(torch::allclose(cams.maps[i], ref, 1e-4, 1e-6));
  }
  CHECK(torch::allclose(cams.logits, net->forward(x), 1e-4, 1e-5));
}

TEST_CASE("gradcam: target layers", "[gradcam]") {
  torch::manual_seed(2);
  SECTION("resnet34 layer3 and layer4") {
    auto net = cxr::models::make_classifier("resnet34", 2);
    net->eval();
    auto x = torch::randn({1, 3, 128, 128});
    CHECK(compute_cams(*net, x, {-1}, CamMethod::gradcam, "layer3").maps.sizes() == torch::IntArrayRef({1, 8, 8}));
    auto def = compute_cams(*net, x, {-1}, CamMethod::gradcam);
    auto named = compute_cams(*net, x, {-1}, CamMethod::gradcam, "layer4");
    CHECK(def.maps.sizes() == torch::IntArrayRef({1, 4, 4}));
    CHECK(torch::equal(def.maps, named.maps));
    // Whatever layer the map is taken at, the logits are the network's.
    CHECK(torch::allclose(compute_cams(*net, x, {0}, CamMethod::gradcam_pp, "layer2").logits, def.logits, 1e-4, 1e-5));
    CHECK_THROWS_AS(compute_cams(*net, x, {-1}, CamMethod::gradcam, "layer5"), cxr::InvalidArgument);
    CHECK_THROWS_AS(compute_cams(*net, x, {-1}, CamMethod::gradcam, "features.3"), cxr::InvalidArgument);
    CHECK_THROWS_AS(compute_cams(*net, x, {2}, CamMethod::gradcam), cxr::InvalidArgument);
  }
  SECTION("mobilenet_v3_large features.N") {
    auto net = cxr::models::make_classifier("mobilenet_v3_large", 2);
    net->eval();
    auto x = torch::randn({1, 3, 96, 96});
    auto def = compute_cams(*net, x, {1}, CamMethod::gradcam);
    CHECK(torch::equal(def.maps, compute_cams(*net, x, {1}, CamMethod::gradcam, "features.-1").maps));
    CHECK(torch::equal(def.maps, compute_cams(*net, x, {1}, CamMethod::gradcam, "features.16").maps));
    auto mid = compute_cams(*net, x, {1}, CamMethod::gradcam, "features.12");
    CHECK(mid.maps.sizes() == torch::IntArrayRef({1, 6, 6}));
    CHECK(torch::allclose(mid.logits, def.logits, 1e-4, 1e-5));
    CHECK_THROWS_AS(compute_cams(*net, x, {1}, CamMethod::gradcam, "features.17"), cxr::InvalidArgument);
    CHECK_THROWS_AS(compute_cams(*net, x, {1}, CamMethod::gradcam, "features.x"), cxr::InvalidArgument);
    CHECK_THROWS_AS(compute_cams(*net, x, {1}, CamMethod::gradcam, "layer4"), cxr::InvalidArgument);
  }
}

TEST_CASE("gradcam: explain() on scans of any size", "[gradcam]") {
  cxrtest::TempDir dir;
  const std::string arch = GENERATE(std::string("resnet34"), std::string("mobilenet_v3_large"),
                                    std::string("efficientnet_b1"));
  GradCam cam(fresh_card(dir, arch, 3), "cpu");
  CHECK(cam.device() == "cpu");
  const int type = GENERATE(CV_8U, CV_16U);
  cv::Mat big = cxrtest::random_image({385 + 10, 289 + 7}, type, 4);
  cv::Mat scan = big(cv::Rect(5, 3, 385, 289));  // a non-continuous view
  CamParams params;
  params.method = GENERATE(CamMethod::gradcam, CamMethod::gradcam_pp);
  CamResult r = cam.explain(scan, params);
  REQUIRE(r.cams.size() == 1);
  const Cam& c = r.cams[0];
  CHECK(c.target == r.prediction.top);
  CHECK(c.heatmap.type() == CV_32FC1);
  CHECK(c.heatmap.size() == scan.size());
  double lo = 0, hi = 0;
  cv::minMaxLoc(c.heatmap, &lo, &hi);
  CHECK(lo == 0.0);
  if (c.raw_max > c.raw_min) CHECK(hi == Approx(1.0));
  CHECK(r.prediction.probabilities.size() == 3);

  // The prediction is the predictor's.
  cxr::models::PredictorOptions po;
  po.device = "cpu";
  cxr::models::Predictor predictor(cam.card(), po);
  auto p = predictor.predict({scan})[0];
  for (size_t k = 0; k < 3; ++k) CHECK(r.prediction.probabilities[k] == Approx(p.probabilities[k]).margin(1e-4));

  // Fixed scaling: raw values / fixed_max, clipped.
  params.scaling = CamScaling::fixed;
  params.fixed_max = c.raw_max > 0 ? c.raw_max * 2 : 1.0f;
  CamResult f = cam.explain(scan, params);
  cv::minMaxLoc(f.cams[0].heatmap, &lo, &hi);
  CHECK(hi <= 0.5 + 1e-5);
  params.target = CamTarget::index;
  params.index = 2;
  CHECK(cam.explain(scan, params).cams[0].target == 2);
  params.index = 3;
  CHECK_THROWS_AS(cam.explain(scan, params), cxr::InvalidArgument);
  params.index = 0;
  params.fixed_max = 0;
  CHECK_THROWS_AS(cam.explain(scan, params), cxr::InvalidArgument);
  CHECK_THROWS_AS(cam.explain(cv::Mat(10, 10, CV_32F, cv::Scalar(0)), CamParams{}), cxr::InvalidArgument);
}

TEST_CASE("gradcam: positives of a multilabel card", "[gradcam]") {
  cxrtest::TempDir dir;
  cv::Mat scan = cxrtest::random_image({70, 90}, CV_8U, 9);
  CamParams params;
  params.target = CamTarget::positives;
  {
    GradCam all(fresh_card(dir, "mobilenet_v3_large", 4, true, 0.0f), "cpu");
    CamResult r = all.explain(scan, params);
    REQUIRE(r.cams.size() == 4);
    for (int k = 0; k < 4; ++k) CHECK(r.cams[static_cast<size_t>(k)].target == k);
  }
  GradCam none(fresh_card(dir, "mobilenet_v3_large", 4, true, 1.0f), "cpu");
  CamResult r = none.explain(scan, params);
  CHECK(r.cams.empty());
  CHECK(r.prediction.probabilities.size() == 4);
}

TEST_CASE("gradcam: bad cards fail at load", "[gradcam]") {
  cxrtest::TempDir dir;
  auto card = fresh_card(dir, "resnet34", 2);
  card.gradcam_layer = "features.3";
  CHECK_THROWS_AS(GradCam(card, "cpu"), cxr::ConfigError);
  card.gradcam_layer = "layer3";
  CHECK(GradCam(card, "cpu").layer() == "layer3");
  card.gradcam_layer.clear();
  CHECK_THROWS_AS(GradCam(card, "tpu"), cxr::InvalidArgument);
  card.architecture = "torchscript";
  CHECK_THROWS_AS(GradCam(card, "cpu"), cxr::ConfigError);
  card.architecture = "efficientnet_b1";  // weights of another architecture
  CHECK_THROWS_AS(GradCam(card, "cpu"), cxr::Error);
}

TEST_CASE("gradcam: every memory format gives the same maps; threads apply to explain()", "[gradcam]") {
  cxrtest::TempDir dir;
  const auto arch = GENERATE(std::string("resnet34"), std::string("mobilenet_v3_large"));
  CAPTURE(arch);
  const auto card = fresh_card(dir, arch, 3);
  cv::Mat scan = cxrtest::random_image({83, 71}, CV_8U, 4);
  CamParams params;
  params.target = CamTarget::index;
  params.index = 1;
  GradCamOptions options;
  options.layout = cxr::models::Layout::Contiguous;
  GradCam nchw(card, options);
  CHECK(nchw.layout() == cxr::models::Layout::Contiguous);
  options.layout = cxr::models::Layout::ChannelsLast;
  GradCam cl(card, options);
  CHECK(cl.layout() == cxr::models::Layout::ChannelsLast);
  const int before = at::get_num_threads();
  options.layout = cxr::models::Layout::Auto;
  options.threads = 1;
  GradCam automatic(card, options);
  CHECK(automatic.layout() != cxr::models::Layout::Auto);
  at::set_num_threads(2);
  const CamResult a = nchw.explain(scan, params);
  const CamResult b = cl.explain(scan, params);
  const CamResult c = automatic.explain(scan, params);
  CHECK(at::get_num_threads() == 1);  // explain() set the card's threads on this thread
  at::set_num_threads(before);
  REQUIRE(a.cams.size() == 1);
  REQUIRE(b.cams.size() == 1);
  REQUIRE(c.cams.size() == 1);
  for (const CamResult* r : {&b, &c}) {
    CHECK(r->cams[0].raw_max == Approx(a.cams[0].raw_max).epsilon(1e-3));
    CHECK(cv::norm(r->cams[0].heatmap, a.cams[0].heatmap, cv::NORM_INF) < 1e-3);
    for (size_t k = 0; k < 3; ++k) {
      CHECK(r->prediction.probabilities[k] == Approx(a.prediction.probabilities[k]).margin(1e-5));
    }
  }
  options.layout = cxr::models::Layout::OneDnn;  // inference only
  CHECK_THROWS_WITH(GradCam(card, options), Catch::Contains("onednn is for inference only"));
  options.layout = cxr::models::Layout::Winograd;
  CHECK_THROWS_WITH(GradCam(card, options), Catch::Contains("winograd is for inference only"));
  options.layout = cxr::models::Layout::Auto;
  options.threads = -1;
  CHECK_THROWS_AS(GradCam(card, options), cxr::InvalidArgument);
}

TEST_CASE("gradcam: scale_cam", "[gradcam]") {
  cv::Mat flat(5, 7, CV_32F, cv::Scalar(3.0f));
  scale_cam(flat, CamParams{});
  CHECK(cv::countNonZero(flat) == 0);
  cv::Mat ramp(1, 3, CV_32F);
  ramp.at<float>(0) = 2;
  ramp.at<float>(1) = 3;
  ramp.at<float>(2) = 6;
  scale_cam(ramp, CamParams{});
  CHECK(ramp.at<float>(1) == Approx(0.25));
  cv::Mat m8(2, 2, CV_8U);
  CHECK_THROWS_AS(scale_cam(m8, CamParams{}), cxr::InvalidArgument);
}

TEST_CASE("gradcam: the target by name, index or kind", "[gradcam]") {
  cxr::models::ModelCard card;
  card.name = "chest";
  card.classes = {"normal", "pneumonia", "7"};
  CamParams p;
  resolve_target("", card, p);
  CHECK(p.target == CamTarget::predicted);
  resolve_target("positives", card, p);
  CHECK(p.target == CamTarget::positives);
  resolve_target("pneumonia", card, p);
  CHECK(p.target == CamTarget::index);
  CHECK(p.index == 1);
  resolve_target("7", card, p);  // a class name wins over an index
  CHECK(p.index == 2);
  resolve_target("0", card, p);
  CHECK(p.target == CamTarget::index);
  CHECK(p.index == 0);
  for (const char* bad : {"3", "-1", "1x", "Normal"}) {
    CHECK_THROWS_WITH(resolve_target(bad, card, p),
                      Catch::Contains(std::string("target '") + bad) && Catch::Contains("chest (normal, pneumonia, 7)"));
  }
}

TEST_CASE("gradcam: the picture of the maps, heatmap and overlay, 8 and 16 bit", "[gradcam]") {
  const cv::Size size(37, 23);  // odd sizes
  Cam a, b;
  a.heatmap = cv::Mat(size, CV_32F, cv::Scalar(0.25f));
  b.heatmap = cv::Mat(size, CV_32F, cv::Scalar(0.f));
  b.heatmap(cv::Rect(0, 0, 10, 10)).setTo(1.f);
  const std::vector<Cam> cams{a, b};

  // Heatmap: the per-pixel maximum of the targets, 0..255.
  cv::Mat scan8(size, CV_8UC1, cv::Scalar(100));
  cv::Mat heat(size, CV_8UC1);
  render_cams(scan8, cams, 0.5, heat);
  CHECK(heat.at<uint8_t>(0, 0) == 255);
  CHECK(heat.at<uint8_t>(20, 30) == 64);  // 0.25 * 255 rounded

  // Overlay: the grey scan in RGB blended with the JET colour of the map.
  cv::Mat big(size.height + 4, size.width + 6, CV_8UC3, cv::Scalar(1, 2, 3));
  cv::Mat rgb = big(cv::Rect(3, 2, size.width, size.height));  // a ROI: written in place
  render_cams(scan8, cams, 0.0, rgb);
  CHECK(rgb.at<cv::Vec3b>(5, 5) == cv::Vec3b(100, 100, 100));  // alpha 0: the scan alone
  CHECK(big.at<cv::Vec3b>(0, 0) == cv::Vec3b(1, 2, 3));        // outside the ROI untouched
  render_cams(scan8, cams, 1.0, rgb);
  CHECK(rgb.at<cv::Vec3b>(0, 0)[0] > 100);  // the hottest pixel is red in RGB order
  CHECK(rgb.at<cv::Vec3b>(0, 0)[2] < 50);
  CHECK(rgb.at<cv::Vec3b>(20, 30)[2] > rgb.at<cv::Vec3b>(20, 30)[0]);  // a cool pixel is blue

  // 16-bit scans are shown as value / 257; no map: the grey scan alone.
  cv::Mat scan16(size, CV_16UC1, cv::Scalar(257 * 40));
  render_cams(scan16, {}, 0.7, rgb);
  CHECK(rgb.at<cv::Vec3b>(11, 12) == cv::Vec3b(40, 40, 40));

  cv::Mat wrong_size(size.height, size.width + 1, CV_8UC3);
  CHECK_THROWS_AS(render_cams(scan8, cams, 0.5, wrong_size), cxr::InvalidArgument);
  cv::Mat float_scan(size, CV_32FC1, cv::Scalar(0));
  CHECK_THROWS_AS(render_cams(float_scan, cams, 0.5, rgb), cxr::InvalidArgument);
  CHECK_THROWS_AS(render_cams(scan8, cams, 1.5, rgb), cxr::InvalidArgument);
  Cam small;
  small.heatmap = cv::Mat(cv::Size(4, 4), CV_32F, cv::Scalar(0));
  CHECK_THROWS_AS(render_cams(scan8, {small}, 0.5, rgb), cxr::InvalidArgument);
}
