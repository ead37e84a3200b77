// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/card.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cxr/error.hpp"
#include "cxr/util/text.hpp"

namespace cxr::models {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kTasks{"multiclass", "multilabel"};

using util::join;

/// Validation with file:line in every message.
class CardReader {
 public:
  explicit CardReader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const toml::source_region& where, const std::string& what) const {
    std::ostringstream os;
    os << (path_.empty() ? "<card>" : path_);
    if (where.begin.line) os << ":" << where.begin.line;
    os << ": " << what;
    throw ConfigError(os.str());
  }

  const toml::table& table(const toml::table& root, const std::string& name, bool required) const {
    static const toml::table empty;
    const toml::node* n = root.get(name);
    if (!n) {
      if (required) fail(root.source(), "missing table [" + name + "]");
      return empty;
    }
    if (!n->is_table()) fail(n->source(), "[" + name + "] must be a table");
    return *n->as_table();
  }

  void only_keys(const toml::table& t, const std::string& where, const std::vector<std::string>& allowed) const {
    for (const auto& [k, v] : t) {
      bool ok = false;
      for (const auto& a : allowed) ok = ok || k.str() == a;
      if (!ok) fail(v.source(), "unknown key '" + std::string(k.str()) + "' in " + where + " (valid: " + join(allowed) + ")");
    }
  }

  const toml::node* get(const toml::table& t, const std::string& section, const std::string& key, bool required) const {
    const toml::node* n = t.get(key);
    if (!n && required) fail(t.source(), "[" + section + "] needs '" + key + "'");
    return n;
  }

  std::string string(const toml::node& n, const std::string& what) const {
    auto v = n.value<std::string>();
    if (!v || !n.is_string()) fail(n.source(), what + " must be a string");
    return *v;
  }

  std::string choice(const toml::node& n, const std::string& what, const std::vector<std::string>& valid) const {
    const std::string s = string(n, what);
    for (const auto& c : valid) {
      if (s == c) return s;
    }
    fail(n.source(), what + " = \"" + s + "\" is not one of: " + join(valid));
  }

  double number(const toml::node& n, const std::string& what) const {
    if (n.is_integer()) return static_cast<double>(*n.value<int64_t>());
    if (n.is_floating_point()) return *n.value<double>();
    fail(n.source(), what + " must be a number");
  }

  /// A number or an array of numbers.
  std::vector<float> numbers(const toml::node& n, const std::string& what) const {
    std::vector<float> r;
    if (const auto* a = n.as_array()) {
      if (a->empty()) fail(n.source(), what + " must not be empty");
      for (const auto& x : *a) r.push_back(static_cast<float>(number(x, what)));
    } else {
      r.push_back(static_cast<float>(number(n, what)));
    }
    return r;
  }

  std::vector<std::string> strings(const toml::node& n, const std::string& what) const {
    const auto* a = n.as_array();
    if (!a) fail(n.source(), what + " must be an array of strings");
    std::vector<std::string> r;
    for (const auto& x : *a) r.push_back(string(x, what + " entries"));
    return r;
  }

  int64_t integer(const toml::node& n, const std::string& what, int64_t lo, int64_t hi) const {
    if (!n.is_integer()) fail(n.source(), what + " must be an integer");
    const int64_t v = *n.value<int64_t>();
    if (v < lo || v > hi) fail(n.source(), what + " = " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }

 private:
  std::string path_;
};

std::vector<std::string> gradcam_layers(const std::string& arch) {
  if (arch == "resnet34") return {"layer1", "layer2", "layer3", "layer4"};
  int n = arch == "mobilenet_v3_large" ? 17 : arch == "efficientnet_b1" ? 9 : 0;
  std::vector<std::string> r{"features"};
  for (int k = 0; k < n; ++k) r.push_back("features." + std::to_string(k));
  return r;
}

}  // namespace


const std::vector<std::string>& card_architectures() {
  static const std::vector<std::string> names{"resnet34", "mobilenet_v3_large", "efficientnet_b1", "torchscript"};
  return names;
}

