// SPDX-License-Identifier: LGPL-2.1-or-later
// The three architectures: shapes, torchvision's state_dict names/shapes/BatchNorm settings (from
// the parity interpreter at test time), the features/classify split, BatchNorm folding, the
// predictor's layouts, input banks and streams, Winograd and SiLU.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>
#include "cxr_catch.hpp"

#include "cxr/error.hpp"
#include "cxr/models/card.hpp"
#include "cxr/models/classifier.hpp"
#include "cxr/models/input.hpp"
#include "cxr/models/layout_cache.hpp"
#include "cxr/models/predictor.hpp"
#include "cxr/models/silu.hpp"
#include "cxr/models/weights.hpp"
#include "cxr/models/winograd.hpp"
#include "cxr/runtime/threads.hpp"
#include "testutil.hpp"

using namespace cxr::models;

namespace {

std::string run_python(const std::string& code) {
  const std::string python = cxrtest::env_or("CXR_PYTHON", "/usr/bin/python3");
  const std::string cmd = python + " -c '" + code + "' 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  REQUIRE(pipe);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe.get())) > 0) out.append(buf, n);
  const int rc = pclose(pipe.release());
  INFO(out);
  REQUIRE(rc == 0);
  return out;
}

/// "name shape" per state_dict entry, then "bn name eps momentum" per BatchNorm and
/// "dropout name p" per Dropout, as torchvision builds the model.
std::vector<std::string> torchvision_layout(const std::string& arch, int classes) {
  const std::string code =
      "import torch, torchvision\n"
      "m = getattr(torchvision.models, \"" + arch + "\")(num_classes=" + std::to_string(classes) + ")\n"
      "for k, v in m.state_dict().items(): print(k, list(v.shape))\n"
      "for k, v in m.named_modules():\n"
      "  if isinstance(v, torch.nn.BatchNorm2d): print(\"bn\", k, v.eps, v.momentum)\n"
      "  if isinstance(v, torch.nn.Dropout): print(\"dropout\", k, v.p)\n";
  std::istringstream in(run_python(code));
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

std::string shape(const torch::Tensor& t) {
  std::ostringstream os;
  os << "[";
  for (int64_t d = 0; d < t.dim(); ++d) os << (d ? ", " : "") << t.size(d);
  os << "]";
  return os.str();
}

std::string pyfloat(double v) {
  // Python's repr of the few values involved (1e-05, 0.001, 0.1, 0.01, 0.2).
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  std::string s = buf;
  if (s == "1e-05") return s;
  if (s.find('.') == std::string::npos && s.find('e') == std::string::npos) s += ".0";
  return s;
}

std::vector<std::string> our_layout(ClassifierImpl& net) {
  std::vector<std::string> lines;
  for (const auto& item : state_dict(net)) lines.push_back(item.key() + " " + shape(item.value()));
  for (const auto& m : net.named_modules("", false)) {
    if (auto* bn = m.value()->as<cxr::models::BatchNorm2dImpl>()) {
      lines.push_back("bn " + m.key() + " " + pyfloat(bn->options.eps()) + " " +
                      pyfloat(bn->options.momentum().value()));
    }
    if (auto* d = m.value()->as<torch::nn::DropoutImpl>()) lines.push_back("dropout " + m.key() + " " + pyfloat(d->options.p()));
  }
  return lines;
}

/// Moves BatchNorm statistics and affine parameters off their initial values.
void randomise_bn(ClassifierImpl& net) {
  torch::NoGradGuard no_grad;
  for (const auto& m : net.modules(false)) {
    if (auto* bn = m->as<cxr::models::BatchNorm2dImpl>()) {
      bn->running_mean.normal_(0.0, 0.1);
      bn->running_var.uniform_(0.5, 2.0);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.normal_(0.0, 0.1);
    }
  }
}

struct ArchCase {
  const char* name;
  int64_t feature_channels;
  int64_t embedding;
  const char* head;
};

const ArchCase kCases[] = {
    {"resnet34", 512, 512, "fc"},
    {"mobilenet_v3_large", 960, 1280, "classifier.3"},
    {"efficientnet_b1", 1280, 1280, "classifier.1"},
};

}  // namespace

TEST_CASE("models: state_dict names, shapes and BatchNorm/Dropout settings equal torchvision's", "[models]") {
  for (const auto& c : kCases) {
    SECTION(c.name) {
      torch::manual_seed(1);
      auto net = make_classifier(c.name, 5);
      const auto expected = torchvision_layout(c.name, 5);
      const auto ours = our_layout(*net);
      REQUIRE(expected.size() > 100);
      REQUIRE(ours.size() == expected.size());
      for (size_t i = 0; i < ours.size(); ++i) {
        INFO("entry " << i);
        REQUIRE(ours[i] == expected[i]);
      }
    }
  }
}

TEST_CASE("models: output shapes, features/classify split, embeddings", "[models]") {
  for (const auto& c : kCases) {
    SECTION(c.name) {
      torch::manual_seed(2);
      auto net = make_classifier(c.name, 3);
      net->eval();
      randomise_bn(*net);
      CHECK(net->architecture() == c.name);
      CHECK(net->head_prefix() == c.head);
      CHECK(net->num_classes() == 3);
      CHECK(net->embedding_size() == c.embedding);
      torch::NoGradGuard no_grad;
      auto x = torch::randn({2, 3, 97, 75});  // odd sizes
      auto y = net->forward(x);
      REQUIRE(y.sizes() == torch::IntArrayRef({2, 3}));
      auto f = net->features(x);
      CHECK(f.size(0) == 2);
      CHECK(f.size(1) == c.feature_channels);
      CHECK(f.size(2) == 4);  // stride 32: ceil(97 / 32)
      CHECK(f.size(3) == 3);
      auto e = net->embed(f);
      CHECK(e.sizes() == torch::IntArrayRef({2, c.embedding}));
      CHECK(torch::equal(net->classify(f), y));
      CHECK(torch::equal(net->head(e), y));
      // Samples are independent in eval mode.
      CHECK(torch::allclose(net->forward(x.narrow(0, 1, 1)), y.narrow(0, 1, 1), 1e-5, 1e-5));
    }
  }
}

TEST_CASE("models: BatchNorm folding gives the unfolded eval output", "[models]") {
  for (const auto& c : kCases) {
    SECTION(c.name) {
      torch::manual_seed(3);
      auto net = make_classifier(c.name, 4);
      randomise_bn(*net);
      net->eval();
      torch::NoGradGuard no_grad;
      auto x = torch::randn({3, 3, 64, 80});
      auto before = net->forward(x);
      auto f_before = net->features(x);
      REQUIRE_FALSE(net->folded());
      net->fold_batchnorm();
      REQUIRE(net->folded());
      auto after = net->forward(x);
      auto f_after = net->features(x);
      const double scale = before.abs().max().item<double>();
      INFO("max |diff| " << (after - before).abs().max().item<double>() << " of " << scale);
      CHECK((after - before).abs().max().item<double>() <= 1e-4 * std::max(1.0, scale));
      CHECK((f_after - f_before).abs().max().item<double>() <=
            1e-4 * std::max(1.0, f_before.abs().max().item<double>()));
      // Folding changed the computation (the BatchNorms were not identities to begin with).
      CHECK_FALSE(torch::equal(after, before));
      // Folding twice is harmless.
      net->fold_batchnorm();
      CHECK(torch::equal(net->forward(x), after));
      CHECK_THROWS_AS(save_weights(*net, "/tmp/never-written.pth"), cxr::InvalidArgument);
    }
  }
}

TEST_CASE("models: replace_head keeps the backbone and changes the classes", "[models]") {
  for (const auto& c : kCases) {
    SECTION(c.name) {
      auto net = make_classifier(c.name, 1000);
      const auto before = state_dict(*net);
      net->replace_head(6);
      CHECK(net->num_classes() == 6);
      const auto after = state_dict(*net);
      REQUIRE(after.size() == before.size());
      for (const auto& item : after) {
        const std::string& k = item.key();
        REQUIRE(before.contains(k));
        if (k.rfind(c.head, 0) == 0) {
          CHECK(item.value().size(0) == 6);
        } else {
          CHECK(item.value().is_same(before[k]));
        }
      }
      net->eval();
      torch::NoGradGuard no_grad;
      CHECK(net->forward(torch::randn({1, 3, 64, 64})).size(1) == 6);
    }
  }
}

TEST_CASE("models: unknown architecture and class count are refused", "[models]") {
  CHECK_THROWS_WITH(make_classifier("resnet50", 3), Catch::Contains("resnet34, mobilenet_v3_large, efficientnet_b1"));
  CHECK_THROWS_AS(make_classifier("resnet34", 0), cxr::InvalidArgument);
}

namespace {

/// A 3-class card of `architecture` for height x width inputs, with fresh weights (seeded) in t.
ModelCard small_card(const cxrtest::TempDir& t, const std::string& architecture, int height, int width,
                     uint64_t seed) {
  ModelCard card;
  card.name = architecture;
  card.architecture = architecture;
  card.classes = {"a", "b", "c"};
  card.weights = t / "w.pth";
  card.input.height = height;
  card.input.width = width;
  card.input.mean = {0.5f};
  card.input.std = {0.25f};
  write_initial_weights(card, seed);
  return card;
}

/// n grey scans of uniform noise, seeded seed, seed + 1, ...
std::vector<cv::Mat> noise_scans(int n, int rows, int cols, int seed) {
  std::vector<cv::Mat> scans;
  for (int i = 0; i < n; ++i) {
    cv::Mat m(rows, cols, CV_8U);
    cv::RNG(static_cast<uint64_t>(seed + i)).fill(m, cv::RNG::UNIFORM, 0, 256);
    scans.push_back(m);
  }
  return scans;
}

}  // namespace

TEST_CASE("models: Predictor gives the same results in every memory format; auto picks one", "[models]") {
  cxrtest::TempDir t;
  const std::string architecture = GENERATE(std::string("resnet34"), std::string("mobilenet_v3_large"));
  CAPTURE(architecture);
  const ModelCard card = small_card(t, architecture, 64, 80, 3);
  const std::vector<cv::Mat> scans = noise_scans(3, 97, 131, 40);
  auto run = [&](Layout layout, Layout* used) {
    PredictorOptions o;
    o.device = "cpu";
    o.layout = layout;
    Predictor p(card, o);
    *used = p.layout();
    return p.predict(scans);
  };
  const bool resnet = card.architecture == "resnet34";
  Layout cl_used, nchw_used, auto_used, onednn_used = Layout::OneDnn, winograd_used = Layout::Winograd;
  const auto cl = run(Layout::ChannelsLast, &cl_used);
  const auto nchw = run(Layout::Contiguous, &nchw_used);
  const auto automatic = run(Layout::Auto, &auto_used);
  CHECK(cl_used == Layout::ChannelsLast);
  CHECK(nchw_used == Layout::Contiguous);
  CHECK(auto_used != Layout::Auto);
  std::vector<Prediction> onednn, winograd;
  if (resnet) {
    onednn = run(Layout::OneDnn, &onednn_used);
    CHECK(onednn_used == Layout::OneDnn);
    winograd = run(Layout::Winograd, &winograd_used);
    CHECK(winograd_used == Layout::Winograd);
  } else {
    // Only ResNet-34 has the oneDNN and Winograd paths; asking another architecture is an error.
    CHECK_THROWS_WITH(run(Layout::OneDnn, &onednn_used), Catch::Contains("onednn") && Catch::Contains("resnet34"));
    CHECK_THROWS_WITH(run(Layout::Winograd, &winograd_used), Catch::Contains("winograd") && Catch::Contains("resnet34"));
    CHECK(auto_used != Layout::OneDnn);
    CHECK(auto_used != Layout::Winograd);
  }
  REQUIRE(cl.size() == scans.size());
  for (size_t i = 0; i < scans.size(); ++i) {
    for (size_t c = 0; c < 3; ++c) {
      CHECK(nchw[i].probabilities[c] == Approx(cl[i].probabilities[c]).margin(1e-5));
      CHECK(automatic[i].probabilities[c] == Approx(cl[i].probabilities[c]).margin(1e-5));
      if (resnet) CHECK(onednn[i].probabilities[c] == Approx(cl[i].probabilities[c]).margin(1e-5));
      if (resnet) CHECK(winograd[i].probabilities[c] == Approx(cl[i].probabilities[c]).margin(1e-5));
    }
  }
}

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

LayoutKey key_of(const ModelCard& card, const PredictorOptions& o) {
  LayoutKey k;
  k.architecture = card.architecture;
  k.height = card.input.height;
  k.width = card.input.width;
  k.batch = o.max_batch;
  k.threads = o.threads;
  k.streams = o.streams;
  return k;
}

}  // namespace

