// SPDX-License-Identifier: LGPL-2.1-or-later
// Training: learning-rate schedules equal torch's values; a network overfits a tiny set through
// train_step() (loss falls a lot, every parameter gets a gradient); run files are written
// atomically; the Trainer writes a loadable run directory, and a resumed run reaches the same
// weights as an uninterrupted one.
// LibTorch first: glog's CHECK must not replace Catch's.
#include <torch/torch.h>

#include "cxr_catch.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/models/card.hpp"
#include "cxr/models/classifier.hpp"
#include "cxr/models/weights.hpp"
#include "cxr/train/loop.hpp"
#include "cxr/train/run_files.hpp"
#include "cxr/train/schedule.hpp"
#include "cxr/train/trainer.hpp"
#include "testutil.hpp"

using namespace cxr::train;
namespace fs = std::filesystem;

namespace {

/// A grey 32x32 scan whose class shows as a bright band (top, middle or bottom), plus noise.
cv::Mat pattern(int label, uint64_t seed) {
  cv::Mat m(32, 32, CV_8UC1);
  cv::RNG(seed).fill(m, cv::RNG::UNIFORM, 0, 80);
  m.rowRange(label * 10, label * 10 + 10) += cv::Scalar(150);
  return m;
}

/// Feeds `epochs` epochs (train 12, val 6 scans each) and a test phase of 6 scans.
void feed(Trainer& t, int epochs, int first_epoch = 0, bool test = true) {
  for (int e = first_epoch; e < epochs; ++e) {
    for (int i = 0; i < 12; ++i)
      t.add(Phase::Train, e, pattern(i % 3, 1000 + static_cast<uint64_t>(i)), i % 3, {}, "train" + std::to_string(i), i);
    t.end_phase(Phase::Train, e);
    for (int i = 0; i < 6; ++i)
      t.add(Phase::Val, e, pattern(i % 3, 2000 + static_cast<uint64_t>(i)), i % 3, {}, "val" + std::to_string(i), 100 + i);
    t.end_phase(Phase::Val, e);
  }
  if (!test) return;
  for (int i = 0; i < 6; ++i)
    t.add(Phase::Test, epochs - 1, pattern(i % 3, 3000 + static_cast<uint64_t>(i)), i % 3, {}, "test,\"" + std::to_string(i),
          200 + i);
  t.end_phase(Phase::Test, epochs - 1);
}

TrainConfig small_config(const std::string& dir, int epochs) {
  TrainConfig c;
  c.architecture = "resnet34";
  c.classes = {"top", "middle", "bottom"};
  c.output_dir = dir;
  c.batch_size = 4;
  c.schedule.lr = 0.001;
  c.schedule.lr_end = 0.0001;
  c.schedule.epochs = epochs;
  c.threads = 1;  // bit-reproducible on the CPU
  c.seed = 7;
  c.input.mean = {0.5f};
  c.input.std = {0.25f};
  return c;
}

bool same_weights(const std::string& a, const std::string& b) {
  const auto da = cxr::models::read_state_dict(a), db = cxr::models::read_state_dict(b);
  if (da.size() != db.size()) return false;
  for (const auto& item : da)
    if (!torch::equal(item.value(), db[item.key()])) return false;
  return true;
}

}  // namespace

TEST_CASE("train: cosine and step schedules give torch's learning rates") {
  // torch 1.13: CosineAnnealingLR(Adam(lr=0.01), T_max=5, eta_min=0.001), lr before each step().
  const std::vector<double> torch_cosine{0.01, 0.009140576474687266, 0.006890576474687264, 0.004109423525312737,
                                         0.0018594235253127371, 0.001, 0.0018594235253127367, 0.004109423525312739,
                                         0.006890576474687268, 0.00914057647468727, 0.010000000000000005,
                                         0.00914057647468727, 0.006890576474687266};
  ScheduleParams p{Scheduler::Cosine, 0.01, 0.001, 5};
  for (int e = 0; e < static_cast<int>(torch_cosine.size()); ++e) {
    INFO("epoch " << e);
    CHECK(learning_rate(p, e) == Approx(torch_cosine[static_cast<size_t>(e)]).epsilon(1e-13).margin(0));
    if (e <= 5) CHECK(learning_rate(p, e) == Approx(cosine_closed_form(0.01, 0.001, e, 5)).epsilon(1e-12));
  }
  // StepLR(SGD(lr=0.1), step_size=3, gamma=0.1).
  const std::vector<double> torch_step{0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001};
  ScheduleParams s{Scheduler::Step, 0.1, 0, 0, 3, 0.1};
  for (int e = 0; e < 8; ++e) CHECK(learning_rate(s, e) == Approx(torch_step[static_cast<size_t>(e)]).epsilon(1e-13));
  CHECK(learning_rate(ScheduleParams{Scheduler::None, 0.02}, 9) == 0.02);
  CHECK_THROWS_AS(learning_rate(ScheduleParams{Scheduler::Cosine, 0.01, 0.001, 0}, 1), cxr::InvalidArgument);
  CHECK_THROWS_AS(scheduler_from_string("linear"), cxr::InvalidArgument);
}

