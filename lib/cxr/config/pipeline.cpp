// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/config/pipeline.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cxr/error.hpp"
#include "cxr/util/text.hpp"

namespace cxr::config {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kTopKeys{"description", "variables", "element"};
const std::vector<std::string> kReserved{"factory", "name", "caps", "from", "to", "include"};
// Include depth guard: deeper than this is a cycle the path check missed (e.g. via symlinks).
constexpr int kMaxIncludeDepth = 16;
// Longest value variable substitution may produce. Each variable is expanded once, but values
// that name others several times still grow exponentially with the nesting ("a" = "${b}${b}",
// "b" = "${c}${c}", ...): a few lines could otherwise ask for gigabytes.
constexpr size_t kMaxExpandedBytes = 1 << 20;

// The names in a message: "a, b" or "none".
std::string join(const std::vector<std::string>& xs) { return xs.empty() ? "none" : util::join(xs); }

std::string join_keys(const Variables& vars) {
  std::vector<std::string> names;
  for (const auto& [k, v] : vars) names.push_back(k);
  return join(names);
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool is_identifier(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_name_char(c)) return false;
  return true;
}

std::string format_double(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// A property or variable value before variables are substituted.
struct RawValue {
  std::string text;
  PropertyValue::Kind kind = PropertyValue::Kind::String;
  bool expand = false;  // strings only: numbers and booleans hold no ${...}
};

struct RawElement {
  PipelineElement element;           // properties' values not yet expanded
  std::vector<bool> expand;          // per property
  bool expand_caps = false;
};

struct RawVariable {
  RawValue value;
  SourceLocation where;
};

class Loader {
 public:
  explicit Loader(const Variables& set) : set_(set) {}

  [[noreturn]] static void fail(const SourceLocation& where, const std::string& what) {
    throw ConfigError(where.str() + ": " + what);
  }

  static SourceLocation at(const std::string& path, const toml::source_region& r) {
    return SourceLocation{path.empty() ? "<pipeline>" : path, static_cast<int>(r.begin.line)};
  }

  void parse(std::string_view text, const std::string& path, int depth) {
    toml::table root;
    try {
      root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
      fail(at(path, e.source()), "TOML syntax error: " + std::string(e.description()));
    }
    if (depth == 0) {
      if (const toml::node* d = root.get("description")) {
        if (!d->is_string()) fail(at(path, d->source()), "description must be a string");
        description_ = *d->value<std::string>();
      }
    }
    for (const auto& [k, v] : root) {
      const std::string key(k.str());
      bool ok = false;
      for (const auto& a : kTopKeys) ok = ok || key == a;
      if (!ok) {
        std::string hint;
        if (key == "elements" || key == "elem") hint = " ([[element]] is singular)";
        fail(at(path, v.source()), "unknown key '" + key + "' (valid: " + join(kTopKeys) + ")" + hint);
      }
    }
    if (const toml::node* n = root.get("variables")) {
      if (!n->is_table()) fail(at(path, n->source()), "[variables] must be a table of name = value");
      for (const auto& [k, v] : *n->as_table()) {
        const std::string name(k.str());
        if (!is_identifier(name))
          fail(at(path, v.source()), "variable name '" + name + "' may hold only letters, digits, '_' and '-'");
        // The including file's default wins over an included one's: it was read first.
        if (variables_.count(name)) continue;
        variables_[name] = RawVariable{scalar(v, path, "variable '" + name + "'"), at(path, v.source())};
      }
    }
    const toml::node* list = root.get("element");
    if (!list) return;
    if (!list->is_array_of_tables())
      fail(at(path, list->source()), "'element' must be an array of tables: write each as [[element]]");
    for (const toml::node& item : *list->as_array()) element(*item.as_table(), path, depth);
  }

  Pipeline finish(const std::string& path) {
    Pipeline p;
    p.path = path;
    p.description = description_;
    // Names and branch targets: `from` must point back, `to` anywhere.
    std::map<std::string, SourceLocation> named;
    for (const RawElement& re : raw_) {
      const PipelineElement& e = re.element;
      if (!e.from.empty() && !named.count(e.from)) {
        std::vector<std::string> earlier;
        for (const auto& [n, w] : named) earlier.push_back(n);
        fail(e.where, "from = \"" + e.from + "\": no element of that name before this one (named so far: " +
                          join(earlier) + ")");
      }
      if (!e.name.empty()) {
        auto [it, fresh] = named.emplace(e.name, e.where);
        if (!fresh) fail(e.where, "name \"" + e.name + "\" is already used at " + it->second.str());
      }
    }
    for (const RawElement& re : raw_) {
      const PipelineElement& e = re.element;
      if (!e.to.empty() && !named.count(e.to)) {
        std::vector<std::string> names;
        for (const auto& [n, w] : named) names.push_back(n);
        fail(e.where, "to = \"" + e.to + "\": no element of that name (named: " + join(names) + ")");
      }
    }
    if (raw_.empty()) fail(SourceLocation{path.empty() ? "<pipeline>" : path, 0}, "no [[element]] tables");

    // --set names must exist in the file, so a typo does not silently run with the default.
    for (const auto& [name, value] : set_) {
      if (!variables_.count(name) && !referenced(name))
        throw ConfigError((path.empty() ? std::string("<pipeline>") : path) + ": --set " + name +
                          ": the pipeline has no variable '" + name + "' (variables: " + file_names() + ")");
    }
    for (const auto& [name, v] : variables_) p.variables[name] = variable(name, v.where, 0);
    for (const auto& [name, value] : set_) p.variables[name] = value;

    for (RawElement& re : raw_) {
      PipelineElement e = re.element;
      if (re.expand_caps) e.caps = expand(e.caps, e.where, 0);
      for (size_t i = 0; i < e.properties.size(); ++i)
        if (re.expand[i]) e.properties[i].value = expand(e.properties[i].value, e.properties[i].where, 0);
      p.elements.push_back(std::move(e));
    }
    return p;
  }

 private:
  RawValue scalar(const toml::node& v, const std::string& path, const std::string& what) const {
    RawValue r;
    if (v.is_string()) {
      r.text = *v.value<std::string>();
      r.expand = true;
    } else if (v.is_integer()) {
      r.text = std::to_string(*v.value<int64_t>());
      r.kind = PropertyValue::Kind::Integer;
    } else if (v.is_floating_point()) {
      r.text = format_double(*v.value<double>());
      r.kind = PropertyValue::Kind::Float;
    } else if (v.is_boolean()) {
      r.text = *v.value<bool>() ? "true" : "false";
      r.kind = PropertyValue::Kind::Boolean;
    } else {
      fail(at(path, v.source()), what + " must be a string, number or boolean");
    }
    return r;
  }

  std::string string_key(const toml::table& t, const char* key, const std::string& path) const {
    const toml::node* n = t.get(key);
    if (!n) return {};
    if (!n->is_string()) fail(at(path, n->source()), std::string(key) + " must be a string");
    const std::string s = *n->value<std::string>();
    if (s.empty()) fail(at(path, n->source()), std::string(key) + " must not be empty");
    return s;
  }

  void element(const toml::table& t, const std::string& path, int depth) {
    const SourceLocation where = at(path, t.source());
    if (const toml::node* inc = t.get("include")) {
      if (t.size() != 1)
        fail(where, "an include entry takes only 'include' (the included file's elements are spliced here)");
      include(*inc, path, depth);
      return;
    }
    RawElement re;
    PipelineElement& e = re.element;
    e.where = where;
    e.factory = string_key(t, "factory", path);
    e.name = string_key(t, "name", path);
    e.from = string_key(t, "from", path);
    e.to = string_key(t, "to", path);
    for (const char* key : {"name", "from", "to"}) {
      const std::string s = string_key(t, key, path);
      if (!s.empty() && !is_identifier(s))
        fail(at(path, t.get(key)->source()),
             std::string(key) + " = \"" + s + "\": element names may hold only letters, digits, '_' and '-'");
    }
    if (e.factory.empty()) {
      if (!t.get("caps"))
        fail(where, "element needs 'factory' (or 'caps' for a capsfilter, or 'include'); keys of an element: " +
                        join(kReserved) + ", and the element's own properties");
      e.caps = string_key(t, "caps", path);
      re.expand_caps = true;
      e.factory = "capsfilter";
      for (const auto& [k, v] : t) {
        const std::string key(k.str());
        if (key != "caps" && key != "name" && key != "from" && key != "to")
          fail(at(path, v.source()), "unknown key '" + key + "' in a caps entry (valid: caps, name, from, to)");
      }
    } else {
      for (char c : e.factory)
        if (!is_name_char(c))
          fail(at(path, t.get("factory")->source()), "factory = \"" + e.factory + "\" is not an element factory name");
      // toml::table iterates by key; properties are set in the order written.
      std::vector<std::pair<std::string, const toml::node*>> keys;
      for (const auto& [k, v] : t) keys.emplace_back(std::string(k.str()), &v);
      std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
        const auto& x = a.second->source().begin;
        const auto& y = b.second->source().begin;
        return x.line != y.line ? x.line < y.line : x.column < y.column;
      });
      for (const auto& [key, vp] : keys) {
        const toml::node& v = *vp;
        bool reserved = false;
        for (const auto& r : kReserved) reserved = reserved || key == r;
        if (reserved && key != "caps") continue;  // `caps` with a factory is that element's own property
        if (!is_identifier(key)) fail(at(path, v.source()), "'" + key + "' is not a property name");
        RawValue rv;
        if (const toml::array* arr = v.as_array()) {
          // Lists become the comma-separated strings the elements take (classes = "a,b,c").
          for (const toml::node& x : *arr) {
            if (x.is_array() || x.is_table())
              fail(at(path, x.source()), "property '" + key + "': list items must be strings, numbers or booleans");
            rv.text += (rv.text.empty() ? "" : ",") + scalar(x, path, "property '" + key + "'").text;
          }
          rv.expand = true;
        } else if (v.is_table()) {
          fail(at(path, v.source()), "property '" + key + "' cannot be a table");
        } else {
          rv = scalar(v, path, "property '" + key + "'");
        }
        e.properties.push_back(PropertyValue{key, rv.text, rv.kind, at(path, v.source())});
        re.expand.push_back(rv.expand);
      }
    }
    raw_.push_back(std::move(re));
  }

