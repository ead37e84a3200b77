// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Feature tables: the CSV `cxr tsne` reads (e.g. penultimate-layer embeddings of a test set).
/// A header row; a column named `label` (optional) is passed through, every other column is a
/// finite number.
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace cxr::explain {

struct FeatureTable {
  cv::Mat features;                 ///< rows x features, CV_64F
  std::vector<std::string> labels;  ///< one per row when has_label
  bool has_label = false;
};

/// Reads a feature table (CSV as cxr/util/csv.hpp reads it: quoted fields, CRLF, a UTF-8 BOM).
/// Throws cxr::IoError when the file cannot be opened and cxr::ConfigError "file:line: what"
/// for a wrong header, row length or value, or fewer than 2 rows.
FeatureTable read_feature_table(const std::string& path);

}  // namespace cxr::explain