TEST_CASE("train: a network overfits a tiny set and every parameter gets a gradient") {
  torch::manual_seed(3);
  at::set_num_threads(1);
  auto model = cxr::models::make_classifier("resnet34", 3);
  torch::Tensor x = torch::zeros({9, 3, 32, 32});
  std::vector<int64_t> y;
  for (int i = 0; i < 9; ++i) {
    const cv::Mat m = pattern(i % 3, static_cast<uint64_t>(i));
    cv::Mat f;
    m.convertTo(f, CV_32F, 1.0 / 255, -0.5);
    for (int c = 0; c < 3; ++c) x[i][c].copy_(torch::from_blob(f.data, {32, 32}).clone());
    y.push_back(i % 3);
  }
  torch::Tensor targets = torch::tensor(y);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3));
  LossSpec loss;
  const double first = train_step(*model, opt, x, targets, loss).loss;
  for (const auto& p : model->named_parameters()) {
    INFO(p.key());
    REQUIRE(p.value().grad().defined());
    CHECK(p.value().grad().abs().sum().item<double>() > 0);
  }
  double last = first;
  for (int i = 0; i < 40; ++i) last = train_step(*model, opt, x, targets, loss).loss;
  INFO("first " << first << " last " << last);
  CHECK(last < 0.1 * first);
  // evaluate() runs in eval mode without gradients: BatchNorm statistics stay, results repeat.
  const EvalResult r = evaluate(*model, x, targets, loss);
  CHECK_FALSE(r.logits.requires_grad());
  CHECK_FALSE(model->is_training());
  REQUIRE(r.loss);
  CHECK(std::isfinite(*r.loss));
  CHECK(torch::equal(evaluate(*model, x, std::nullopt, loss).logits, r.logits));
  CHECK(probabilities(r.logits, false).sum(1).allclose(torch::ones({9})));
}

TEST_CASE("train: run files are replaced atomically") {
  cxrtest::TempDir t;
  const std::string f = t / "a.json";
  write_file_atomic(f, "one");
  CHECK(read_file(f) == "one");
  write_file_atomic(f, "two, longer");
  CHECK(read_file(f) == "two, longer");
  CHECK_FALSE(fs::exists(f + ".part"));
  // A failed write leaves the old file as it was.
  fs::create_directories(t / "dir.part");
  CHECK_THROWS_AS(write_file_atomic(t / "dir", "x"), cxr::IoError);
  CHECK_THROWS_AS(write_file_atomic(t / "missing/b.json", "x"), cxr::IoError);
  CHECK(read_file(f) == "two, longer");
  CHECK_THROWS_AS(read_file(t / "nothing"), cxr::IoError);
}

