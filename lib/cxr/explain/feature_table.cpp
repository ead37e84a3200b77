// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/explain/feature_table.hpp"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "cxr/error.hpp"
#include "cxr/util/csv.hpp"

namespace cxr::explain {

FeatureTable read_feature_table(const std::string& path) {
  const util::CsvTable csv = util::read_csv(path);
  const std::vector<std::string>& header = csv.header;
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
  for (size_t r = 0; r < csv.rows.size(); ++r) {
    const std::vector<std::string>& f = csv.rows[r];
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
        throw ConfigError(path + ":" + std::to_string(csv.lines[r]) + ": column '" + header[c] +
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
