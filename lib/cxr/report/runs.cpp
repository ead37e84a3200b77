// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/report/runs.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "cxr/error.hpp"
#include "cxr/util/csv.hpp"
#include "cxr/util/json.hpp"

namespace fs = std::filesystem;

namespace cxr::report {

namespace {

using nlohmann::json;
using util::json_get;
using util::json_number_or;
using util::json_numbers;
using util::json_string_or;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// JSON numbers as integers. The files come from outside, and converting a double beyond the
// integer's range (1e300, -inf) is undefined behaviour: those become `fallback`.
int to_int(double v, int fallback) {
  if (!(v >= static_cast<double>(std::numeric_limits<int>::min()) &&
        v <= static_cast<double>(std::numeric_limits<int>::max())))
    return fallback;
  return static_cast<int>(v);
}

int64_t to_int64(double v, int64_t fallback) {
  // 2^63 is exactly representable; every double below it converts.
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return fallback;
  return static_cast<int64_t>(v);
}

std::vector<std::vector<int64_t>> matrix(const json* j) {
  std::vector<std::vector<int64_t>> m;
  if (!j || !j->is_array()) return m;
  for (const json& row : *j) {
    std::vector<int64_t> r;
    for (double v : json_numbers(row)) r.push_back(to_int64(v, 0));
    m.push_back(std::move(r));
  }
  return m;
}

std::string format_number(double v) {
  if (!std::isfinite(v)) return "";
  return util::json_number(v);
}

using util::csv_field;

bool is_lr_name(const std::string& name) {
  // The property may be named with its element: "cxrtrain.learning-rate", "train.learning-rate".
  const std::string base = name.substr(name.find_last_of('.') == std::string::npos ? 0 : name.find_last_of('.') + 1);
  return base == "learning-rate" || base == "learning_rate" || base == "lr";
}

}  // namespace

std::string run_json(const RunMeta& meta) {
  util::JsonObject vars;
  for (const auto& [k, v] : meta.variables) vars.add(k, v);
  util::JsonObject o;
  o.add("name", meta.name).add("model", meta.model).add("dataset", meta.dataset).add("pipeline", meta.pipeline);
  o.add("param", meta.param).add("value", meta.value).add_raw("variables", vars.str());
  return o.str() + "\n";
}

RunInfo::RunInfo() : test_f1(kNaN), test_accuracy(kNaN), test_macro_auroc(kNaN) {}

double RunInfo::seconds_per_epoch() const {
  if (epochs_completed > 0 && train_seconds > 0) return train_seconds / epochs_completed;
  if (epochs.empty()) return kNaN;
  double s = 0;
  for (const auto& e : epochs) s += e.seconds;
  return s / static_cast<double>(epochs.size());
}

double RunInfo::learning_rate() const {
  if (is_lr_name(meta.param) && !meta.value.empty()) return std::strtod(meta.value.c_str(), nullptr);
  for (const auto& [k, v] : meta.variables)
    if (is_lr_name(k)) return std::strtod(v.c_str(), nullptr);
  return epochs.empty() ? kNaN : epochs.front().lr;
}

std::string architecture_label(const std::string& a) {
  if (a == "resnet34") return "ResNet-34";
  if (a == "mobilenet_v3_large") return "MobileNetV3-L";
  if (a == "efficientnet_b1") return "EfficientNet-B1";
  return a;
}

RunInfo load_run(const std::string& dir) {
  RunInfo r;
  r.dir = dir;
  const fs::path d(dir);
  const std::string metrics = (d / "metrics.jsonl").string(), summary = (d / "summary.json").string();
  const bool has_metrics = fs::exists(metrics);
  r.has_summary = fs::exists(summary);
  if (!has_metrics && !r.has_summary)
    throw IoError(dir + ": not a run directory (no metrics.jsonl or summary.json)");

  if (has_metrics) {
    std::istringstream in(read_text(metrics));
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const json j = util::parse_json(line, metrics + ":" + std::to_string(n) + " (row)");
      EpochMetrics e;
      e.epoch = to_int(json_number_or(j, "epoch", static_cast<double>(r.epochs.size())), static_cast<int>(r.epochs.size()));
      e.train_loss = json_number_or(j, "train_loss", kNaN);
      e.train_f1 = json_number_or(j, "train_f1", kNaN);
      e.train_accuracy = json_number_or(j, "train_accuracy", kNaN);
      e.val_loss = json_number_or(j, "val_loss", kNaN);
      e.val_f1 = json_number_or(j, "val_f1", kNaN);
      e.val_accuracy = json_number_or(j, "val_accuracy", kNaN);
      e.lr = json_number_or(j, "lr", kNaN);
      e.seconds = json_number_or(j, "seconds", 0);
      if (const json* b = json_get(j, "best")) e.best = b->is_boolean() && b->get<bool>();
      for (const char* k : {"val_class_f1", "train_class_f1"})
        if (const json* v = json_get(j, k); v && e.class_f1.empty()) e.class_f1 = json_numbers(*v);
      for (const char* k : {"val_auroc", "train_auroc"})
        if (const json* v = json_get(j, k); v && e.auroc.empty()) e.auroc = json_numbers(*v);
      r.epochs.push_back(std::move(e));
    }
  }