TEST_CASE("train: the trainer writes a run directory that loads back") {
  cxrtest::TempDir t;
  Trainer trainer(small_config(t / "run", 2));
  int steps = 0, epochs = 0;
  trainer.on_step = [&](const StepProgress& p) { steps++; CHECK(std::isfinite(p.loss)); };
  trainer.on_epoch = [&](const EpochRow& r) {
    epochs++;
    CHECK(r.has_val);
    // The train phase's time split: every part measured, together the phase's wall time.
    const auto& p = r.profile;
    CHECK(p.forward > 0);
    CHECK(p.backward > 0);
    CHECK(p.optimizer > 0);
    CHECK(p.input > 0);
    CHECK(p.waiting >= 0);
    CHECK(p.input + p.forward + p.backward + p.optimizer + p.waiting == Approx(r.train_seconds).epsilon(1e-6));
    CHECK(r.train_seconds <= r.seconds);
  };
  feed(trainer, 2);
  trainer.scan_error();
  trainer.finish();
  CHECK(steps == 6);  // 12 scans / batch 4, two epochs
  CHECK(epochs == 2);
  for (const char* f : {"model.toml", "best.pt", "last.pt", "last.opt.pt", "metrics.jsonl", "summary.json",
                        "test_predictions.csv"})
    CHECK(fs::exists(t / ("run/" + std::string(f))));
  const cxr::models::ModelCard card = cxr::models::load_card(t / "run/model.toml");
  CHECK(card.architecture == "resnet34");
  CHECK(card.classes.size() == 3);
  CHECK(card.input.height == 32);
  CHECK(card.input.mean == std::vector<float>{0.5f});
  auto model = cxr::models::make_classifier("resnet34", 3);
  cxr::models::load_weights(*model, card.weights);
  const std::string metrics = read_file(t / "run/metrics.jsonl");
  CHECK(std::count(metrics.begin(), metrics.end(), '\n') == 2);
  CHECK(metrics.find("\"val_f1\":") != std::string::npos);
  CHECK(metrics.find("\"train_profile\":{\"input\":") != std::string::npos);
  const std::string summary = read_file(t / "run/summary.json");
  CHECK(summary.find("\"confusion\":[[") != std::string::npos);
  CHECK(summary.find("\"scan_errors\":1") != std::string::npos);
  CHECK(trainer.test_report().n == 6);
  const std::string csv = read_file(t / "run/test_predictions.csv");
  CHECK(csv.rfind("path,index,truth,predicted,prob_top,prob_middle,prob_bottom\n", 0) == 0);
  CHECK(csv.find("\"test,\"\"0\",200,top,") != std::string::npos);  // quoted path
}

TEST_CASE("train: a resumed run reaches the weights of an uninterrupted one") {
  cxrtest::TempDir t;
  {
    Trainer full(small_config(t / "full", 3));
    feed(full, 3);
    full.finish();
  }
  {
    // Interrupted after two epochs (the stream stops; nothing is finished).
    Trainer part(small_config(t / "part", 3));
    feed(part, 2, 0, false);
  }
  CHECK_FALSE(same_weights(t / "full/last.pt", t / "part/last.pt"));
  {
    // A metrics row that is not JSON stops the resume, naming the file and line.
    fs::copy(t / "part", t / "broken", fs::copy_options::recursive);
    std::ofstream(t / "broken/metrics.jsonl", std::ios::app) << "{\"epoch\": 1, \"train_loss\"\n";
    TrainConfig b = small_config(t / "broken", 3);
    b.resume = true;
    CHECK_THROWS_WITH(Trainer(b), Catch::Contains("metrics.jsonl:3") && Catch::Contains("invalid JSON"));
  }
  TrainConfig c = small_config(t / "part", 3);
  c.resume = true;
  Trainer resumed(c);
  CHECK(resumed.epochs_done() == 2);
  // The stream replays every epoch; the done ones are ignored.
  CHECK_FALSE(resumed.add(Phase::Train, 0, pattern(0, 1), 0, {}, "x", 0));
  feed(resumed, 3, 0);
  resumed.finish();
  CHECK(same_weights(t / "full/last.pt", t / "part/last.pt"));
  CHECK(same_weights(t / "full/best.pt", t / "part/best.pt"));
  CHECK(read_file(t / "full/test_predictions.csv") == read_file(t / "part/test_predictions.csv"));
  const std::string metrics = read_file(t / "part/metrics.jsonl");
  CHECK(std::count(metrics.begin(), metrics.end(), '\n') == 3);
}

TEST_CASE("train: bad settings are errors naming the setting") {
  cxrtest::TempDir t;
  TrainConfig c = small_config(t / "run", 2);
  c.architecture = "vgg16";
  CHECK_THROWS_AS(Trainer(c), cxr::InvalidArgument);
  c = small_config(t / "run", 2);
  c.class_weights = {1, 2};
  CHECK_THROWS_WITH(Trainer(c), Catch::Contains("class-weights"));
  c = small_config(t / "run", 2);
  c.pos_weight = {1, 2, 3};
  CHECK_THROWS_WITH(Trainer(c), Catch::Contains("pos-weight"));
  c = small_config(t / "run", 2);
  c.schedule.kind = cxr::train::Scheduler::Cosine;
  c.schedule.epochs = 0;  // a cosine schedule without epochs fails before anything is written
  CHECK_THROWS_WITH(Trainer(c), Catch::Contains("needs the number of epochs"));
  CHECK_FALSE(fs::exists(t / "run/metrics.jsonl"));
  c = small_config(t / "run", 2);
  Trainer ok(c);
  CHECK_THROWS_AS(ok.add(Phase::Train, 0, pattern(0, 1), 5, {}, "x", 0), cxr::InvalidArgument);
  ok.add(Phase::Train, 0, pattern(0, 1), 0, {}, "x", 0);
  CHECK_THROWS_WITH(ok.add(Phase::Train, 0, cv::Mat(20, 32, CV_8UC1, cv::Scalar(0)), 0, {}, "odd.png", 1),
                    Catch::Contains("odd.png") && Catch::Contains("input-size"));
}