TEST_CASE("models: auto times the layouts on the first full batches, keeps every result, remembers", "[models]") {
  cxrtest::TempDir t;
  const std::string architecture = GENERATE(std::string("resnet34"), std::string("mobilenet_v3_large"));
  CAPTURE(architecture);
  const ModelCard card = small_card(t, architecture, 64, 80, 3);
  // ResNet-34 has 3 candidates, MobileNetV3 2: a warm-up batch each, then two timed rounds of
  // batches of 2 (each candidate timed on 4 scans).
  const size_t candidates = architecture == "resnet34" ? 3 : 2;
  const size_t trial_batches = 3 * candidates;
  const std::vector<cv::Mat> scans = noise_scans(static_cast<int>(2 * trial_batches + 3), 97, 131, 70);
  PredictorOptions o;
  o.device = "cpu";
  o.threads = 1;
  o.max_batch = 2;
  o.layout = Layout::Contiguous;
  const auto reference = Predictor(card, o).predict(scans);

  o.engine = Engine::LibTorch;  // the layout trial is the LibTorch engine's
  o.layout = Layout::Auto;
  o.layout_cache = t / "cache/layouts.tsv";
  std::vector<std::string> notes;
  o.on_layout = [&](Layout, const std::string& how) { notes.push_back(how); };
  Predictor first(card, o);
  CHECK_FALSE(first.layout_settled());
  // Every scan of the trial gets its result, equal to a pinned layout's within float rounding.
  std::vector<Prediction> got;
  for (size_t start = 0; start < scans.size(); start += 2) {
    const size_t n = std::min<size_t>(2, scans.size() - start);
    for (size_t i = 0; i < n; ++i) prepare_input_into(scans[start + i], card.input, first.slot(i));
    CHECK(first.layout_settled() == (start / 2 >= trial_batches));
    for (auto& p : first.run(n)) got.push_back(std::move(p));
  }
  CHECK(first.layout_settled());
  REQUIRE(got.size() == scans.size());
  for (size_t i = 0; i < scans.size(); ++i)
    for (size_t c = 0; c < 3; ++c) CHECK(got[i].probabilities[c] == Approx(reference[i].probabilities[c]).margin(1e-5));
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("timed on the first batches") != std::string::npos);
  CHECK(notes[0].find("remembered in " + o.layout_cache) != std::string::npos);
  const std::string text = read_text(o.layout_cache);
  CHECK(text.find("arch=" + architecture) != std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);
  CHECK(lookup_layout(o.layout_cache, key_of(card, o).str(), std::time(nullptr)) == to_string(first.layout()));

  // A second predictor with the same key starts settled on the remembered layout.
  notes.clear();
  Predictor second(card, o);
  CHECK(second.layout_settled());
  CHECK(second.layout() == first.layout());
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("remembered in") != std::string::npos);
  // Another batch size is another key: timed anew, and the file then holds both.
  o.max_batch = 3;
  Predictor third(card, o);
  CHECK_FALSE(third.layout_settled());
}

