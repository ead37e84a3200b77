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

#include <toml++/toml.h>

#include "cxr/error.hpp"
#include "cxr/util/json.hpp"

namespace fs = std::filesystem;

namespace cxr::report {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class JsonParser {
 public:
  JsonParser(std::string_view text, const std::string& where) : s_(text), where_(where) {}

  Json document() {
    Json v = value(0);
    skip_space();
    if (i_ != s_.size()) fail("text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    const int line = 1 + static_cast<int>(std::count(s_.begin(), s_.begin() + static_cast<long>(std::min(i_, s_.size())), '\n'));
    throw ConfigError(where_ + ":" + std::to_string(line) + ": invalid JSON: " + what);
  }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  Json value(int depth) {
    // Deep nesting only comes from a broken or hostile file; the trainer writes depth 4 at most.
    if (depth > 64) fail("nested too deeply");
    skip_space();
    if (i_ >= s_.size()) fail("unexpected end");
    Json v;
    const char c = s_[i_];
    if (c == '{') {
      v.type = Json::Type::Object;
      ++i_;
      skip_space();
      if (i_ < s_.size() && s_[i_] == '}') { ++i_; return v; }
      for (;;) {
        skip_space();
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected a key");
        std::string key = string();
        skip_space();
        if (i_ >= s_.size() || s_[i_] != ':') fail("expected ':'");
        ++i_;
        v.object.emplace_back(std::move(key), value(depth + 1));
        skip_space();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        if (i_ < s_.size() && s_[i_] == '}') { ++i_; return v; }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.type = Json::Type::Array;
      ++i_;
      skip_space();
      if (i_ < s_.size() && s_[i_] == ']') { ++i_; return v; }
      for (;;) {
        v.array.push_back(value(depth + 1));
        skip_space();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        if (i_ < s_.size() && s_[i_] == ']') { ++i_; return v; }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.type = Json::Type::String;
      v.string = string();
      return v;
    }
    if (literal("null")) return v;
    if (literal("true")) { v.type = Json::Type::Bool; v.boolean = true; return v; }
    if (literal("false")) { v.type = Json::Type::Bool; return v; }
    const size_t start = i_;
    while (i_ < s_.size() && std::string_view("+-0123456789.eE").find(s_[i_]) != std::string_view::npos) ++i_;
    if (start == i_) fail(std::string("unexpected '") + c + "'");
    const std::string num(s_.substr(start, i_ - start));
    char* end = nullptr;
    v.type = Json::Type::Number;
    v.number = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size()) fail("bad number '" + num + "'");
    return v;
  }
  std::string string() {
    ++i_;  // opening quote
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) break;
      c = s_[i_++];
      switch (c) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) fail("bad \\u escape");
          const unsigned cp = static_cast<unsigned>(std::strtoul(std::string(s_.substr(i_, 4)).c_str(), nullptr, 16));
          i_ += 4;
          // Basic plane only: the trainer escapes control characters, nothing else.
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default: out += c;
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }

