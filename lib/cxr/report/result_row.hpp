// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The per-scan JSON line of a results file: what the scan was and what the model said, or
/// the error that stopped it. Every input scan ends as exactly one such row.
#include <cstdint>
#include <string>
#include <vector>

namespace cxr::report {

struct ScanRecord {
  std::string path;
  uint64_t index = 0;
  std::string split;                  ///< "train", "val", "test" or "" (not written)
  unsigned epoch = 0;
  int label = -1;                     ///< ground-truth class index (multiclass)
  std::vector<uint8_t> labels;        ///< ground-truth multi-hot (multilabel)
  std::vector<std::string> classes;   ///< the dataset's class names, for the ground truth
  int width = 0, height = 0;          ///< frame size, 0 when not a video frame
  std::string format;                 ///< e.g. GRAY8
  std::string image;                  ///< written image file, if any
};

struct ResultRecord {
  std::string model;
  bool multilabel = false;
  std::vector<std::string> classes;
  std::vector<float> logits;
  std::vector<float> probabilities;
  std::vector<uint8_t> decisions;
  std::vector<float> embedding;
};

struct RowOptions {
  bool logits = false;
  bool embedding = false;
};

/// {"path", "index", ["split", "epoch"], ["label" | "labels"], ["width", "height", "format"],
///  ["image"], and with a result: "model", "classes", "probabilities", "predicted" (name, or
///  list of names for multilabel), optional "logits" / "embedding"}.
std::string result_row(const ScanRecord& scan, const ResultRecord* result, const RowOptions& options);

/// {"path", "index", ["split"], "error": reason, "element": name}.
std::string error_row(const std::string& path, uint64_t index, const std::string& split, const std::string& reason,
                      const std::string& element);

}  // namespace cxr::report