TEST_CASE("models: the layout cache is never trusted blindly and never an error", "[models]") {
  cxrtest::TempDir t;
  const ModelCard card = small_card(t, "mobilenet_v3_large", 64, 64, 3);
  PredictorOptions o;
  o.device = "cpu";
  o.threads = 1;
  o.max_batch = 2;
  o.engine = Engine::LibTorch;  // the layout cache is the LibTorch engine's
  o.layout_cache = t / "layouts.tsv";
  const std::string key = key_of(card, o).str();
  const int64_t now = std::time(nullptr);

  // A remembered choice is used as it is, whatever it is.
  REQUIRE(remember_layout(o.layout_cache, key, "contiguous", "by hand", now));
  CHECK(Predictor(card, o).layout() == Layout::Contiguous);
  REQUIRE(remember_layout(o.layout_cache, key, "channels-last", "by hand", now));
  CHECK(Predictor(card, o).layout() == Layout::ChannelsLast);

  // Stale, from the future, of another key, a layout this network lacks: timed anew.
  const int64_t day = 86400;
  REQUIRE(remember_layout(o.layout_cache, key, "contiguous", "", now - (kLayoutCacheMaxAgeDays + 1) * day));
  CHECK(lookup_layout(o.layout_cache, key, now) == "");
  CHECK_FALSE(Predictor(card, o).layout_settled());
  REQUIRE(remember_layout(o.layout_cache, key, "contiguous", "", now + 3 * day));
  CHECK_FALSE(Predictor(card, o).layout_settled());
  REQUIRE(remember_layout(o.layout_cache, key + "x", "contiguous", "", now));
  CHECK(lookup_layout(o.layout_cache, key, now) == "");
  REQUIRE(remember_layout(o.layout_cache, key, "winograd", "", now));  // ResNet-34's only
  CHECK_FALSE(Predictor(card, o).layout_settled());

  // Corrupt files: garbage, a truncated line, binary zeros, a layout name that does not exist.
  for (const std::string& junk : {std::string("\x89PNG\r\n\x1a\n garbage"), "v1\t" + key + "\tcontig",
                                 std::string(100, '\0'), "v1\t" + key + "\tfastest\t" + std::to_string(now) + "\t\n"}) {
    {
      std::ofstream out(o.layout_cache, std::ios::binary | std::ios::trunc);
      out << junk;
    }
    CHECK(lookup_layout(o.layout_cache, key, now) == "");
    Predictor p(card, o);
    CHECK_FALSE(p.layout_settled());
    const std::vector<cv::Mat> scans = noise_scans(12, 64, 64, 5);
    p.predict(scans);  // 6 full batches: the trial (2 candidates x 3) ends and rewrites the file
    CHECK(p.layout_settled());
    CHECK(lookup_layout(o.layout_cache, key, now) == to_string(p.layout()));
  }

  // A cache that cannot be written (its folder is a file) is no error: the trial still settles.
  o.layout_cache = t / "layouts.tsv/sub.tsv";
  CHECK_FALSE(remember_layout(o.layout_cache, key, "contiguous", "", now));
  Predictor p(card, o);
  p.predict(noise_scans(12, 64, 64, 5));
  CHECK(p.layout_settled());

  // Where the cache lives by default (the environment put back afterwards).
  const char* const names[] = {"CXR_LAYOUT_CACHE", "XDG_CACHE_HOME", "HOME"};
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  for (const char* n : names) {
    const char* v = std::getenv(n);
    saved.emplace_back(n, v ? std::optional<std::string>(v) : std::nullopt);
  }
  ::setenv("CXR_LAYOUT_CACHE", "off", 1);
  CHECK(default_layout_cache() == "");
  ::setenv("CXR_LAYOUT_CACHE", "/tmp/x.tsv", 1);
  CHECK(default_layout_cache() == "/tmp/x.tsv");
  ::unsetenv("CXR_LAYOUT_CACHE");
  ::setenv("XDG_CACHE_HOME", "/var/cache/me", 1);
  CHECK(default_layout_cache() == "/var/cache/me/gst-cxr/layouts.tsv");
  ::unsetenv("XDG_CACHE_HOME");
  ::setenv("HOME", "/home/me", 1);
  CHECK(default_layout_cache() == "/home/me/.cache/gst-cxr/layouts.tsv");
  for (const auto& [n, v] : saved) {
    if (v)
      ::setenv(n.c_str(), v->c_str(), 1);
    else
      ::unsetenv(n.c_str());
  }
  // The key names the machine and the libraries.
  CHECK(machine_fingerprint().find("torch=") != std::string::npos);
  CHECK(machine_fingerprint().find("cpu=") != std::string::npos);
}