  void include(const toml::node& inc, const std::string& path, int depth) {
    const SourceLocation where = at(path, inc.source());
    if (!inc.is_string() || inc.value<std::string>()->empty()) fail(where, "include must be a file name");
    fs::path target(*inc.value<std::string>());
    if (target.is_relative()) target = fs::path(path).parent_path() / target;
    const std::string file = target.lexically_normal().string();
    if (depth + 1 > kMaxIncludeDepth) fail(where, "includes nested deeper than " + std::to_string(kMaxIncludeDepth));
    std::error_code ec;
    const fs::path canon = fs::weakly_canonical(target, ec);
    const std::string key = ec ? file : canon.string();
    if (open_.count(key)) fail(where, "include \"" + *inc.value<std::string>() + "\" includes itself (" + file + ")");
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(where, "cannot read include \"" + *inc.value<std::string>() + "\" (" + file + "): " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    open_.insert(key);
    parse(ss.str(), file, depth + 1);
    open_.erase(key);
  }

  bool referenced(const std::string& name) const {
    const std::string needle = "${" + name + "}";
    for (const RawElement& re : raw_) {
      if (re.expand_caps && re.element.caps.find(needle) != std::string::npos) return true;
      for (size_t i = 0; i < re.element.properties.size(); ++i)
        if (re.expand[i] && re.element.properties[i].value.find(needle) != std::string::npos) return true;
    }
    for (const auto& [n, v] : variables_)
      if (v.value.expand && v.value.text.find(needle) != std::string::npos) return true;
    return false;
  }

  std::string file_names() const {
    Variables all;
    for (const auto& [n, v] : variables_) all[n];
    return join_keys(all);
  }

  std::string known_names() const {
    Variables all;
    for (const auto& [n, v] : variables_) all[n];
    for (const auto& [n, v] : set_) all[n];
    return join_keys(all);
  }

  std::string variable(const std::string& name, const SourceLocation& where, int depth) {
    if (auto it = set_.find(name); it != set_.end()) return it->second;
    auto it = variables_.find(name);
    if (it == variables_.end())
      fail(where, "unknown variable ${" + name + "} (variables: " + known_names() + "; or give it with --set " +
                      name + "=VALUE)");
    if (depth > 16) fail(where, "variable ${" + name + "} refers to itself");
    if (!it->second.value.expand) return it->second.value.text;
    auto done = expanded_.find(name);
    if (done != expanded_.end()) return done->second;
    std::string value = expand(it->second.value.text, it->second.where, depth + 1);
    return expanded_.emplace(name, std::move(value)).first->second;
  }

  // `${name}` is a variable, `$$` a literal `$`; any other `$` is kept as written.
  std::string expand(const std::string& s, const SourceLocation& where, int depth) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '$' || i + 1 >= s.size()) {
        out += s[i];
      } else if (s[i + 1] == '$') {
        out += '$';
        ++i;
      } else if (s[i + 1] == '{') {
        const size_t close = s.find('}', i + 2);
        if (close == std::string::npos) fail(where, "unterminated ${ in \"" + s + "\"");
        const std::string name = s.substr(i + 2, close - i - 2);
        if (!is_identifier(name)) fail(where, "bad variable reference ${" + name + "} in \"" + s + "\"");
        out += variable(name, where, depth);
        if (out.size() > kMaxExpandedBytes)
          fail(where, "\"" + s.substr(0, 64) + (s.size() > 64 ? "..." : "") + "\" expands to more than " +
                          std::to_string(kMaxExpandedBytes) + " bytes");
        i = close;
      } else {
        out += s[i];
      }
    }
    return out;
  }

  const Variables& set_;
  std::map<std::string, RawVariable> variables_;
  std::map<std::string, std::string> expanded_;  // variables' values once substituted
  std::vector<RawElement> raw_;
  std::set<std::string> open_;
  std::string description_;
};