TEST_CASE("train: a pretrained, frozen backbone stays; the head learns; scans are resized to input-size") {
  cxrtest::TempDir t;
  torch::manual_seed(11);
  auto donor = cxr::models::make_classifier("resnet34", 5);  // another head: only the backbone transfers
  cxr::models::save_weights(*donor, t / "donor.pt");
  TrainConfig c = small_config(t / "run", 1);
  c.pretrained = t / "donor.pt";
  c.freeze_backbone = true;
  c.fixed_size = true;
  c.input.height = c.input.width = 24;
  Trainer trainer(c);
  feed(trainer, 1);
  trainer.finish();
  const auto donor_sd = cxr::models::read_state_dict(t / "donor.pt");
  const auto trained = cxr::models::read_state_dict(t / "run/last.pt");
  auto model = cxr::models::make_classifier("resnet34", 3);
  int backbone = 0;
  for (const auto& p : model->named_parameters()) {
    INFO(p.key());
    if (p.key().rfind("fc.", 0) == 0) continue;
    CHECK(torch::equal(donor_sd[p.key()], trained[p.key()]));
    backbone++;
  }
  CHECK(backbone > 100);
  CHECK(cxr::models::load_card(t / "run/model.toml").input.height == 24);
}

TEST_CASE("train: multilabel runs use BCE with auto pos-weight and report per-class F1 and AUROC") {
  cxrtest::TempDir t;
  TrainConfig c = small_config(t / "run", 1);
  c.task = cxr::models::Task::Multilabel;
  c.classes = {"upper", "lower"};
  c.pos_weight_auto = true;
  c.class_counts = {10, 5};
  c.dataset_size = 20;
  Trainer trainer(c);
  auto labels = [](int i) { return std::vector<uint8_t>{static_cast<uint8_t>(i % 2), static_cast<uint8_t>(i % 3 == 0)}; };
  for (int i = 0; i < 8; ++i) trainer.add(Phase::Train, 0, pattern(i % 3, 50 + i), -1, labels(i), "t", i);
  for (int i = 0; i < 6; ++i) trainer.add(Phase::Val, 0, pattern(i % 3, 60 + i), -1, labels(i), "v", i);
  for (int i = 0; i < 6; ++i) trainer.add(Phase::Test, 0, pattern(i % 3, 70 + i), -1, labels(i), "x", i);
  // Unlabelled scans of a multilabel stream are ignored; a wrong length is an error.
  CHECK_FALSE(trainer.add(Phase::Test, 0, pattern(0, 1), -1, {}, "none", 9));
  CHECK_THROWS_AS(trainer.add(Phase::Test, 0, pattern(0, 1), -1, {1, 0, 1}, "three", 9), cxr::InvalidArgument);
  trainer.finish();
  CHECK(trainer.config().pos_weight == std::vector<float>{1.0f, 3.0f});  // (20 - 10) / 10, (20 - 5) / 5
  const std::string row = read_file(t / "run/metrics.jsonl");
  CHECK(row.find("\"val_class_f1\":[") != std::string::npos);
  CHECK(row.find("\"val_auroc\":[") != std::string::npos);
  const std::string summary = read_file(t / "run/summary.json");
  CHECK(summary.find("\"class_confusion\":[[[") != std::string::npos);
  CHECK(summary.find("\"macro_auroc\":") != std::string::npos);
  CHECK(trainer.test_report().n == 6);
  CHECK(trainer.test_report().multilabel);
  CHECK(read_file(t / "run/test_predictions.csv").find("x,0,lower,") != std::string::npos);
  CHECK(read_file(t / "run/test_predictions.csv").find("x,3,upper|lower,") != std::string::npos);
  CHECK(cxr::models::load_card(t / "run/model.toml").thresholds == std::vector<float>{0.5f, 0.5f});
}