TEST_CASE("models: Predictor input banks: one filled while another runs, same results", "[models]") {
  cxrtest::TempDir t;
  const ModelCard card = small_card(t, "mobilenet_v3_large", 64, 64, 5);
  const std::vector<cv::Mat> scans = noise_scans(4, 70, 90, 60);
  PredictorOptions o;
  o.device = "cpu";
  o.max_batch = 2;
  o.input_banks = 2;
  // A fixed layout: under Auto the first batches run in the layouts being timed, whose results
  // differ by float rounding, and this test compares bit for bit.
  o.layout = Layout::ChannelsLast;
  Predictor p(card, o);
  const auto expected = p.predict(scans);  // bank 0, two batches of two
  REQUIRE(expected.size() == 4);
  CHECK(p.slot(0, 1) != p.slot(0, 0));
  CHECK(p.slot(0, 1) != p.slot(1, 0));
  CHECK_THROWS_AS(p.slot(0, 2), cxr::InvalidArgument);
  CHECK_THROWS_AS(p.run(1, 2), cxr::InvalidArgument);

  // Scans 0-1 in bank 0, 2-3 in bank 1; bank 1 is filled while bank 0 runs on another thread.
  for (size_t i = 0; i < 2; ++i) prepare_input_into(scans[i], card.input, p.slot(i, 0));
  cxr::runtime::ComputeThread compute("cxr-test-banks");
  auto first = compute.submit([&] { return p.run(2, 0); });
  for (size_t i = 0; i < 2; ++i) prepare_input_into(scans[2 + i], card.input, p.slot(i, 1));
  auto second = compute.submit([&] { return p.run(2, 1); });
  auto a = first.get();
  auto b = second.get();
  a.insert(a.end(), b.begin(), b.end());
  for (size_t i = 0; i < 4; ++i) {
    for (size_t c = 0; c < 3; ++c) CHECK(a[i].logits[c] == expected[i].logits[c]);
  }

  o.input_banks = 0;
  CHECK_THROWS_WITH(Predictor(card, o), Catch::Contains("banks"));
}

