// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/report/result_row.hpp"

#include <algorithm>

#include "cxr/util/json.hpp"

namespace cxr::report {

std::string result_row(const ScanRecord& scan, const ResultRecord* result, const RowOptions& options) {
  util::JsonObject o;
  o.add("path", scan.path).add("index", scan.index);
  if (!scan.split.empty() && scan.split != "none") o.add("split", scan.split).add("epoch", scan.epoch);
  if (scan.label >= 0) {
    if (static_cast<size_t>(scan.label) < scan.classes.size()) o.add("label", scan.classes[scan.label]);
    else o.add("label", scan.label);
  } else if (!scan.labels.empty()) {
    std::vector<std::string> names;
    for (size_t i = 0; i < scan.labels.size(); ++i)
      if (scan.labels[i]) names.push_back(i < scan.classes.size() ? scan.classes[i] : std::to_string(i));
    o.add("labels", names);
  }
  if (scan.width > 0) o.add("width", scan.width).add("height", scan.height).add("format", scan.format);
  if (!scan.image.empty()) o.add("image", scan.image);
  if (result) {
    o.add("model", result->model).add("classes", result->classes).add("probabilities", result->probabilities);
    if (result->multilabel) {
      std::vector<std::string> predicted;
      for (size_t i = 0; i < result->decisions.size() && i < result->classes.size(); ++i)
        if (result->decisions[i]) predicted.push_back(result->classes[i]);
      o.add("predicted", predicted);
    } else if (!result->probabilities.empty()) {
      const auto best = std::max_element(result->probabilities.begin(), result->probabilities.end()) -
                        result->probabilities.begin();
      if (static_cast<size_t>(best) < result->classes.size()) o.add("predicted", result->classes[best]);
      else o.add("predicted", static_cast<int64_t>(best));
    }
    if (options.logits) o.add("logits", result->logits);
    if (options.embedding && !result->embedding.empty()) o.add("embedding", result->embedding);
  }
  return o.str();
}

std::string error_row(const std::string& path, uint64_t index, const std::string& split, const std::string& reason,
                      const std::string& element) {
  util::JsonObject o;
  o.add("path", path).add("index", index);
  if (!split.empty() && split != "none") o.add("split", split);
  o.add("error", reason);
  if (!element.empty()) o.add("element", element);
  return o.str();
}

}  // namespace cxr::report
