// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr inspect: what a model card or a weights file holds.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/models/card.hpp"
#include "cxr_cli.hpp"
#include "cxr_config.h"

#if CXR_HAVE_TORCH
#include "cxr/models/predictor.hpp"
#include "cxr/models/weights.hpp"
#endif

const char* cxr_help_inspect =
    "show what a model card (.toml) or a weights file (.pt/.pth) holds\n"
    "usage: cxr inspect CARD.toml | WEIGHTS.pth [--all]\n"
    "  A card: architecture, task, classes, input size, normalisation, thresholds, Grad-CAM layer,\n"
    "  the weights file and a summary of its tensors (needs LibTorch).\n"
    "  A weights file (torch.save state dict): each key with its shape and dtype, and the\n"
    "  parameter count (needs LibTorch).\n"
    "options:\n"
    "  --all                  list every tensor (default: the first and last 10 of long lists)\n"
    "  --init-weights [SEED]  write freshly initialised weights (torchvision's init, seeded;\n"
    "                         default seed 0) to the card's weights file: a model to train, or a\n"
    "                         stand-in for tests and demos (needs LibTorch)\n"
    "Exit status: 0 shown, 2 usage error or an unreadable / invalid file.";

namespace {

std::string floats(const std::vector<float>& xs) {
  std::string s;
  char buf[32];
  for (float x : xs) {
    std::snprintf(buf, sizeof buf, "%g", x);
    s += (s.empty() ? "" : ", ") + std::string(buf);
  }
  return "[" + s + "]";
}

#if CXR_HAVE_TORCH
std::string shape_of(const torch::Tensor& t) {
  std::string s;
  for (int64_t d : t.sizes()) s += (s.empty() ? "" : ", ") + std::to_string(d);
  return "[" + s + "]";
}

/// Prints the tensors of a state dict; returns nothing, throws WeightsError on a bad file.
void print_weights(const std::string& path, bool all, const char* indent) {
  const cxr::models::StateDict dict = cxr::models::read_state_dict(path);
  int64_t params = 0, buffers = 0;
  for (const auto& item : dict) {
    // BatchNorm statistics and counters are buffers, not parameters; torchvision counts only weights and biases.
    const std::string& k = item.key();
    const bool buffer = k.find("running_") != std::string::npos || k.find("num_batches_tracked") != std::string::npos;
    (buffer ? buffers : params) += item.value().numel();
  }
  std::printf("%stensors:    %zu (%lld parameters, %lld buffer values)\n", indent, dict.size(), (long long)params,
              (long long)buffers);
  const size_t n = dict.size();
  for (size_t i = 0; i < n; ++i) {
    if (!all && n > 20 && i == 10) {
      std::printf("%s  ... %zu more (--all lists them)\n", indent, n - 20);
      i = n - 10;
    }
    const auto& item = dict[i];
    std::printf("%s  %-52s %-20s %s\n", indent, item.key().c_str(), shape_of(item.value()).c_str(),
                std::string(c10::toString(item.value().scalar_type())).c_str());
  }
}
#endif

int inspect_card(const std::string& path, bool all) {
  const cxr::models::ModelCard c = cxr::models::load_card(path);
  std::printf("model card:   %s\n", path.c_str());
  std::printf("name:         %s\n", c.name.c_str());
  std::printf("architecture: %s\n", c.architecture.c_str());
  std::printf("task:         %s\n", cxr::models::to_string(c.task));
  std::string classes;
  for (const auto& k : c.classes) classes += (classes.empty() ? "" : ", ") + k;
  std::printf("classes:      %zu (%s)\n", c.classes.size(), classes.c_str());
  std::printf("input:        %d x %d (height x width), %d channel%s\n", c.input.height, c.input.width,
              c.input.channels, c.input.channels == 1 ? "" : "s");
  std::printf("normalise:    mean %s, std %s\n", floats(c.input.mean).c_str(), floats(c.input.std).c_str());
  if (c.task == cxr::models::Task::Multilabel) std::printf("thresholds:   %s\n", floats(c.thresholds).c_str());
  std::printf("grad-cam:     %s\n", c.gradcam_layer.empty() ? "(the last convolutional block)" : c.gradcam_layer.c_str());
  const bool exists = std::filesystem::exists(c.weights);
  std::printf("weights:      %s%s\n", c.weights.c_str(), exists ? "" : "  (missing)");
  if (!c.about.empty()) {
    std::printf("about:\n");
    for (const auto& [k, v] : c.about) std::printf("  %-14s %s\n", (k + ":").c_str(), v.c_str());
  }
#if CXR_HAVE_TORCH
  if (exists && c.architecture != "torchscript") print_weights(c.weights, all, "  ");
#else
  (void)all;
  if (exists) std::printf("  (tensor summary needs a build with LibTorch)\n");
#endif
  return 0;
}

}  // namespace

int cxr_cmd_inspect(int argc, char** argv) {
  std::string path, seed_arg;
  bool all = false;
  [[maybe_unused]] unsigned long long seed = 0;
  CLI::App app;
  cxrtool::configure(app);
  app.add_option("path", path)->type_name("CARD.toml|WEIGHTS.pth");
  app.add_flag("--all", all);
  CLI::Option* init_weights = app.add_option("--init-weights", seed_arg)->type_name("SEED")->expected(0, 1);
  try {
    if (const auto status = cxrtool::parse(app, argc, argv, "inspect", cxr_help_inspect)) return *status;
    // The seed is optional: a word after --init-weights that is not a number is the file.
    if (!seed_arg.empty() && seed_arg[0] >= '0' && seed_arg[0] <= '9') {
      seed = std::strtoull(seed_arg.c_str(), nullptr, 10);
    } else if (!seed_arg.empty()) {
      if (!path.empty()) throw cxr::InvalidArgument("unexpected argument '" + seed_arg + "'");
      path = seed_arg;
    }
    cxrtool::reject_unknown(app);
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr inspect: %s\n", e.what());
    return 2;
  }
  const bool init = init_weights->count() > 0;
  if (path.empty()) {
    std::fprintf(stderr, "usage: cxr inspect CARD.toml | WEIGHTS.pth   (cxr inspect --help)\n");
    return 2;
  }
  try {
    const bool card = path.size() > 5 && path.compare(path.size() - 5, 5, ".toml") == 0;
    if (init) {
      if (!card) throw cxr::InvalidArgument("--init-weights needs a model card (.toml)");
#if CXR_HAVE_TORCH
      const cxr::models::ModelCard c = cxr::models::load_card(path);
      cxr::models::write_initial_weights(c, seed);
      std::printf("wrote %s (seed %llu)\n", c.weights.c_str(), seed);
      return 0;
#else
      throw cxr::InvalidArgument("--init-weights needs a build with LibTorch");
#endif
    }
    if (card) return inspect_card(path, all);
#if CXR_HAVE_TORCH
    std::printf("weights file: %s\n", path.c_str());
    print_weights(path, all, "");
    return 0;
#else
    throw cxr::InvalidArgument(path + ": reading weights files needs a build with LibTorch");
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cxr inspect: %s\n", e.what());
    return 2;
  }
}