TEST_CASE("models: Predictor runs on several threads at once, each on its own bank", "[models]") {
  // What cxrinfer's streams do: one network, a compute thread per stream with its own thread
  // count, batches side by side. Each thread's results equal the serial ones, every round.
  cxrtest::TempDir t;
  const auto [architecture, layout] = GENERATE(std::make_pair(std::string("resnet34"), Layout::OneDnn),
                                               std::make_pair(std::string("resnet34"), Layout::Winograd),
                                               std::make_pair(std::string("mobilenet_v3_large"), Layout::ChannelsLast),
                                               std::make_pair(std::string("efficientnet_b1"), Layout::Contiguous));
  CAPTURE(architecture, to_string(layout));
  const ModelCard card = small_card(t, architecture, 64, 64, 9);
  constexpr size_t kStreams = 3;
  const std::vector<cv::Mat> scans = noise_scans(2 * kStreams, 70, 90, 80);
  PredictorOptions o;
  o.device = "cpu";
  o.max_batch = 2;
  o.input_banks = kStreams;
  o.threads = 1;
  o.layout = layout;
  o.embeddings = true;
  Predictor p(card, o);
  const auto expected = p.predict(scans);
  std::vector<std::unique_ptr<cxr::runtime::ComputeThread>> streams;
  for (size_t s = 0; s < kStreams; ++s)
    streams.push_back(std::make_unique<cxr::runtime::ComputeThread>("cxr-test-s" + std::to_string(s)));
  for (int round = 0; round < 3; ++round) {
    std::vector<std::future<std::vector<Prediction>>> runs;
    for (size_t s = 0; s < kStreams; ++s) {
      for (size_t i = 0; i < 2; ++i) prepare_input_into(scans[2 * s + i], card.input, p.slot(i, s));
      runs.push_back(streams[s]->submit([&p, s] { return p.run(2, s); }));
    }
    for (size_t s = 0; s < kStreams; ++s) {
      const auto got = runs[s].get();
      REQUIRE(got.size() == 2);
      for (size_t i = 0; i < 2; ++i) {
        const Prediction& e = expected[2 * s + i];
        for (size_t c = 0; c < 3; ++c) CHECK(got[i].logits[c] == Approx(e.logits[c]).margin(1e-5));
        REQUIRE(got[i].embedding.size() == e.embedding.size());
        for (size_t d = 0; d < e.embedding.size(); d += 97) CHECK(got[i].embedding[d] == Approx(e.embedding[d]).margin(1e-5));
      }
    }
  }
  // Each compute thread ran with the one thread it was given.
  for (auto& s : streams) CHECK(s->call([] { return cxr::runtime::compute_threads(); }) == 1);
}

