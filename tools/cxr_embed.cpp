// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr embed: the embeddings of a results file as the feature table `cxr tsne` reads.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cxr/error.hpp"

const char* cxr_help_embed =
    "collect the embeddings of a results file (JSON lines) into a CSV for cxr tsne\n"
    "usage: cxr embed RESULTS.jsonl --output OUT.csv [options]\n"
    "  RESULTS.jsonl comes from cxrresultsink embeddings=true behind cxrinfer embeddings=true, e.g.\n"
    "    gst-launch-1.0 cxrscansrc location=scans/ ! cxrdecode ! cxrinfer model=card.toml embeddings=true \\\n"
    "      ! cxrresultsink location=results.jsonl embeddings=true\n"
    "  OUT.csv: header 'label,f0,...,fN-1' (what cxr tsne reads), one row per scan in file order.\n"
    "  Error rows are skipped and counted; rows without an embedding are errors.\n"
    "options:\n"
    "  -o, --output FILE   output CSV (required)\n"
    "  --label L           truth (the scan's ground truth: 'label', or its 'labels' joined by '+';\n"
    "                      'none' when absent) | predicted (the model's decision) (default truth)\n"
    "  --split S           only rows of this split (train, val, test)\n"
    "  --path              add a 'path' column after 'label' (for joins; cxr tsne does not read it)\n"
    "Prints rows written, rows skipped and the dimension to stderr.";

namespace {

using cxr::ConfigError;
using cxr::InvalidArgument;
using cxr::IoError;

/// The JSON values a result row holds.
struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  double number = 0;
  bool boolean = false;
  std::string string;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  const Json* get(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? nullptr : &it->second;
  }
};

/// A strict recursive-descent reader of one JSON line (RFC 8259; \u escapes kept as UTF-8 for
/// the basic plane).
class JsonReader {
 public:
  explicit JsonReader(const std::string& s) : s_(s) {}

  Json document() {
    Json v = value();
    skip();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ConfigError("invalid JSON at column " + std::to_string(i_ + 1) + ": " + what);
  }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n')) ++i_;
  }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  bool literal(const char* word) {
    const size_t n = std::strlen(word);
    if (s_.compare(i_, n, word) == 0) {
      i_ += n;
      return true;
    }
    return false;
  }

  Json value() {
    skip();
    if (i_ >= s_.size()) fail("unexpected end");
    Json v;
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = Json::Object;
      if (eat('}')) return v;
      do {
        skip();
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected a key");
        std::string k = string();
        expect(':');
        v.fields[k] = value();
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      ++i_;
      v.kind = Json::Array;
      if (eat(']')) return v;
      do v.items.push_back(value());
      while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.kind = Json::String;
      v.string = string();
    } else if (literal("true")) {
      v.kind = Json::Bool;
      v.boolean = true;
    } else if (literal("false")) {
      v.kind = Json::Bool;
    } else if (literal("null")) {
      v.kind = Json::Null;
    } else {
      const char* start = s_.c_str() + i_;
      char* end = nullptr;
      v.number = std::strtod(start, &end);
      if (end == start) fail("unexpected character");
      v.kind = Json::Number;
      i_ += static_cast<size_t>(end - start);
    }
    return v;
  }

  std::string string() {
    ++i_;  // opening quote
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      c = s_[i_++];
      switch (c) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) fail("short \\u escape");
          const unsigned cp = static_cast<unsigned>(std::strtoul(s_.substr(i_, 4).c_str(), nullptr, 16));
          i_ += 4;
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
        default: out += c; break;  // \" \\ \/
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;  // closing quote
    return out;
  }

  const std::string& s_;
  size_t i_ = 0;
};

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

/// A string, or the names of a list joined by '+'; empty when absent.
std::string names_of(const Json* v) {
  if (!v) return "";
  if (v->kind == Json::String) return v->string;
  if (v->kind == Json::Number) return std::to_string(static_cast<long long>(v->number));
  if (v->kind != Json::Array) return "";
  std::string out;
  for (const Json& item : v->items) {
    if (item.kind == Json::String) out += (out.empty() ? "" : "+") + item.string;
  }
  return out;
}

}  // namespace