  std::string_view s_;
  std::string where_;
  size_t i_ = 0;
};

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

std::vector<std::vector<int64_t>> matrix(const Json* j) {
  std::vector<std::vector<int64_t>> m;
  if (!j || j->type != Json::Type::Array) return m;
  for (const Json& row : j->array) {
    std::vector<int64_t> r;
    for (double v : row.numbers()) r.push_back(to_int64(v, 0));
    m.push_back(std::move(r));
  }
  return m;
}

std::string format_number(double v) {
  if (!std::isfinite(v)) return "";
  return util::json_number(v);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

bool is_lr_name(const std::string& name) {
  // The property may be named with its element: "cxrtrain.learning-rate", "train.learning-rate".
  const std::string base = name.substr(name.find_last_of('.') == std::string::npos ? 0 : name.find_last_of('.') + 1);
  return base == "learning-rate" || base == "learning_rate" || base == "lr";
}

}  // namespace

const Json* Json::get(std::string_view key) const {
  if (type != Type::Object) return nullptr;
  for (const auto& [k, v] : object)
    if (k == key) return &v;
  return nullptr;
}

double Json::number_or(std::string_view key, double fallback) const {
  const Json* v = get(key);
  return v && v->type == Type::Number ? v->number : fallback;
}

std::string Json::string_or(std::string_view key, const std::string& fallback) const {
  const Json* v = get(key);
  if (!v) return fallback;
  if (v->type == Type::String) return v->string;
  if (v->type == Type::Number) return util::json_number(v->number);
  if (v->type == Type::Bool) return v->boolean ? "true" : "false";
  return fallback;
}

std::vector<double> Json::numbers() const {
  std::vector<double> out;
  for (const Json& v : array) out.push_back(v.type == Type::Number ? v.number : kNaN);
  return out;
}

Json parse_json(std::string_view text, const std::string& where) { return JsonParser(text, where).document(); }

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
      const Json j = parse_json(line, metrics + ":" + std::to_string(n) + " (row)");
      EpochMetrics e;
      e.epoch = to_int(j.number_or("epoch", static_cast<double>(r.epochs.size())), static_cast<int>(r.epochs.size()));
      e.train_loss = j.number_or("train_loss", kNaN);
      e.train_f1 = j.number_or("train_f1", kNaN);
      e.train_accuracy = j.number_or("train_accuracy", kNaN);
      e.val_loss = j.number_or("val_loss", kNaN);
      e.val_f1 = j.number_or("val_f1", kNaN);
      e.val_accuracy = j.number_or("val_accuracy", kNaN);
      e.lr = j.number_or("lr", kNaN);
      e.seconds = j.number_or("seconds", 0);
      if (const Json* b = j.get("best")) e.best = b->type == Json::Type::Bool && b->boolean;
      for (const char* k : {"val_class_f1", "train_class_f1"})
        if (const Json* v = j.get(k); v && e.class_f1.empty()) e.class_f1 = v->numbers();
      for (const char* k : {"val_auroc", "train_auroc"})
        if (const Json* v = j.get(k); v && e.auroc.empty()) e.auroc = v->numbers();
      r.epochs.push_back(std::move(e));
    }
  }

  if (r.has_summary) {
    const Json s = parse_json(read_text(summary), summary);
    r.architecture = s.string_or("architecture", "");
    r.task = s.string_or("task", "");
    if (const Json* c = s.get("classes"))
      for (const Json& v : c->array) r.classes.push_back(v.string);
    r.best_epoch = to_int(s.number_or("best_epoch", -1), -1);
    r.epochs_completed = to_int(s.number_or("epochs_completed", static_cast<double>(r.epochs.size())),
                                static_cast<int>(r.epochs.size()));
    r.train_seconds = s.number_or("train_seconds", s.number_or("seconds", 0));
    if (const Json* t = s.get("test"); t && t->type == Json::Type::Object) {
      r.test_f1 = t->number_or("f1", kNaN);
      r.test_accuracy = t->number_or("accuracy", kNaN);
      r.test_macro_auroc = t->number_or("macro_auroc", kNaN);
      if (const Json* v = t->get("class_f1")) r.test_class_f1 = v->numbers();
      if (const Json* v = t->get("auroc")) r.test_auroc = v->numbers();
      r.confusion = matrix(t->get("confusion"));
      if (const Json* cc = t->get("class_confusion"))
        for (const Json& m : cc->array) r.class_confusion.push_back(matrix(&m));
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
    const Json m = parse_json(read_text(meta), meta);
    r.meta.name = m.string_or("name", "");
    r.meta.model = m.string_or("model", "");
    r.meta.dataset = m.string_or("dataset", "");
    r.meta.pipeline = m.string_or("pipeline", "");
    r.meta.param = m.string_or("param", "");
    r.meta.value = m.string_or("value", "");
    if (const Json* v = m.get("variables"))
      for (const auto& [k, val] : v->object) r.meta.variables[k] = val.type == Json::Type::Number ? util::json_number(val.number) : val.string;
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