ModelCard parse_card(std::string_view text, const std::string& path) {
  CardReader r(path);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    r.fail(e.source(), "TOML syntax error: " + std::string(e.description()));
  }
  r.only_keys(root, "the card", {"model", "input", "gradcam", "about"});
  ModelCard card;
  card.path = path;

  const toml::table& model = r.table(root, "model", true);
  r.only_keys(model, "[model]", {"name", "architecture", "task", "classes", "weights", "thresholds"});
  card.architecture = r.choice(*r.get(model, "model", "architecture", true), "architecture", card_architectures());
  card.task = r.choice(*r.get(model, "model", "task", true), "task", kTasks) == "multilabel" ? Task::Multilabel
                                                                                              : Task::Multiclass;
  const toml::node& classes = *r.get(model, "model", "classes", true);
  card.classes = r.strings(classes, "classes");
  if (card.classes.empty()) r.fail(classes.source(), "classes must not be empty");
  std::set<std::string> seen;
  for (const auto& c : card.classes) {
    if (c.empty()) r.fail(classes.source(), "class names must not be empty");
    if (!seen.insert(c).second) r.fail(classes.source(), "class '" + c + "' appears twice");
  }
  if (card.task == Task::Multiclass && card.classes.size() < 2) {
    r.fail(classes.source(), "a multiclass model needs at least 2 classes");
  }
  const toml::node& weights = *r.get(model, "model", "weights", true);
  card.weights = r.string(weights, "weights");
  if (card.weights.empty()) r.fail(weights.source(), "weights must name a file");
  if (fs::path(card.weights).is_relative() && !path.empty()) {
    card.weights = (fs::path(path).parent_path() / card.weights).lexically_normal().string();
  }
  if (const toml::node* n = r.get(model, "model", "name", false)) {
    card.name = r.string(*n, "name");
  } else {
    card.name = path.empty() ? card.architecture : fs::path(path).stem().string();
  }
  if (const toml::node* n = r.get(model, "model", "thresholds", false)) {
    if (card.task != Task::Multilabel) r.fail(n->source(), "thresholds apply to multilabel models only");
    card.thresholds = r.numbers(*n, "thresholds");
    if (card.thresholds.size() == 1) card.thresholds.assign(card.classes.size(), card.thresholds[0]);
    if (card.thresholds.size() != card.classes.size()) {
      r.fail(n->source(), "thresholds has " + std::to_string(card.thresholds.size()) + " values for " +
                              std::to_string(card.classes.size()) + " classes");
    }
    for (float t : card.thresholds) {
      if (!(t > 0.0f && t < 1.0f)) r.fail(n->source(), "thresholds must lie strictly between 0 and 1");
    }
  } else if (card.task == Task::Multilabel) {
    card.thresholds.assign(card.classes.size(), 0.5f);
  }

  const toml::table& input = r.table(root, "input", true);
  r.only_keys(input, "[input]", {"size", "channels", "mean", "std"});
  const toml::node& size = *r.get(input, "input", "size", true);
  const auto* sa = size.as_array();
  if (!sa || sa->size() != 2) r.fail(size.source(), "size must be [height, width]");
  card.input.height = static_cast<int>(r.integer(*sa->get(0), "size height", 8, 8192));
  card.input.width = static_cast<int>(r.integer(*sa->get(1), "size width", 8, 8192));
  if (const toml::node* n = r.get(input, "input", "channels", false)) {
    card.input.channels = static_cast<int>(r.integer(*n, "channels", 1, 3));
    if (card.input.channels == 2) r.fail(n->source(), "channels must be 1 or 3");
  }
  for (const char* key : {"mean", "std"}) {
    const toml::node& n = *r.get(input, "input", key, true);
    auto v = r.numbers(n, key);
    if (v.size() != 1 && static_cast<int>(v.size()) != card.input.channels) {
      r.fail(n.source(), std::string(key) + " has " + std::to_string(v.size()) + " values for " +
                             std::to_string(card.input.channels) + " channels (give 1 or " +
                             std::to_string(card.input.channels) + ")");
    }
    if (std::string(key) == "std") {
      for (float x : v) {
        if (!(x > 0.0f)) r.fail(n.source(), "std must be > 0");
      }
      card.input.std = v;
    } else {
      card.input.mean = v;
    }
  }

  const toml::table& gradcam = r.table(root, "gradcam", false);
  r.only_keys(gradcam, "[gradcam]", {"target-layer"});
  if (const toml::node* n = r.get(gradcam, "gradcam", "target-layer", false)) {
    if (card.architecture == "torchscript") {
      card.gradcam_layer = r.string(*n, "target-layer");
    } else {
      card.gradcam_layer = r.choice(*n, "target-layer", gradcam_layers(card.architecture));
    }
  } else if (card.architecture == "resnet34") {
    card.gradcam_layer = "layer4";
  } else if (card.architecture != "torchscript") {
    card.gradcam_layer = "features";
  }

  // [about]: free text and numbers, kept in the file's order.
  const toml::table& about = r.table(root, "about", false);
  std::vector<std::pair<toml::source_position, std::pair<std::string, std::string>>> entries;
  for (const auto& [k, v] : about) {
    std::string text;
    if (v.is_string()) {
      text = *v.value<std::string>();
    } else if (v.is_integer()) {
      text = std::to_string(*v.value<int64_t>());
    } else if (v.is_floating_point()) {
      std::ostringstream s;
      s << *v.value<double>();
      text = s.str();
    } else if (v.is_boolean()) {
      text = *v.value<bool>() ? "true" : "false";
    } else {
      r.fail(v.source(), "[about] " + std::string(k.str()) + " must be a string, a number or a boolean");
    }
    entries.push_back({v.source().begin, {std::string(k.str()), text}});
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first.line != b.first.line ? a.first.line < b.first.line : a.first.column < b.first.column;
  });
  for (auto& e : entries) card.about.push_back(std::move(e.second));
  return card;
}

