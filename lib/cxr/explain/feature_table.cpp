// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/explain/feature_table.hpp"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "cxr/error.hpp"

namespace cxr::explain {

std::vector<std::string> split_csv_record(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

FeatureTable read_feature_table(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError("cannot open " + path + ": " + std::strerror(errno));
  std::string line;
  int line_no = 0;
  if (!std::getline(in, line)) throw ConfigError(path + ":1: empty file (expected a header row)");
  ++line_no;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const std::vector<std::string> header = split_csv_record(line);
  int label_col = -1;
  for (size_t c = 0; c < header.size(); ++c)
    if (header[c] == "label") {
      if (label_col >= 0) throw ConfigError(path + ":1: two 'label' columns");
      label_col = static_cast<int>(c);
    }
  const size_t n_features = header.size() - (label_col >= 0 ? 1 : 0);
  if (n_features < 1) throw ConfigError(path + ":1: no feature columns in the header");
  FeatureTable t;
  t.has_label = label_col >= 0;
  std::vector<double> values;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::vector<std::string> f = split_csv_record(line);
    if (f.size() != header.size())
      throw ConfigError(path + ":" + std::to_string(line_no) + ": " + std::to_string(f.size()) + " fields, header has " +
                        std::to_string(header.size()));
    for (size_t c = 0; c < f.size(); ++c) {
      if (static_cast<int>(c) == label_col) {
        t.labels.push_back(f[c]);
        continue;
      }
      const char* s = f[c].c_str();
      char* end = nullptr;
      errno = 0;
      const double v = std::strtod(s, &end);
      while (end && (*end == ' ' || *end == '\t')) ++end;
      if (f[c].empty() || end == s || *end != '\0' || !std::isfinite(v))
        throw ConfigError(path + ":" + std::to_string(line_no) + ": column '" + header[c] +
                          "': expected a finite number, got '" + f[c] + "'");
      values.push_back(v);
    }
  }
  // A cv::Mat holds at most INT_MAX rows and columns.
  if (n_features > size_t(INT32_MAX) || values.size() / n_features > size_t(INT32_MAX))
    throw ConfigError(path + ": " + std::to_string(values.size() / n_features) + " rows of " +
                      std::to_string(n_features) + " features are more than a table holds");
  const int rows = static_cast<int>(values.size() / n_features);
  if (rows < 2) throw ConfigError(path + ": need at least 2 data rows, got " + std::to_string(rows));
  t.features = cv::Mat(rows, static_cast<int>(n_features), CV_64F, values.data()).clone();
  return t;
}

}  // namespace cxr::explain
