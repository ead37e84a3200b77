// SPDX-License-Identifier: LGPL-2.1-or-later
// Model cards: a good card, defaults, and bad cards whose errors name file:line and the choices.
#include "cxr_catch.hpp"
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "cxr/error.hpp"
#include "cxr/models/card.hpp"
#include "cxr/models/input.hpp"

using namespace cxr::models;
namespace fs = std::filesystem;

namespace {

const char* kGood = R"(# a card
[model]
name = "covid-b1"
architecture = "efficientnet_b1"
task = "multiclass"
classes = ["normal", "covid", "viral"]
weights = "w/covid.pth"

[input]
size = [255, 240]
channels = 3
mean = [0.485, 0.456, 0.406]
std = 0.25

[gradcam]
target-layer = "features.7"
)";

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto pos = s.find(from);
  REQUIRE(pos != std::string::npos);
  return s.replace(pos, from.size(), to);
}

std::string error_of(const std::string& text) {
  try {
    parse_card(text, "/cards/bad.toml");
  } catch (const cxr::ConfigError& e) {
    return e.what();
  }
  FAIL("card was accepted:\n" << text);
  return "";
}

}  // namespace

TEST_CASE("card: a good card", "[card]") {
  const ModelCard c = parse_card(kGood, "/cards/covid.toml");
  CHECK(c.name == "covid-b1");
  CHECK(c.architecture == "efficientnet_b1");
  CHECK(c.task == Task::Multiclass);
  CHECK(c.classes == std::vector<std::string>{"normal", "covid", "viral"});
  CHECK(c.weights == "/cards/w/covid.pth");
  CHECK(c.input.height == 255);
  CHECK(c.input.width == 240);
  CHECK(c.input.channels == 3);
  CHECK(c.input.mean_of(1) == Approx(0.456f));
  CHECK(c.input.std_of(2) == Approx(0.25f));
  CHECK(c.thresholds.empty());
  CHECK(c.gradcam_layer == "features.7");
}

TEST_CASE("card: defaults and multilabel thresholds", "[card]") {
  std::string text = replace(kGood, "name = \"covid-b1\"\n", "");
  text = replace(text, "task = \"multiclass\"", "task = \"multilabel\"\nthresholds = 0.3");
  text = replace(text, "[gradcam]\ntarget-layer = \"features.7\"\n", "");
  text = replace(text, "weights = \"w/covid.pth\"", "weights = \"/abs/covid.pth\"");
  const ModelCard c = parse_card(text, "/cards/nih7.toml");
  CHECK(c.name == "nih7");
  CHECK(c.task == Task::Multilabel);
  CHECK(c.thresholds == std::vector<float>{0.3f, 0.3f, 0.3f});
  CHECK(c.gradcam_layer == "features");
  CHECK(c.weights == "/abs/covid.pth");
  const ModelCard d = parse_card(replace(text, "thresholds = 0.3\n", ""), "x.toml");
  CHECK(d.thresholds == std::vector<float>{0.5f, 0.5f, 0.5f});
}

TEST_CASE("card: bad cards name file:line and the valid choices", "[card]") {
  struct Bad {
    std::string from, to, expect1, expect2;
  };
  const Bad cases[] = {
      {"\"efficientnet_b1\"", "\"efficientnet_b7\"", "/cards/bad.toml:4:",
       "resnet34, mobilenet_v3_large, efficientnet_b1, torchscript"},
      {"\"multiclass\"", "\"multi\"", "/cards/bad.toml:5:", "multiclass, multilabel"},
      {"size = [255, 240]", "size = [255]", "/cards/bad.toml:10:", "[height, width]"},
      {"size = [255, 240]", "size = [255, 0]", "/cards/bad.toml:10:", "out of range"},
      {"mean = [0.485, 0.456, 0.406]", "mean = [0.485, 0.456]", "/cards/bad.toml:12:", "2 values for 3 channels"},
      {"std = 0.25", "std = 0", "/cards/bad.toml:13:", "std must be > 0"},
      {"channels = 3", "chanels = 3", "/cards/bad.toml:11:", "unknown key 'chanels'"},
      {"task = \"multiclass\"", "task = \"multiclass\"\nthresholds = [0.5]", "/cards/bad.toml:6:", "multilabel models only"},
      {"classes = [\"normal\", \"covid\", \"viral\"]", "classes = [\"normal\", \"normal\"]", "/cards/bad.toml:6:",
       "appears twice"},
      {"target-layer = \"features.7\"", "target-layer = \"layer4\"", "/cards/bad.toml:16:", "features.8"},
      {"weights = \"w/covid.pth\"", "weights = 3", "/cards/bad.toml:7:", "weights must be a string"},
      {"classes = [\"normal\", \"covid\", \"viral\"]", "classes = [\"normal\", \"covid\"", "/cards/bad.toml:",
       "TOML syntax error"},
      {"[input]", "[inputs]", "/cards/bad.toml:9:", "valid: model, input, gradcam"},
  };
  for (const auto& b : cases) {
    INFO(b.from << " -> " << b.to);
    const std::string what = error_of(replace(kGood, b.from, b.to));
    CHECK_THAT(what, Catch::Contains(b.expect1));
    CHECK_THAT(what, Catch::Contains(b.expect2));
  }
  CHECK_THAT(error_of("[model]\narchitecture = \"resnet34\"\n"), Catch::Contains("needs 'task'"));
  CHECK_THROWS_AS(load_card("/nonexistent/card.toml"), cxr::IoError);
}

