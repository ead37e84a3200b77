// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Dataset indexing: which scans a stream carries, with labels, patients and splits.
#include <cstdint>
#include <string>
#include <vector>

#include "cxr/task.hpp"

namespace cxr::data {

/// Same values as GstCxrSplit.
enum class Split : int { None = 0, Train = 1, Val = 2, Test = 3 };
using cxr::Task;

const char* to_string(Split s);
using cxr::to_string;
/// "train", "val"/"valid"/"validation", "test" (any case); anything else is Split::None.
Split split_from_string(const std::string& s);

struct Sample {
  std::string path;
  int label = -1;                ///< class index (multiclass), -1 when unlabelled
  std::vector<uint8_t> labels;   ///< multi-hot (multilabel), empty otherwise
  Split split = Split::None;
  std::string patient_id;
};

struct IndexParams {
  /// A folder (files directly inside, class-per-subfolder, optionally under train/ val/ test/),
  /// a list file (one path per line, relative to the list's folder), a single scan, or — with
  /// `labels` — the folder that the CSV's paths are relative to (default: the CSV's folder).
  std::string location;
  std::string labels;                       ///< CSV index, optional
  std::string path_column;                  ///< default: path, Image Index, image, filename, file
  std::string label_column;                 ///< class name per row; '|' separates several labels
  std::vector<std::string> label_columns;   ///< one 0/1 column per class (multi-label)
  std::string patient_column;               ///< default: patient_id, Patient ID, patient
  std::string split_column;                 ///< default: split (train/val/test)
  std::vector<std::string> classes;         ///< order (and subset) of classes; empty: all, sorted
  std::vector<std::string> extensions;      ///< only these (lower case, no dot); empty: all but sidecars
};

struct Dataset {
  Task task = Task::None;
  std::vector<std::string> classes;
  std::vector<Sample> samples;

  /// Scans per class (multi-label: positives per class).
  std::vector<uint64_t> class_counts() const;
};

/// Builds the index. Deterministic: classes sorted by name (as torchvision's ImageFolder), files
/// sorted within each class, CSV rows in file order. Throws cxr::ConfigError (file:line) for a
/// bad CSV or list, cxr::IoError when location does not exist.
Dataset index_dataset(const IndexParams& params);

}  // namespace cxr::data
