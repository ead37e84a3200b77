// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/report/study.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "cxr/error.hpp"
#include "cxr/util/json.hpp"
#include "cxr/util/text.hpp"

namespace fs = std::filesystem;

namespace cxr::report {

namespace {

const std::vector<std::string> kTopKeys = {"description", "output", "output-variable", "variables", "run", "sweep"};
const std::vector<std::string> kRunKeys = {"name", "pipeline", "model", "dataset", "variables"};
const std::vector<std::string> kSweepKeys = {"name", "pipeline", "model", "dataset", "variables", "param", "values"};

using util::join;

class StudyReader {
 public:
  StudyReader(const std::string& path, const config::Variables& set) : path_(path), set_(set) {}

  Study read() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) throw IoError("cannot read study " + path_);
    std::ostringstream ss;
    ss << in.rdbuf();
    toml::table root;
    try {
      root = toml::parse(ss.str(), path_);
    } catch (const toml::parse_error& e) {
      fail(e.source(), "TOML syntax error: " + std::string(e.description()));
    }
    Study study;
    study.path = path_;
    for (const auto& [k, v] : root) {
      const std::string key(k.str());
      if (std::find(kTopKeys.begin(), kTopKeys.end(), key) == kTopKeys.end())
        fail(v.source(), "unknown key '" + key + "' (valid: " + join(kTopKeys) + ")");
    }
    study.description = string_key(root, "description");
    study.output = string_key(root, "output");
    if (!study.output.empty() && fs::path(study.output).is_relative())
      study.output = (fs::path(path_).parent_path() / study.output).lexically_normal().string();
    const std::string ov = string_key(root, "output-variable");
    if (!ov.empty()) study.output_variable = ov;
    const config::Variables common = variables(root, "variables");
    std::set<std::string> reached;  // variables some run's pipeline gets, or some value names as ${...}

    std::set<std::string> names;
    auto add = [&](StudyRun r, const toml::node& where) {
      if (!names.insert(r.subdir).second) fail(where.source(), "two runs write to '" + r.subdir + "'");
      study.runs.push_back(std::move(r));
    };
    for (const char* kind : {"run", "sweep"}) {
      const toml::node* list = root.get(kind);
      if (!list) continue;
      if (!list->is_array_of_tables())
        fail(list->source(), std::string("'") + kind + "' must be an array of tables: write each as [[" + kind + "]]");
      const bool sweep = std::string(kind) == "sweep";
      for (const toml::node& item : *list->as_array()) {
        const toml::table& t = *item.as_table();
        for (const auto& [k, v] : t) {
          const std::string key(k.str());
          const auto& valid = sweep ? kSweepKeys : kRunKeys;
          if (std::find(valid.begin(), valid.end(), key) == valid.end())
            fail(v.source(), "unknown key '" + key + "' in [[" + kind + "]] (valid: " + join(valid) + ")");
        }
        StudyRun base;
        base.meta.name = string_key(t, "name");
        if (base.meta.name.empty()) fail(t.source(), std::string("[[") + kind + "]] needs a name");
        if (base.meta.name.find("..") != std::string::npos || fs::path(base.meta.name).is_absolute())
          fail(t.source(), "run name '" + base.meta.name + "' must be a relative folder name");
        const std::string pipeline = string_key(t, "pipeline");
        if (pipeline.empty()) fail(t.source(), "run '" + base.meta.name + "' needs a pipeline");
        const fs::path pp = fs::path(pipeline).is_relative() ? fs::path(path_).parent_path() / pipeline : fs::path(pipeline);
        if (!fs::exists(pp)) fail(t.get("pipeline")->source(), "pipeline '" + pipeline + "' not found (looked at " + pp.string() + ")");
        base.meta.pipeline = pp.lexically_normal().string();
        base.meta.model = string_key(t, "model");
        base.meta.dataset = string_key(t, "dataset");
        base.meta.variables = common;
        const config::Variables own = variables(t, "variables");
        for (const auto& [k, v] : own) base.meta.variables[k] = v;
        for (const auto& [k, v] : set_) base.meta.variables[k] = v;
        expand(base.meta.variables, t);
        // The study's [variables] and --set reach every run, but a run's pipeline gets only the
        // ones it has: the others are the study's own (covid = "/data/covid" for a run's
        // data = "${covid}"), and the pipeline would refuse them as unknown. A run's own
        // variables all go through, so a name its pipeline lacks is still an error.
        for (auto it = base.meta.variables.begin(); it != base.meta.variables.end();) {
          if (own.count(it->first) || pipeline_has_variable(base.meta.pipeline, it->first)) {
            reached.insert(it->first);
            ++it;
          } else {
            it = base.meta.variables.erase(it);
          }
        }
        for (const auto& [k, v] : own) referenced(v, reached);
        if (!sweep) {
          base.subdir = base.meta.name;
          add(base, t);
          continue;
        }
        base.meta.param = string_key(t, "param");
        if (base.meta.param.empty()) fail(t.source(), "sweep '" + base.meta.name + "' needs a param");
        const toml::node* values = t.get("values");
        if (!values || !values->is_array() || values->as_array()->empty())
          fail(t.source(), "sweep '" + base.meta.name + "' needs values = [...] (at least one)");
        for (const toml::node& v : *values->as_array()) {
          StudyRun r = base;
          r.meta.value = scalar(v, "a sweep value");
          r.subdir = (fs::path(base.meta.name) / sweep_dir_name(r.meta.param, r.meta.value)).string();
          r.meta.name = sweep_dir_name(r.meta.param, r.meta.value);
          add(r, v);
        }
      }
    }
    if (study.runs.empty()) throw ConfigError(path_ + ": no [[run]] or [[sweep]] entries");
    // A --set name that neither the study, nor a run, nor a run's pipeline uses is a typo: it must
    // not run the whole study silently with the default.
    for (const auto& [k, v] : common) referenced(v, reached);
    for (const auto& [name, value] : set_)
      if (!common.count(name) && !reached.count(name))
        throw ConfigError(path_ + ": --set " + name + ": neither the study nor the pipelines of its runs have a variable '" +
                          name + "'");
    return study;
  }