TEST_CASE("card: multilabel thresholds must fit the classes", "[card]") {
  std::string text = replace(kGood, "task = \"multiclass\"", "task = \"multilabel\"\nthresholds = [0.5, 0.2]");
  CHECK_THAT(error_of(text), Catch::Contains("bad.toml:6:") && Catch::Contains("2 values for 3 classes"));
  text = replace(kGood, "task = \"multiclass\"", "task = \"multilabel\"\nthresholds = [0.5, 0.2, 1.5]");
  CHECK_THAT(error_of(text), Catch::Contains("strictly between 0 and 1"));
}

TEST_CASE("card: save_card and load_card round trip", "[card]") {
  const fs::path dir = fs::temp_directory_path() / ("cxr-card-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ModelCard c = parse_card(kGood, (dir / "in.toml").string());
  c.task = Task::Multilabel;
  c.thresholds = {0.25f, 0.5f, 0.75f};
  save_card(c, (dir / "out.toml").string());
  const ModelCard d = load_card((dir / "out.toml").string());
  CHECK(d.name == c.name);
  CHECK(d.architecture == c.architecture);
  CHECK(d.task == c.task);
  CHECK(d.classes == c.classes);
  CHECK(d.weights == c.weights);
  CHECK(d.thresholds == c.thresholds);
  CHECK(d.input.height == c.input.height);
  CHECK(d.input.width == c.input.width);
  CHECK(d.input.mean == c.input.mean);
  CHECK(d.input.std == c.input.std);
  CHECK(d.gradcam_layer == c.gradcam_layer);
  std::ifstream f(dir / "out.toml");
  std::string text((std::istreambuf_iterator<char>(f)), {});
  CHECK_THAT(text, Catch::Contains("weights = 'w/covid.pth'") || Catch::Contains("weights = \"w/covid.pth\""));
  fs::remove_all(dir);
}

TEST_CASE("card: [about] keeps the model's provenance in the card's order, through save and load", "[card]") {
  const std::string text = std::string(kGood) + R"(
[about]
data = "Kermany training split, 5036 scans"
split-seed = 30
"test macro F1" = 0.812
fp16 = true
)";
  const ModelCard c = parse_card(text, "/cards/covid.toml");
  using P = std::pair<std::string, std::string>;
  CHECK(c.about == std::vector<P>{{"data", "Kermany training split, 5036 scans"}, {"split-seed", "30"},
                                  {"test macro F1", "0.812"}, {"fp16", "true"}});
  const fs::path dir = fs::temp_directory_path() / ("cxr-card-about-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  save_card(c, (dir / "out.toml").string());
  CHECK(load_card((dir / "out.toml").string()).about == c.about);
  fs::remove_all(dir);
  // Only plain values: an array or a table is an error naming the line.
  CHECK_THAT(error_of(std::string(kGood) + "\n[about]\nscores = [1, 2]\n"),
             Catch::Contains("bad.toml:") && Catch::Contains("[about] scores"));
}

TEST_CASE("card: input preparation (8 and 16 bit, ROI, channels)", "[card]") {
  InputSpec spec;
  spec.height = 3;
  spec.width = 4;
  spec.channels = 3;
  spec.mean = {0.5f, 0.25f, 0.0f};
  spec.std = {0.5f};
  cv::Mat big(10, 12, CV_8U, cv::Scalar(7));
  cv::Mat roi = big(cv::Rect(2, 3, 4, 3));  // already the input size: no scaling
  roi.at<uint8_t>(1, 2) = 255;
  cv::Mat in = prepare_input(roi, spec);
  REQUIRE(in.rows == 9);
  REQUIRE(in.cols == 4);
  CHECK(in.at<float>(0, 0) == Approx((7 / 255.0f - 0.5f) / 0.5f));
  CHECK(in.at<float>(1, 2) == Approx((1.0f - 0.5f) / 0.5f));
  CHECK(in.at<float>(3 + 1, 2) == Approx((1.0f - 0.25f) / 0.5f));
  CHECK(in.at<float>(6 + 1, 2) == Approx(2.0f));
  cv::Mat sixteen(3, 4, CV_16U, cv::Scalar(65535));
  CHECK(prepare_input(sixteen, spec).at<float>(0, 0) == Approx(1.0f));
  cv::Mat scaled = prepare_input(cv::Mat(30, 40, CV_8U, cv::Scalar(128)), spec);
  CHECK(scaled.at<float>(2, 3) == Approx((128 / 255.0f - 0.5f) / 0.5f));
  CHECK_THROWS_AS(prepare_input(cv::Mat(3, 4, CV_8UC3), spec), cxr::InvalidArgument);
  CHECK_THROWS_AS(prepare_input(cv::Mat(), spec), cxr::InvalidArgument);
}