namespace {

// A ResNet-34 with non-trivial BatchNorm statistics, so that folding matters.
std::shared_ptr<ClassifierImpl> resnet_with_statistics(uint64_t seed) {
  torch::manual_seed(seed);
  auto net = make_classifier("resnet34", 4);
  torch::NoGradGuard no_grad;
  for (auto& b : net->named_buffers()) {
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
    if (b.key().find("running_mean") != std::string::npos) b.value().uniform_(-0.2, 0.2);
  }
  return net;
}

}  // namespace

TEST_CASE("models: Winograd convolution equals the direct one, with bias, residual and ReLU", "[models]") {
  torch::manual_seed(5);
  const auto gemm = GENERATE(WinogradConv::Gemm::Blas, WinogradConv::Gemm::Torch);
  const int threads = GENERATE(1, 2);
  CAPTURE(static_cast<int>(gemm), threads);
  if (gemm == WinogradConv::Gemm::Blas) REQUIRE(WinogradConv::have_blas());  // LibTorch's own BLAS is loaded
  struct Restore {
    int before = cxr::runtime::compute_threads();
    ~Restore() { cxr::runtime::set_compute_threads(before); }
  } restore;
  cxr::runtime::set_compute_threads(threads);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(16, 24, 3).padding(1));
  c10::InferenceMode guard;
  const WinogradConv wino(*conv, gemm);
  CHECK(wino.gemm() == gemm);
  const auto cl = torch::MemoryFormat::ChannelsLast;
  // Odd and even sides (edge tiles half outside), a single pixel, and more tiles than one pass.
  for (const auto& [batch, h, w] : {std::tuple{3, 7, 9}, std::tuple{1, 1, 1}, std::tuple{2, 2, 5}, std::tuple{2, 40, 33}}) {
    CAPTURE(batch, h, w);
    const auto x = torch::randn({batch, 16, h, w}).contiguous(cl);
    const auto direct = conv->forward(x);
    const auto tol = 1e-5f * std::max(1.f, direct.abs().max().item<float>());
    const auto plain = wino(x, nullptr, false);
    CHECK(plain.is_contiguous(cl));
    CHECK(plain.sizes() == direct.sizes());
    CHECK((plain - direct).abs().max().item<float>() <= tol);
    const auto residual = torch::randn_like(direct).contiguous(cl);
    const auto fused = wino(x, &residual, true);
    CHECK((fused - torch::relu(direct + residual)).abs().max().item<float>() <= tol);
    CHECK(fused.min().item<float>() >= 0.f);
  }
  // Where it does not apply, and inputs it does not take.
  CHECK_FALSE(WinogradConv::applies_to(*torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 24, 3).padding(1).stride(2))));
  CHECK_FALSE(WinogradConv::applies_to(*torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 24, 3).padding(1))));
  CHECK_FALSE(WinogradConv::applies_to(*torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 24, 1))));
  CHECK_THROWS_WITH(WinogradConv(*torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 24, 7).padding(3))),
                    Catch::Contains("3x3"));
  CHECK_THROWS_WITH(wino(torch::randn({1, 16, 8, 8}), nullptr, false), Catch::Contains("channels-last"));
  CHECK_THROWS_WITH(wino(torch::randn({1, 8, 8, 8}).contiguous(cl), nullptr, false), Catch::Contains("16 channels"));
  const auto small = torch::randn({1, 24, 4, 4}).contiguous(cl);
  CHECK_THROWS_WITH(wino(torch::randn({1, 16, 8, 8}).contiguous(cl), &small, false), Catch::Contains("residual"));
}