ModelCard load_card(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError("cannot open model card " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_card(ss.str(), path);
}

void save_card(const ModelCard& card, const std::string& path) {
  auto floats = [](const std::vector<float>& v) {
    toml::array a;
    for (float x : v) a.push_back(static_cast<double>(x));
    return a;
  };
  toml::array classes;
  for (const auto& c : card.classes) classes.push_back(c);
  std::string weights = card.weights;
  const fs::path dir = fs::absolute(fs::path(path)).parent_path();
  const fs::path w = fs::absolute(fs::path(card.weights)).lexically_normal();
  const fs::path rel = w.lexically_relative(dir);
  if (!rel.empty() && *rel.begin() != "..") weights = rel.string();
  toml::table model{{"name", card.name},       {"architecture", card.architecture},
                    {"task", to_string(card.task)}, {"classes", classes},
                    {"weights", weights}};
  if (card.task == Task::Multilabel) model.insert("thresholds", floats(card.thresholds));
  toml::table input{{"size", toml::array{card.input.height, card.input.width}},
                    {"channels", card.input.channels},
                    {"mean", floats(card.input.mean)},
                    {"std", floats(card.input.std)}};
  toml::table root{{"model", model}, {"input", input}};
  if (!card.gradcam_layer.empty()) root.insert("gradcam", toml::table{{"target-layer", card.gradcam_layer}});
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError("cannot write model card " + path + ": " + std::strerror(errno));
  out << "# gst-cxr model card (docs/model-card.md)\n" << root << "\n";
  if (!card.about.empty()) {
    // In the card's own order (toml++ would sort a table's keys), as strings.
    out << "\n[about]\n";
    for (const auto& [k, v] : card.about) {
      const bool bare = !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      });
      if (bare)
        out << k;
      else
        out << toml::value<std::string>(k);
      out << " = " << toml::value<std::string>(v) << "\n";
    }
  }
  if (!out) throw IoError("cannot write model card " + path);
}

}  // namespace cxr::models
