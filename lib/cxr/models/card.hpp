// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Model cards: the TOML file beside a weights file that says how to serve and explain it.
///
/// ```toml
/// [model]
/// name = "covid-effb1"              # optional; default: the card's file name without .toml
/// architecture = "efficientnet_b1"  # resnet34 | mobilenet_v3_large | efficientnet_b1 | torchscript
/// task = "multiclass"               # multiclass | multilabel
/// classes = ["normal", "covid", "viral"]
/// weights = "covid-effb1.pth"       # relative to the card; a torch.save state dict, or a
///                                   # torch.jit.save file for architecture = "torchscript"
/// thresholds = [0.5, 0.5, 0.5]      # multilabel only: one per class, or one number for all
///                                   # (default 0.5), applied to sigmoid probabilities
///
/// [input]
/// size = [255, 255]                 # height, width the scan is scaled to
/// channels = 3                      # grey replicated to 3 channels, as ImageFolder's RGB load
/// mean = [0.4955]                   # one value, or one per channel; applied to pixel / 255
/// std = [0.2892]                    # (pixel / 65535 for 16-bit scans)
///
/// [gradcam]
/// target-layer = "layer4"           # optional; default: the last convolutional block
/// ```
///
/// Unknown tables and keys are errors (a typo must not silently fall back to a default). Every
/// error names the card as file:line and, for choices, lists the valid ones.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cxr/task.hpp"

namespace cxr::models {

using cxr::Task;  // Multiclass or Multilabel: never None on a card
using cxr::to_string;

/// How a scan becomes the network's input tensor.
struct InputSpec {
  int height = 224;
  int width = 224;
  int channels = 3;
  std::vector<float> mean{0.5f};  ///< one value, or one per channel
  std::vector<float> std{0.5f};   ///< one value, or one per channel

  /// mean / std of channel c (a single value applies to every channel).
  float mean_of(int c) const { return mean.size() == 1 ? mean[0] : mean[static_cast<size_t>(c)]; }
  float std_of(int c) const { return std.size() == 1 ? std[0] : std[static_cast<size_t>(c)]; }
};

struct ModelCard {
  std::string path;          ///< the card file (empty for cards parsed from a string)
  std::string name;          ///< model id carried by results
  std::string architecture;  ///< one of card_architectures()
  Task task = Task::Multiclass;
  std::vector<std::string> classes;
  std::string weights;               ///< resolved against the card's directory
  std::vector<float> thresholds;     ///< multilabel: one per class; empty for multiclass
  InputSpec input;
  std::string gradcam_layer;         ///< empty: the architecture's last convolutional block
  /// [about]: where the model comes from (data, recipe, split, figures), as the card's own key
  /// order and text; for people and `cxr inspect`, never read by inference.
  std::vector<std::pair<std::string, std::string>> about;
};

/// Values `architecture` may take.
const std::vector<std::string>& card_architectures();

/// Reads and validates a card. Throws cxr::IoError when the file cannot be read and
/// cxr::ConfigError ("file:line: what") when it is wrong.
ModelCard load_card(const std::string& path);

/// Parses card text; `path` is used in messages and to resolve `weights` (its directory).
ModelCard parse_card(std::string_view text, const std::string& path);

/// Writes a card that load_card() reads back equal (weights written relative to the card's
/// directory when it lies inside it).
void save_card(const ModelCard& card, const std::string& path);

}  // namespace cxr::models