TEST_CASE("models: ResNet-34's oneDNN and Winograd paths compute features() and forward() as the dense one",
          "[models]") {
  // The two inference paths behind one switch each: on, off (the packed weights kept), released.
  struct Path {
    const char* name;
    bool channels_last;  // the dense weights' layout beside it, as the Predictor sets them
    void (ClassifierImpl::*set)(bool);
    void (ClassifierImpl::*release)();
    bool (ClassifierImpl::*active)() const;
  };
  const Path path = GENERATE(Path{"onednn", false, &ClassifierImpl::set_onednn, &ClassifierImpl::release_onednn,
                                  &ClassifierImpl::onednn},
                             Path{"winograd", true, &ClassifierImpl::set_winograd, &ClassifierImpl::release_winograd,
                                  &ClassifierImpl::winograd});
  CAPTURE(path.name);
  auto net = resnet_with_statistics(21);
  ClassifierImpl& n = *net;
  CHECK_THROWS_WITH((n.*path.set)(true), Catch::Contains("folded"));  // BatchNorm still unfolded
  prepare_for_inference(n, torch::kCPU, torch::kFloat, path.channels_last);
  c10::InferenceMode guard;
  // Odd sizes: every stage's padding, pooling and Winograd edge tiles.
  const auto x = torch::randn({2, 3, 97, 131});
  const auto dense_features = n.features(x);
  const auto dense = n.forward(x);
  (n.*path.set)(true);
  REQUIRE((n.*path.active)());
  const auto features = n.features(x);
  CHECK_FALSE(features.is_mkldnn());  // callers get a dense tensor either way
  CHECK(features.sizes() == dense_features.sizes());
  CHECK((features - dense_features).abs().max().item<float>() <= 1e-4f * dense_features.abs().max().item<float>());
  CHECK((n.forward(x) - dense).abs().max().item<float>() <= 1e-4f * dense.abs().max().item<float>());
  (n.*path.set)(false);
  CHECK_FALSE((n.*path.active)());
  CHECK(torch::equal(n.forward(x), dense));
  (n.*path.set)(true);  // the packed weights kept from the first switch
  CHECK(torch::equal(n.features(x), features));
  (n.*path.release)();
  CHECK_FALSE((n.*path.active)());
  CHECK(torch::equal(n.forward(x), dense));
  (n.*path.set)(true);  // packs again
  CHECK(torch::equal(n.features(x), features));
}