 private:
  [[noreturn]] void fail(const toml::source_region& where, const std::string& what) const {
    throw ConfigError(path_ + ":" + std::to_string(where.begin.line) + ": " + what);
  }
  std::string scalar(const toml::node& v, const std::string& what) const {
    if (const auto* s = v.as_string()) return s->get();
    if (const auto* i = v.as_integer()) return std::to_string(i->get());
    if (const auto* f = v.as_floating_point()) return util::json_number(f->get());
    if (const auto* b = v.as_boolean()) return b->get() ? "true" : "false";
    fail(v.source(), what + " must be a string, number or boolean");
  }
  std::string string_key(const toml::table& t, const char* key) const {
    const toml::node* n = t.get(key);
    if (!n) return std::string();
    if (!n->is_string()) fail(n->source(), std::string(key) + " must be a string");
    return n->as_string()->get();
  }
  config::Variables variables(const toml::table& t, const char* key) const {
    config::Variables out;
    const toml::node* n = t.get(key);
    if (!n) return out;
    if (!n->is_table()) fail(n->source(), std::string(key) + " must be a table of name = value");
    for (const auto& [k, v] : *n->as_table()) out[std::string(k.str())] = scalar(v, "variable '" + std::string(k.str()) + "'");
    return out;
  }

  // Adds the names that `value` uses as ${name}.
  static void referenced(const std::string& value, std::set<std::string>& names) {
    for (size_t open = value.find("${"); open != std::string::npos; open = value.find("${", open + 2)) {
      const size_t close = value.find('}', open);
      if (close == std::string::npos) break;
      names.insert(value.substr(open + 2, close - open - 2));
    }
  }

  // A run's variables may name the study's: data = "${covid}" takes the (possibly --set) value.
  void expand(config::Variables& vars, const toml::table& where) const {
    for (auto& [name, value] : vars) {
      for (int pass = 0; pass < 8 && value.find("${") != std::string::npos; ++pass) {
        std::string out;
        size_t i = 0;
        while (i < value.size()) {
          const size_t open = value.find("${", i);
          if (open == std::string::npos) { out += value.substr(i); break; }
          const size_t close = value.find('}', open);
          if (close == std::string::npos) { out += value.substr(i); break; }
          const std::string ref = value.substr(open + 2, close - open - 2);
          const auto it = vars.find(ref);
          if (it == vars.end() || ref == name)
            fail(where.source(), "variable '" + name + "' uses ${" + ref + "}, which the study does not define");
          out += value.substr(i, open - i) + it->second;
          // Values that name each other grow with every pass: bound them.
          if (out.size() > (1u << 20))
            fail(where.source(), "variable '" + name + "' expands to more than " + std::to_string(1u << 20) + " bytes");
          i = close + 1;
        }
        value = out;
      }
    }
  }

  std::string path_;
  config::Variables set_;
};

// True when a line of `text` starts with `name =` (blanks around, the key possibly quoted).
bool defines_at_line_start(const std::string& text, const std::string& name) {
  auto blank = [&](size_t i) { return i < text.size() && (text[i] == ' ' || text[i] == '\t'); };
  for (size_t line = 0; line < text.size();) {
    size_t i = line;
    while (blank(i)) ++i;
    if (i < text.size() && text[i] == '"') ++i;
    if (text.compare(i, name.size(), name) == 0) {
      i += name.size();
      if (i < text.size() && text[i] == '"') ++i;
      while (blank(i)) ++i;
      if (i < text.size() && text[i] == '=') return true;
    }
    const size_t nl = text.find('\n', line);
    if (nl == std::string::npos) break;
    line = nl + 1;
  }
  return false;
}