int cxr_cmd_embed(int argc, char** argv) {
  std::string input, output, split;
  bool predicted = false, with_path = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw InvalidArgument(a + ": missing value");
        return argv[++i];
      };
      if (a == "-o" || a == "--output") {
        output = value();
      } else if (a == "--label") {
        const std::string v = value();
        if (v != "truth" && v != "predicted") throw InvalidArgument("--label: expected truth or predicted, got '" + v + "'");
        predicted = v == "predicted";
      } else if (a == "--split") {
        split = value();
      } else if (a == "--path") {
        with_path = true;
      } else if (!a.empty() && a[0] == '-') {
        throw InvalidArgument("unknown option '" + a + "'");
      } else if (input.empty()) {
        input = a;
      } else {
        throw InvalidArgument("unexpected argument '" + a + "'");
      }
    }
    if (input.empty() || output.empty()) {
      std::fprintf(stderr, "usage: cxr embed RESULTS.jsonl --output OUT.csv [options]   (cxr embed --help)\n");
      return 2;
    }
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr embed: %s\n", e.what());
    return 2;
  }

  const std::string tmp = output + ".part";
  try {
    std::ifstream in(input);
    if (!in) throw IoError("cannot read " + input + ": " + std::strerror(errno));
    std::unique_ptr<FILE, int (*)(FILE*)> out(std::fopen(tmp.c_str(), "w"), std::fclose);
    if (!out) throw IoError("cannot write " + tmp + ": " + std::strerror(errno));
    size_t dim = 0, rows = 0, errors = 0, other_split = 0;
    int line_no = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = input + ":" + std::to_string(line_no) + ": ";
      Json row;
      try {
        row = JsonReader(line).document();
      } catch (const ConfigError& e) {
        throw ConfigError(where + e.what());
      }
      if (row.kind != Json::Object) throw ConfigError(where + "not a JSON object");
      if (row.get("error")) {
        ++errors;
        continue;
      }
      if (!split.empty() && names_of(row.get("split")) != split) {
        ++other_split;
        continue;
      }
      const Json* e = row.get("embedding");
      if (!e || e->kind != Json::Array || e->items.empty()) {
        throw ConfigError(where + "no \"embedding\" (run cxrinfer and cxrresultsink with embeddings=true)");
      }
      if (dim == 0) {
        dim = e->items.size();
        std::fprintf(out.get(), with_path ? "label,path" : "label");
        for (size_t k = 0; k < dim; ++k) std::fprintf(out.get(), ",f%zu", k);
        std::fputc('\n', out.get());
      } else if (e->items.size() != dim) {
        throw ConfigError(where + "embedding has " + std::to_string(e->items.size()) + " values, earlier rows " +
                          std::to_string(dim));
      }
      std::string label = predicted ? names_of(row.get("predicted"))
                                    : names_of(row.get("label")).empty() ? names_of(row.get("labels"))
                                                                         : names_of(row.get("label"));
      if (label.empty()) label = "none";
      std::fputs(csv_field(label).c_str(), out.get());
      if (with_path) std::fprintf(out.get(), ",%s", csv_field(names_of(row.get("path"))).c_str());
      for (const Json& v : e->items) {
        if (v.kind != Json::Number || !std::isfinite(v.number)) throw ConfigError(where + "embedding holds a non-number");
        // 9 significant digits: every float32 value round-trips.
        std::fprintf(out.get(), ",%.9g", v.number);
      }
      std::fputc('\n', out.get());
      ++rows;
    }
    if (rows == 0) throw ConfigError(input + ": no rows with an embedding" + (split.empty() ? "" : " in split " + split));
    if (std::fclose(out.release()) != 0) throw IoError("cannot write " + tmp + ": " + std::strerror(errno));
    if (std::rename(tmp.c_str(), output.c_str()) != 0) throw IoError("cannot write " + output + ": " + std::strerror(errno));
    std::fprintf(stderr, "cxr embed: %zu rows of %zu features to %s (%zu error rows skipped%s)\n", rows, dim,
                 output.c_str(), errors,
                 split.empty() ? "" : (", " + std::to_string(other_split) + " of other splits").c_str());
  } catch (const cxr::Error& e) {
    std::remove(tmp.c_str());  // no partial table left behind
    std::fprintf(stderr, "cxr embed: %s\n", e.what());
    return 1;
  }
  return 0;
}