  if (r.has_summary) {
    const json s = util::parse_json(read_text(summary), summary);
    r.architecture = json_string_or(s, "architecture", "");
    r.task = json_string_or(s, "task", "");
    if (const json* c = json_get(s, "classes"); c && c->is_array())
      for (const json& v : *c) r.classes.push_back(v.is_string() ? v.get<std::string>() : std::string());
    r.best_epoch = to_int(json_number_or(s, "best_epoch", -1), -1);
    r.epochs_completed = to_int(json_number_or(s, "epochs_completed", static_cast<double>(r.epochs.size())),
                                static_cast<int>(r.epochs.size()));
    r.train_seconds = json_number_or(s, "train_seconds", json_number_or(s, "seconds", 0));
    if (const json* t = json_get(s, "test"); t && t->is_object()) {
      r.test_f1 = json_number_or(*t, "f1", kNaN);
      r.test_accuracy = json_number_or(*t, "accuracy", kNaN);
      r.test_macro_auroc = json_number_or(*t, "macro_auroc", kNaN);
      if (const json* v = json_get(*t, "class_f1")) r.test_class_f1 = json_numbers(*v);
      if (const json* v = json_get(*t, "auroc")) r.test_auroc = json_numbers(*v);
      r.confusion = matrix(json_get(*t, "confusion"));
      if (const json* cc = json_get(*t, "class_confusion"); cc && cc->is_array())
        for (const json& m : *cc) r.class_confusion.push_back(matrix(&m));
    }
  } else {
    r.epochs_completed = static_cast<int>(r.epochs.size());
    for (const auto& e : r.epochs) {
      r.train_seconds += e.seconds;
      if (e.best) r.best_epoch = e.epoch;
    }
  }