// The file names of `include = "..."` entries, in order.
std::vector<std::string> include_names(const std::string& text) {
  std::vector<std::string> out;
  auto blank = [&](size_t i) { return i < text.size() && (text[i] == ' ' || text[i] == '\t'); };
  for (size_t p = text.find("include"); p != std::string::npos; p = text.find("include", p + 1)) {
    size_t i = p + 7;
    while (blank(i)) ++i;
    if (i >= text.size() || text[i] != '=') continue;
    ++i;
    while (blank(i)) ++i;
    if (i >= text.size() || text[i] != '"') continue;
    const size_t close = text.find('"', i + 1);
    if (close == std::string::npos || close == i + 1) continue;
    out.push_back(text.substr(i + 1, close - i - 1));
    p = close;
  }
  return out;
}

// Plain scans rather than std::regex: libstdc++'s matcher recurses once per character and a
// long line (100 kB of blanks or of an include name) overflows the stack. Each file is read
// once, so files that include each other several times cannot multiply the work.
void scan_variables(const fs::path& file, const std::string& name, int depth, std::set<std::string>& seen,
                    bool& found) {
  if (found || depth > 8) return;
  std::error_code ec;
  const fs::path canon = fs::weakly_canonical(file, ec);
  if (!seen.insert(ec ? file.string() : canon.string()).second) return;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError("cannot read " + file.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  if (text.find("${" + name + "}") != std::string::npos) {
    found = true;
    return;
  }
  // A [variables] default: `name = ...` at the start of a line (keys may be quoted).
  const auto vars = text.find("[variables]");
  if (vars != std::string::npos) {
    const auto end = text.find("\n[", vars + 1);
    const std::string section = text.substr(vars, end == std::string::npos ? std::string::npos : end - vars);
    if (defines_at_line_start(section, name)) {
      found = true;
      return;
    }
  }
  for (const std::string& inc : include_names(text)) scan_variables(file.parent_path() / inc, name, depth + 1, seen, found);
}

bool numeric(const std::string& v) {
  if (v.empty()) return false;
  char* end = nullptr;
  std::strtod(v.c_str(), &end);
  return end == v.c_str() + v.size();
}

}  // namespace

Study load_study(const std::string& path, const config::Variables& set) { return StudyReader(path, set).read(); }

std::string sweep_dir_name(const std::string& param, const std::string& value) {
  std::string out = param + "=" + value;
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == '=' || c == '+')) c = '_';
  return out;
}

std::pair<std::string, std::vector<std::string>> parse_param(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw InvalidArgument("--param '" + text + "': expected NAME=VALUE1,VALUE2,...");
  std::pair<std::string, std::vector<std::string>> out{text.substr(0, eq), {}};
  std::string v;
  std::istringstream in(text.substr(eq + 1));
  while (std::getline(in, v, ',')) {
    if (v.empty()) throw InvalidArgument("--param '" + text + "': empty value");
    out.second.push_back(v);
  }
  return out;
}

bool pipeline_has_variable(const std::string& path, const std::string& name) {
  bool found = false;
  std::set<std::string> seen;
  scan_variables(fs::path(path), name, 0, seen, found);
  return found;
}

void set_element_property(config::Pipeline& pipeline, const std::string& name, const std::string& value) {
  const auto dot = name.find('.');
  const std::string owner = dot == std::string::npos ? std::string() : name.substr(0, dot);
  const std::string prop = dot == std::string::npos ? name : name.substr(dot + 1);
  if (prop.empty()) throw ConfigError(pipeline.path + ": --param '" + name + "': no property name");
  std::vector<config::PipelineElement*> holders, owners;
  for (auto& e : pipeline.elements) {
    if (!owner.empty() && e.factory != owner && e.name != owner) continue;
    owners.push_back(&e);
    if (e.property(prop)) holders.push_back(&e);
  }
  std::string where;
  for (auto* e : (holders.empty() ? owners : holders)) where += (where.empty() ? "" : ", ") + e->factory + " (" + e->where.str() + ")";
  if (holders.size() > 1)
    throw ConfigError(pipeline.path + ": --param '" + name + "': several elements set '" + prop + "': " + where +
                      "; name one as FACTORY." + prop + " or NAME." + prop);
  config::PipelineElement* target = nullptr;
  if (holders.size() == 1) target = holders.front();
  else if (!owner.empty() && owners.size() == 1) target = owners.front();
  if (!target) {
    if (!owner.empty() && owners.empty())
      throw ConfigError(pipeline.path + ": --param '" + name + "': no element '" + owner + "' in the pipeline");
    throw ConfigError(pipeline.path + ": --param '" + name + "' is neither a variable of the pipeline nor a property set by " +
                      (owners.size() > 1 ? "exactly one of its elements (" + where + ")" : std::string("any of its elements")) +
                      "; write FACTORY." + prop + " to add it to one element");
  }
  for (auto& p : target->properties) {
    if (p.name == prop) {
      p.value = value;
      p.kind = numeric(value) ? config::PropertyValue::Kind::Float : config::PropertyValue::Kind::String;
      return;
    }
  }
  config::PropertyValue p;
  p.name = prop;
  p.value = value;
  p.kind = numeric(value) ? config::PropertyValue::Kind::Float : config::PropertyValue::Kind::String;
  p.where = target->where;
  target->properties.push_back(p);
}

}  // namespace cxr::report