bool all_of_chars(const std::string& s, const char* extra) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && !std::strchr(extra, c)) return false;
  }
  return true;
}

}  // namespace

std::string SourceLocation::str() const {
  return line > 0 ? file + ":" + std::to_string(line) : file;
}

const PropertyValue* PipelineElement::property(std::string_view n) const {
  for (const auto& p : properties)
    if (p.name == n) return &p;
  return nullptr;
}

Pipeline parse_pipeline(std::string_view text, const std::string& path, const Variables& set) {
  Loader loader(set);
  loader.parse(text, path, 0);
  return loader.finish(path);
}

Pipeline load_pipeline(const std::string& path, const Variables& set) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot read pipeline " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_pipeline(ss.str(), path, set);
}

std::pair<std::string, std::string> parse_assignment(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InvalidArgument("expected NAME=VALUE, got '" + text + "'");
  std::string name = text.substr(0, eq);
  if (!is_identifier(name))
    throw InvalidArgument("variable name '" + name + "' may hold only letters, digits, '_' and '-'");
  return {name, text.substr(eq + 1)};
}

std::string quote_launch_value(const std::string& value) {
  if (all_of_chars(value, "_-+./:@%")) return value;
  std::string q = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

std::string quote_shell_word(const std::string& word) {
  if (word == "!" || all_of_chars(word, "_-+./:@%=,")) return word;
  std::string q = "'";
  for (char c : word) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::vector<std::string> launch_tokens(const Pipeline& pipeline) {
  std::vector<std::string> t;
  bool linkable = false;  // the previous element's src links to the next element
  for (const PipelineElement& e : pipeline.elements) {
    if (!e.from.empty()) {
      t.push_back(e.from + ".");
      t.push_back("!");
    } else if (linkable) {
      t.push_back("!");
    }
    // Plain caps are written as the launch syntax's own capsfilter shorthand.
    if (!e.caps.empty() && e.name.empty() && all_of_chars(e.caps, "_-+./:,=")) {
      t.push_back(e.caps);
    } else {
      t.push_back(e.factory);
      if (!e.name.empty()) t.push_back("name=" + e.name);
      if (!e.caps.empty()) t.push_back("caps=" + quote_launch_value(e.caps));
      for (const PropertyValue& p : e.properties) t.push_back(p.name + "=" + quote_launch_value(p.value));
    }
    if (!e.to.empty()) {
      t.push_back("!");
      t.push_back(e.to + ".");
    }
    linkable = e.to.empty();
  }
  return t;
}

std::string to_launch_string(const Pipeline& pipeline) {
  std::string s;
  for (const auto& tok : launch_tokens(pipeline)) s += (s.empty() ? "" : " ") + tok;
  return s;
}

std::string to_shell_command(const Pipeline& pipeline) {
  std::string s = "gst-launch-1.0";
  for (const auto& tok : launch_tokens(pipeline)) s += " " + quote_shell_word(tok);
  return s;
}

}  // namespace cxr::config