  // A run still training has a card but no summary yet: take the architecture from it.
  const std::string card = (d / "model.toml").string();
  if ((r.architecture.empty() || r.classes.empty()) && fs::exists(card)) {
    try {
      const toml::table t = toml::parse_file(card);
      if (r.architecture.empty()) r.architecture = t["architecture"].value_or(std::string());
      if (r.task.empty()) r.task = t["task"].value_or(std::string());
      if (r.classes.empty())
        if (const toml::array* a = t["classes"].as_array())
          for (const auto& v : *a) r.classes.push_back(v.value_or(std::string()));
    } catch (const toml::parse_error& e) {
      throw ConfigError(card + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
    }
  }
  if (r.task.empty() && !r.epochs.empty() && !r.epochs.front().auroc.empty()) r.task = "multilabel";
  if (r.task.empty()) r.task = "multiclass";

  const std::string meta = (d / "run.json").string();
  if (fs::exists(meta)) {
    const json m = util::parse_json(read_text(meta), meta);
    r.meta.name = json_string_or(m, "name", "");
    r.meta.model = json_string_or(m, "model", "");
    r.meta.dataset = json_string_or(m, "dataset", "");
    r.meta.pipeline = json_string_or(m, "pipeline", "");
    r.meta.param = json_string_or(m, "param", "");
    r.meta.value = json_string_or(m, "value", "");
    if (const json* v = json_get(m, "variables"); v && v->is_object())
      for (const auto& [k, val] : v->items())
        r.meta.variables[k] = val.is_number() ? util::json_number(val.get<double>())
                              : val.is_string() ? val.get<std::string>()
                                                : std::string();
  }
  if (r.meta.name.empty()) r.meta.name = fs::absolute(d).lexically_normal().filename().string();
  if (r.meta.name.empty()) r.meta.name = fs::absolute(d).lexically_normal().parent_path().filename().string();
  if (r.meta.model.empty()) r.meta.model = architecture_label(r.architecture.empty() ? "model" : r.architecture);
  if (r.meta.dataset.empty()) r.meta.dataset = "-";

  if (fs::exists(d / "tsne.csv")) r.tsne_csv = (d / "tsne.csv").string();
  if (fs::is_directory(d / "gradcam")) {
    for (const auto& entry : fs::directory_iterator(d / "gradcam"))
      if (entry.is_regular_file() && entry.path().extension() == ".png") r.gradcam_pngs.push_back(entry.path().string());
    std::sort(r.gradcam_pngs.begin(), r.gradcam_pngs.end());
  }
  return r;
}

std::string runs_csv(const std::vector<RunInfo>& runs) {
  std::string out =
      "name,dataset,model,param,value,learning_rate,test_f1,test_accuracy,test_macro_auroc,best_epoch,epochs,"
      "seconds_per_epoch,train_seconds,dir\n";
  for (const RunInfo& r : runs) {
    out += csv_field(r.meta.name) + "," + csv_field(r.meta.dataset) + "," + csv_field(r.meta.model) + "," +
           csv_field(r.meta.param) + "," + csv_field(r.meta.value) + "," + format_number(r.learning_rate()) + "," +
           format_number(r.test_f1) + "," + format_number(r.test_accuracy) + "," + format_number(r.test_macro_auroc) +
           "," + (r.best_epoch >= 0 ? std::to_string(r.best_epoch) : std::string()) + "," +
           std::to_string(r.epochs_completed) + "," + format_number(r.seconds_per_epoch()) + "," +
           format_number(r.train_seconds) + "," + csv_field(r.dir) + "\n";
  }
  return out;
}

StudyTable study_table(const std::vector<RunInfo>& runs) {
  StudyTable t;
  for (const RunInfo& r : runs) {
    if (std::find(t.datasets.begin(), t.datasets.end(), r.meta.dataset) == t.datasets.end())
      t.datasets.push_back(r.meta.dataset);
    if (std::find(t.models.begin(), t.models.end(), r.meta.model) == t.models.end()) t.models.push_back(r.meta.model);
    // A later run of the same cell (a re-run) replaces the earlier one.
    t.cells[{r.meta.dataset, r.meta.model}] = &r;
  }
  return t;
}

bool is_lr_ablation(const std::vector<RunInfo>& runs) {
  if (runs.size() < 2) return false;
  std::set<double> rates;
  for (const RunInfo& r : runs) {
    if (r.meta.model != runs.front().meta.model || r.meta.dataset != runs.front().meta.dataset) return false;
    if (r.architecture != runs.front().architecture) return false;
    const double lr = r.learning_rate();
    if (!std::isfinite(lr) || lr <= 0) return false;
    rates.insert(lr);
    auto others = [](const RunInfo& x) {
      std::map<std::string, std::string> v;
      for (const auto& [k, val] : x.meta.variables)
        if (!is_lr_name(k) && k != "output" && k != "output-dir") v[k] = val;
      return v;
    };
    if (others(r) != others(runs.front())) return false;
    if (!r.meta.param.empty() && !is_lr_name(r.meta.param)) return false;
  }
  return rates.size() == runs.size();
}

}  // namespace cxr::report