TEST_CASE("models: only ResNet-34 has the oneDNN and Winograd paths", "[models]") {
  for (const auto& architecture : classifier_architectures()) {
    CAPTURE(architecture);
    auto net = make_classifier(architecture, 2);
    const bool resnet = architecture == "resnet34";
    CHECK(net->supports_winograd() == resnet);
    if (!resnet) {
      CHECK_FALSE(net->supports_onednn());
      CHECK_THROWS_WITH(net->set_onednn(true), Catch::Contains("no oneDNN path"));
      CHECK_THROWS_WITH(net->set_winograd(true), Catch::Contains("no Winograd path"));
    }
  }
}

TEST_CASE("models: vectorised SiLU equals x * sigmoid(x)", "[models]") {
  // Every float step over [-20, 20], the saturated tails, the odd tail after the last 8 lanes.
  std::vector<float> x;
  for (float v = -20.f; v <= 20.f; v += 1.f / 64) x.push_back(v);
  for (float v : {-1e4f, -300.f, -89.f, -88.f, -87.5f, 87.5f, 88.f, 89.f, 300.f, 1e4f, 0.f, -0.f, 1e-30f, -1e-30f}) {
    x.push_back(v);
  }
  x.push_back(0.25f);  // length not a multiple of 8
  std::vector<float> y = x;
  silu_inplace(y.data(), static_cast<int64_t>(y.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i], expected = v / (1.0 + std::exp(-v));
    const double err = std::abs(y[i] - expected) / std::max(1e-30, std::abs(expected));
    if (std::abs(expected) > 1e-30) worst = std::max(worst, err);
    CHECK(std::isfinite(y[i]));
  }
  CHECK(worst < 1e-6);  // a few float roundings
  CHECK(y[x.size() - 1] == Approx(0.25 / (1 + std::exp(-0.25))).epsilon(1e-6));

  // The tensor call: the fast path under InferenceMode for dense fp32 (NCHW and channels-last,
  // several threads), LibTorch's own elsewhere (autograd, strided views).
  const auto input = torch::randn({2, 24, 17, 19}) * 6;
  const auto expected = torch::silu(input);
  for (const auto format : {torch::MemoryFormat::Contiguous, torch::MemoryFormat::ChannelsLast}) {
    c10::InferenceMode guard;
    auto t = input.clone().contiguous(format);
    CHECK(cxr::models::silu_(t).data_ptr() == t.data_ptr());
    CHECK(torch::allclose(t, expected, 1e-5, 1e-6));
    auto strided = input.clone().transpose(2, 3);  // neither layout: LibTorch's
    CHECK(torch::allclose(cxr::models::silu_(strided), expected.transpose(2, 3), 1e-5, 1e-6));
  }
  // Outside InferenceMode, LibTorch's silu_: same values, and autograd keeps working.
  const auto leaf = input.clone().requires_grad_(true);
  auto trained = leaf * 1.0;
  CHECK(torch::allclose(cxr::models::silu_(trained), expected, 1e-5, 1e-6));
  trained.sum().backward();
  CHECK(leaf.grad().defined());
}
